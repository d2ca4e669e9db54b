"""Lighthouse on the three pages a resident sees: the sticker page, the receipt, the status page.

    flock /tmp/linli-bench.lock .venv/bin/python -m scripts.bench.bench_lighthouse
    flock /tmp/linli-bench.lock .venv/bin/python -m scripts.bench.bench_lighthouse --runs 3

Goal: 100 in all four categories (performance, accessibility, best practices, SEO) on each.
Runs npm `lighthouse` (tests/browser/package.json, installed by `npm ci --prefix tests/browser`,
which `scripts/install.sh --tests` does; nothing is downloaded here) against Debian's chromium
(`CHROME_PATH=/usr/bin/chromium`, headless, `--no-sandbox` when run as root), with Lighthouse's
own defaults: a mobile phone, simulated slow 4G and a 4× slower CPU.

The app runs in this process as `scripts/run-demo` runs it: the demo community on a SQLite
file of its own (a temporary one), the in-process job runner, SMS to the console, served by
werkzeug on localhost (which browsers and Lighthouse count as a secure origin). A resident's
message is filed in Chromium first, so the receipt is the one its sender sees (the session
cookie goes to Lighthouse as a header) and the status page has a case behind it.
Prints the four scores per page and run, the median of the runs, the audits that cost points,
and the 1-minute load average (the performance score is measured, so it moves with the load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from scripts.bench import demo_server
from scripts.bench.demo_server import demo_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
LIGHTHOUSE = ROOT / "tests" / "browser" / "node_modules" / "lighthouse" / "cli" / "index.js"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")


def serve(folder: Path) -> tuple[str, str, Any]:
    """The demo on SQLite with the in-process runner, on a real socket: (base URL, an elevator
    sticker's code, the server)."""
    app, code = demo_app(folder / "bench.sqlite3", SECRET_KEY="lighthouse" * 2)
    url, server = demo_server.serve(app, "localhost")
    return url, code, server


def file_a_message(sticker: str) -> tuple[str, str]:
    """Send a message from the sticker page in Chromium: (receipt URL, its Cookie header)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(locale="zh-CN")
            page.goto(sticker)
            page.fill("#f-text", "电梯门关不上，按了开门键也没反应")
            page.click("#send")
            page.wait_for_selector("text=已收到您的反映", timeout=30_000)
            cookies = "; ".join(f"{c['name']}={c['value']}"
                                for c in page.context.cookies())
            return page.url, cookies
        finally:
            browser.close()


def lighthouse(url: str, out: Path, cookie: str | None = None) -> dict[str, Any]:
    """One Lighthouse run on `url`; its JSON report."""
    flags = ["--headless=new", "--disable-gpu"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root inside its sandbox
    command = ["node", str(LIGHTHOUSE), url, "--quiet", "--output=json",
               f"--output-path={out}", f"--chrome-flags={' '.join(flags)}",
               f"--only-categories={','.join(CATEGORIES)}"]
    if cookie:
        command.append(f"--extra-headers={json.dumps({'Cookie': cookie})}")
    subprocess.run(command, check=True, env={**os.environ, "CHROME_PATH": CHROMIUM},
                   timeout=300)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def scores(report: dict[str, Any]) -> dict[str, int]:
    return {name: round(100 * (report["categories"][name]["score"] or 0))
            for name in CATEGORIES}


def losses(report: dict[str, Any]) -> list[str]:
    """The audits that cost points: weighted in a category and not passed."""
    found = []
    for name in CATEGORIES:
        for ref in report["categories"][name]["auditRefs"]:
            audit = report["audits"][ref["id"]]
            if ref["weight"] > 0 and audit["score"] is not None and audit["score"] < 1:
                found.append(f"{name}: {ref['id']} ({audit['score']}) {audit['title']}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="Lighthouse runs per page")
    args = parser.parse_args()
    if not LIGHTHOUSE.exists():
        raise SystemExit(f"{LIGHTHOUSE} is missing: npm ci --prefix tests/browser")
    if shutil.which(CHROMIUM) is None:
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        base, code, server = serve(folder)
        receipt, cookie = file_a_message(f"{base}/S/{code}")
        pages = {"sticker": (f"{base}/S/{code}", None), "receipt": (receipt, cookie),
                 "status": (receipt.removesuffix("/receipt"), None)}
        version = subprocess.run(["node", str(LIGHTHOUSE), "--version"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                                  check=False).stdout.strip()
        print(f"lighthouse {version}, {chromium}; mobile, simulated throttling; "
              f"{args.runs} run(s) per page")
        print(f"{'page':<9}" + "".join(f"{c:>16}" for c in CATEGORIES))
        for page, (url, header) in pages.items():
            runs = []
            for run in range(args.runs):
                report = lighthouse(url, folder / f"{page}-{run}.json", header)
                runs.append(report)
                if args.runs > 1:
                    print(f"{page + ' ' + str(run + 1):<9}"
                          + "".join(f"{s:>16}" for s in scores(report).values()))
            median = {c: statistics.median(scores(r)[c] for r in runs) for c in CATEGORIES}
            print(f"{page:<9}" + "".join(f"{median[c]:>16g}" for c in CATEGORIES))
            for line in sorted({loss for r in runs for loss in losses(r)}):
                print(f"    {line}")
        server.shutdown()
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
