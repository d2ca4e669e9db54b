"""Helpers for tests that run the deployment of `scripts/deploy-local` for real.

`Deployment` starts gunicorn, the RQ workers and the sweepers as the script does, against this
test session's PostgreSQL schema and Redis database, and stops them in the end. The waiting
and process helpers come from the dispatch engine's reliability tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from tests.conftest import PG_URL
from tests.dispatch.jobs.test_reliability import ROOT, SECRET_KEY, descendants

SCRIPT = ROOT / "scripts" / "deploy-local"
#: Every rate limit raised out of reach: all the test traffic comes from one address.
NO_LIMITS = {name: "1000000 per minute" for name in (
    "RESIDENT_LIMIT_PAGES", "RESIDENT_LIMIT_MISSES", "RESIDENT_LIMIT_REPORTS_IP",
    "RESIDENT_LIMIT_REPORTS_STICKER", "RESIDENT_LIMIT_REPORTS_PHONE", "RESIDENT_LIMIT_CALLS_IP",
    "RESIDENT_LIMIT_CALLS_STICKER", "RESIDENT_LIMIT_CALLBACKS_IP", "RESIDENT_LIMIT_LOOKUPS_IP")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def schema_url(schema: str, base: str = PG_URL) -> str:
    """A DATABASE_URL that puts every connection in `schema`."""
    return f"{base}?options=-csearch_path%3D{schema}"


class Deployment:
    """`scripts/deploy-local` in a run directory of its own (logs, pids)."""

    def __init__(self, run_dir: Path, *, database_url: str, redis_url: str,
                 config: dict[str, Any] | None = None, **env: str) -> None:
        self.run_dir = run_dir
        self.port = free_port()
        self.env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                    "RUN_DIR": str(run_dir), "PORT": str(self.port), "SECRET_KEY": SECRET_KEY,
                    "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
                    "LINLI_APP": "tests.ops.tuned:create_app()", "PYTHONPATH": str(ROOT),
                    "MIGRATE": "0", "LOAD_DEMO": "0", "SWEEP_SECONDS": "1",
                    "SMS_BACKEND": "console",
                    "LINLI_CONFIG_JSON": json.dumps({**NO_LIMITS, **(config or {})}), **env}
        self.running = False
        self.relaunched: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Deployment:
        result = subprocess.run([str(SCRIPT), "start"], env=self.env, cwd=ROOT, timeout=90,
                                capture_output=True, text=True)
        self.running = result.returncode == 0
        if not self.running:
            raise RuntimeError(f"deploy-local start failed:\n{result.stdout}\n{result.stderr}\n"
                               f"{self.logs()}")
        return self

    def stop(self) -> None:
        if self.running:
            subprocess.run([str(SCRIPT), "stop"], env=self.env, cwd=ROOT, timeout=60,
                           capture_output=True)
            self.running = False
        for process in self.relaunched:  # stopped with the others (their group); reap them
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)

    def pids(self) -> dict[str, int]:
        path = self.run_dir / "pids"
        if not path.exists():
            return {}
        return {name: int(pid) for name, pid in
                (line.split() for line in path.read_text().splitlines() if line.strip())}

    def kill(self, name: str) -> None:
        """SIGKILL one process of the deployment and everything it forked."""
        pid = self.pids()[name]
        for victim in [*descendants(pid), pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)

    def holding_port(self, port: int) -> str | None:
        """The name of the process (or its children) whose TCP socket has local `port`.

        A fake provider sees the client's port of each request; this says which process of
        the deployment sent it, so a drill can kill exactly the one caught in a send.
        """
        sockets = {f"socket:[{fields[9]}]"
                   for fields in (line.split() for line in
                                  Path("/proc/net/tcp").read_text().splitlines()[1:])
                   if int(fields[1].rsplit(":", 1)[1], 16) == port}
        for name, pid in self.pids().items():
            if any(_open_files(member) & sockets for member in [pid, *descendants(pid)]):
                return name
        return None

    def relaunch(self, name: str, *command: str) -> None:
        """Start a process again under the same name (after `kill`), as the script does."""
        with open(self.run_dir / f"{name}.log", "ab") as log:
            process = subprocess.Popen(list(command), cwd=ROOT, env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.relaunched.append(process)
        lines = [line for line in (self.run_dir / "pids").read_text().splitlines()
                 if not line.startswith(f"{name} ")]
        (self.run_dir / "pids").write_text("\n".join([*lines, f"{name} {process.pid}"]) + "\n")

    def logs(self, pattern: str = "*.log") -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
                         for path in sorted(self.run_dir.glob(pattern)))

    def log_text(self, pattern: str) -> str:
        return "".join(path.read_text(errors="replace")
                       for path in sorted(self.run_dir.glob(pattern)))


class Resident:
    """A phone that opened a sticker page: its form cookie and the form's token."""

    def __init__(self, base_url: str, code: str) -> None:
        self.http = requests.Session()
        self.base_url = base_url
        self.code = code
        page = self.http.get(f"{base_url}/s/{code}", timeout=10)
        page.raise_for_status()
        marker = 'name="csrf_token" value="'
        start = page.text.index(marker) + len(marker)
        self.token = page.text[start:page.text.index('"', start)]

    def report(self, category: str, text: str) -> requests.Response:
        """POST a message; a 303 to the receipt means it was filed."""
        return self.http.post(f"{self.base_url}/s/{self.code}/message",
                              data={"csrf_token": self.token, "category": category,
                                    "text": text}, allow_redirects=False, timeout=30)


def _open_files(pid: int) -> set[str]:
    """What the process's file descriptors point at (`socket:[inode]` for sockets)."""
    found = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                found.add(os.readlink(fd))
    return found


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.25) -> Any:
    """Poll `check()` (no app context needed) until truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
