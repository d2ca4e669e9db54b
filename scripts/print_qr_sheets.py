#!/usr/bin/env python3
"""Print QR sticker sheets: the same as `flask --app app stickers print`.

    scripts/print_qr_sheets.py DH                      # every sticker of community DH
    scripts/print_qr_sheets.py DH-G2 --kind elevator   # the elevators of grid 2
    scripts/print_qr_sheets.py DH-B03 --layout 2x3 --out out/b03.pdf

Reads DATABASE_URL and PUBLIC_BASE_URL from the environment like the service does; runs under
the project's .venv whichever Python started it.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
# Run by its shebang from a plain shell, this is the system Python without Linli's packages:
# start again under the project's virtualenv.
if (VENV / "bin" / "python").exists() and Path(sys.prefix).resolve() != VENV.resolve():
    os.execv(VENV / "bin" / "python", [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]])
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402 (after the path is set)
from qr.cli import print_command  # noqa: E402

if __name__ == "__main__":
    with create_app().app_context():
        print_command.main(prog_name="print_qr_sheets.py")
