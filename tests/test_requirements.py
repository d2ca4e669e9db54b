"""The locks `scripts/install.sh` installs from say what requirements.txt and
tests/requirements.txt ask for: a package added to either without running `scripts/lock` fails
here, in CI, instead of being missing (or unpinned) on the next fresh machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "requirements.txt"
TESTS = ROOT / "tests" / "requirements.txt"
RUNTIME_LOCK = ROOT / "scripts" / "requirements.lock"
TESTS_LOCK = ROOT / "scripts" / "requirements-tests.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def pins(path: Path) -> dict[str, str]:
    """Package → version of a lock; every pin carries at least one hash (--require-hashes)."""
    text = path.read_text()
    found: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{path.name}: {match[1]} has no hash"
            found[canonicalize_name(match[1])] = match[2]
    return found


@pytest.mark.parametrize(("wanted", "lock"), [
    (RUNTIME, RUNTIME_LOCK), (RUNTIME, TESTS_LOCK), (TESTS, TESTS_LOCK)],
    ids=["service in its lock", "service in the tests' lock", "tests in their lock"])
def test_every_requirement_is_pinned_in_the_lock_at_an_allowed_version(wanted: Path,
                                                                      lock: Path) -> None:
    pinned = pins(lock)
    missing = [str(r) for r in requirements(wanted) if canonicalize_name(r.name) not in pinned]
    assert not missing, f"not in {lock.name}: {missing}; run scripts/lock"
    outside = [f"{r} (locked {pinned[canonicalize_name(r.name)]})" for r in requirements(wanted)
               if not r.specifier.contains(pinned[canonicalize_name(r.name)], prereleases=True)]
    assert not outside, f"{lock.name} pins versions outside: {outside}; run scripts/lock"


def test_the_service_and_its_tests_install_the_same_versions() -> None:
    runtime, tests = pins(RUNTIME_LOCK), pins(TESTS_LOCK)
    assert {name: (version, tests.get(name)) for name, version in runtime.items()
            if tests.get(name) != version} == {}


def test_the_service_lock_holds_no_test_tool() -> None:
    runtime = pins(RUNTIME_LOCK)
    assert [name for name in ("pytest", "ruff", "playwright", "pip-tools") if name in runtime] == []
    shared = ({canonicalize_name(r.name) for r in requirements(RUNTIME)}
              & {canonicalize_name(r.name) for r in requirements(TESTS)})
    assert shared == set(), "listed both as the service's and as the tests' requirement"
