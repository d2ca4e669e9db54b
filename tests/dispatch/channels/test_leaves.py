"""The provider leaves stand alone: no import of the domain, so #16 can wire them in as they are."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CHANNELS = Path(__file__).parents[3] / "dispatch" / "channels"
LEAVES = ["wecom.py", "robots.py", "aliyun_voice.py", "webapi.py"]
#: What a leaf may import besides the standard library.
ALLOWED = {"cryptography", "alibabacloud_dyvmsapi20170525", "alibabacloud_tea_openapi",
           "darabonba", "dispatch.channels.base", "dispatch.channels.webapi"}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" if node.module == "dispatch.channels"
                         else node.module for alias in node.names)
    return names


@pytest.mark.parametrize("leaf", LEAVES)
def test_a_provider_leaf_imports_only_the_standard_library_its_sdk_and_base(leaf: str) -> None:
    foreign = {name for name in imports(CHANNELS / leaf)
               if name.split(".")[0] not in sys.stdlib_module_names and name != "__future__"
               and not any(name == ok or name.startswith(ok + ".") for ok in ALLOWED)}
    assert foreign == set()
