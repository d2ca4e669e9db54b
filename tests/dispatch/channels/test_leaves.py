"""The provider clients are leaves: each imports the standard library, its SDK and the channel
interface, never the domain (cases, members, the outbox compose what they are handed)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CHANNELS = Path(__file__).parents[3] / "dispatch" / "channels"
LEAVES = sorted(path.name for path in CHANNELS.glob("*.py"))
#: What a leaf may import besides the standard library: the SDKs, Flask for the app's
#: settings (and Twilio's request check), the channel modules, and the channel enum.
ALLOWED = {"cryptography", "alibabacloud_dyvmsapi20170525", "alibabacloud_dysmsapi20170525",
           "alibabacloud_tea_openapi", "darabonba", "twilio", "requests", "pywebpush",
           "py_vapid", "flask", "werkzeug", "dispatch.channels", "dispatch.models.Channel"}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}"
                         if node.module in ("dispatch.channels", "dispatch.models")
                         else node.module for alias in node.names)
    return names


@pytest.mark.parametrize("leaf", LEAVES)
def test_a_provider_leaf_imports_only_the_standard_library_its_sdk_and_base(leaf: str) -> None:
    foreign = {name for name in imports(CHANNELS / leaf)
               if name.split(".")[0] not in sys.stdlib_module_names and name != "__future__"
               and not any(name == ok or name.startswith(ok + ".") for ok in ALLOWED)}
    assert foreign == set()
