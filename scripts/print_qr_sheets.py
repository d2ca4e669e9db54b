#!/usr/bin/env python3
"""Print QR sticker sheets: the same as `flask --app app stickers print`.

    scripts/print_qr_sheets.py DH                      # every sticker of community DH
    scripts/print_qr_sheets.py DH-G2 --kind elevator   # the elevators of grid 2
    scripts/print_qr_sheets.py DH-B03 --layout 2x3 --out b03.pdf

Reads DATABASE_URL and PUBLIC_BASE_URL from the environment like the service does.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from qr.cli import print_command

if __name__ == "__main__":
    with create_app().app_context():
        print_command.main(prog_name="print_qr_sheets.py")
