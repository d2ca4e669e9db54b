"""A 3 MB camera photo, from the tap on 提交留言 to the receipt, on a slow phone.

    .venv/bin/python -m scripts.bench.bench_photo_upload             # goal: < 8 s
    .venv/bin/python -m scripts.bench.bench_photo_upload --no-js     # the page without its script

Chromium (Debian's) at a phone's size, with DevTools' "Fast 3G" network (562.5 ms latency,
180 KB/s down, 84 KB/s up) and the CPU slowed 4× (CDP `Emulation.setCPUThrottlingRate`), opens
an elevator sticker of the demo community and sends a message with one 4000 × 3000 JPEG of
about 3 MB. With the page's script the photo is shrunk in the browser to 1600 px before it
is sent; without it (`--no-js`, which is what every resident got before the script) the
whole file goes up. The app runs in this process on a SQLite database of its own (werkzeug,
threaded), as in the browser tests; the server's share of the time is small either way.
Prints the seconds from the tap to the receipt and the bytes sent, for `--runs` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from scripts.bench import demo_server
from scripts.bench.demo_server import demo_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FAST_3G = {"offline": False, "latency": 562.5, "downloadThroughput": 180_000,
           "uploadThroughput": 84_375}


def camera_photo(target: int = 3_000_000) -> bytes:
    """A 4000 × 3000 JPEG that compresses like a photo: shapes, gradients, fine grain."""
    base = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    draw = ImageDraw.Draw(base)
    for i in range(60):
        x, y = (i * 397) % 4000, (i * 211) % 3000
        draw.rectangle((x, y, x + 300 + i * 7, y + 200 + i * 5),
                       fill=((i * 53) % 256, (i * 97) % 256, (i * 31) % 256))
    base = base.filter(ImageFilter.GaussianBlur(2))
    grain = Image.effect_noise((4000, 3000), 24).convert("RGB")
    image = Image.blend(base, grain, 0.18)
    best = b""
    for quality in (70, 78, 84, 88, 91, 93, 95):
        out = BytesIO()
        image.save(out, "JPEG", quality=quality)
        best = out.getvalue()
        if len(best) >= target:
            break
    return best


#: Bytes of each POST the server received (the browser's own count misses XHR blobs).
POSTED: list[int] = []


def serve(database: Path) -> tuple[str, object]:
    app, code = demo_app(database, SECRET_KEY="bench" * 4, JOBS_AUTOSTART=False,
                         RESIDENT_LIMIT_REPORTS_IP="1000 per hour",
                         RESIDENT_LIMIT_REPORTS_STICKER="1000 per hour")
    inner = app.wsgi_app

    def counting(environ, start_response):  # type: ignore[no-untyped-def]
        if environ["REQUEST_METHOD"] == "POST":
            POSTED.append(int(environ.get("CONTENT_LENGTH") or 0))
        return inner(environ, start_response)

    app.wsgi_app = counting  # type: ignore[method-assign]
    url, server = demo_server.serve(app)
    return f"{url}/S/{code}", server


def one_run(browser: object, sticker: str, photo: Path, *, javascript: bool
            ) -> tuple[float, float, int]:
    context = browser.new_context(viewport={"width": 390, "height": 844},  # type: ignore[attr-defined]
                                  java_script_enabled=javascript, locale="zh-CN")
    page = context.new_page()
    POSTED.clear()
    try:
        page.goto(sticker)
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", FAST_3G)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
        chosen = time.perf_counter()
        page.set_input_files("#f-photos", str(photo))
        shrinking = 0.0
        if javascript:  # shrunk as soon as it is chosen, while the resident types
            page.wait_for_selector("#thumbs li img", timeout=60_000)
            shrinking = time.perf_counter() - chosen
        started = time.perf_counter()
        page.click("text=提交留言", no_wait_after=True)
        page.wait_for_selector("text=已收到您的反映", timeout=300_000)
        return time.perf_counter() - started, shrinking, max(POSTED or [0])
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-js", action="store_true", help="the page without its script")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "camera.jpg"
        photo.write_bytes(camera_photo())
        sticker, server = serve(Path(folder) / "bench.sqlite3")
        print(f"photo: {photo.stat().st_size / 1e6:.2f} MB, 4000 × 3000; "
              f"JavaScript {'off' if args.no_js else 'on'}; Fast 3G, CPU 4× slower")
        times = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                for run in range(args.runs):
                    seconds, shrinking, sent = one_run(browser, sticker, photo,
                                                       javascript=not args.no_js)
                    times.append(seconds)
                    print(f"run {run + 1}: {seconds:.1f} s from the tap to the receipt, "
                          f"{sent / 1e3:.0f} KB sent"
                          + (f" (shrunk in {shrinking:.1f} s after choosing)" if shrinking
                             else ""))
            finally:
                browser.close()
        server.shutdown()  # type: ignore[attr-defined]
        print(f"median {statistics.median(times):.1f} s")


if __name__ == "__main__":
    main()
