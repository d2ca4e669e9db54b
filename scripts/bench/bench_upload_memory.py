"""Peak memory of one web worker handling four of the largest allowed uploads at once.

    .venv/bin/python -m scripts.bench.bench_upload_memory            # goal: < 300 MB RSS
    .venv/bin/python -m scripts.bench.bench_upload_memory --photo palette-7000

One gunicorn worker with four threads (the production worker class) serves the app on the
local PostgreSQL, in a schema of its own, dropped at the end. Four clients at once each post
a resident message with three photos, the whole request just under `MAX_CONTENT_LENGTH`; the
worker's peak resident memory (VmHWM from /proc) is read before and after. `--photo` chooses
what the photos are:

- `png-12mp` (default): 4000 × 3000 RGBA PNGs, the largest decoded whole that is accepted;
- `jpeg-48mp`: 8000 × 6000 JPEGs, decoded at reduced scale;
- `palette-7000`: the probe's 7000 × 7000 palette PNG of 143 KB (now refused before decoding).

Each photo is just under 10 MB (PNG: noise in the top rows; JPEG and the palette PNG: padded),
so the requests are the largest allowed in bytes too.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
import uuid
import zlib
from io import BytesIO
from pathlib import Path

import requests
import sqlalchemy as sa
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("LINLI_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PHOTO_BYTES = 10 * 1024 * 1024 - 64 * 1024


def photo(kind: str) -> bytes:
    """One photo of `kind`, padded to just under the per-photo limit."""
    out = BytesIO()
    if kind == "png-12mp":
        # Noise in the top rows makes the file as large as allowed with real pixel data.
        image = Image.linear_gradient("L").resize((4000, 3000)).convert("RGBA")
        image.paste(Image.frombytes("RGBA", (4000, 600), os.urandom(4000 * 600 * 4)))
        image.save(out, "PNG", compress_level=1)
    elif kind == "jpeg-48mp":
        Image.linear_gradient("L").resize((8000, 6000)).convert("RGB").save(out, "JPEG")
    else:
        Image.new("P", (7000, 7000)).save(out, "PNG", optimize=True)
    data = out.getvalue()
    if data.startswith(b"\x89PNG"):  # a tEXt chunk before IEND: still a valid PNG
        text = b"Comment\0" + b"x" * max(0, PHOTO_BYTES - len(data) - 20)
        chunk = (len(text).to_bytes(4, "big") + b"tEXt" + text
                 + zlib.crc32(b"tEXt" + text).to_bytes(4, "big"))
        return data[:-12] + chunk + data[-12:]
    return data[:-2] + b"\0" * max(0, PHOTO_BYTES - len(data)) + data[-2:]


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of `pid` in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status)[1]) / 1024
    return rss, hwm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", choices=("png-12mp", "jpeg-48mp", "palette-7000"),
                        default="png-12mp")
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    schema = f"linli_mem_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    env = {**os.environ, "DATABASE_URL": f"{PG_URL}?options=-csearch_path%3D{schema}",
           "SECRET_KEY": "bench-secret-key-0123456789", "PUBLIC_BASE_URL":
           f"http://127.0.0.1:{args.port}", "FLASK_APP": "app"}
    env.pop("REDIS_URL", None)
    flask = [str(ROOT / ".venv/bin/flask")]
    server = None
    try:
        subprocess.run([*flask, "db", "upgrade"], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        subprocess.run([*flask, "community", "import", "docs/example-community.yaml"], env=env,
                       cwd=ROOT, check=True, capture_output=True)
        code = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "-c",
             "from app import create_app\nfrom dispatch.db import db\n"
             "from dispatch.models import Place\nfrom qr.codes import ensure_stickers\n"
             "import sqlalchemy as sa\napp = create_app()\nwith app.app_context():\n"
             "    places = db.session.scalars(sa.select(Place)).all()\n"
             "    ensure_stickers(places); db.session.commit()\n"
             "    from dispatch.models import Sticker\n"
             "    print(db.session.scalars(sa.select(Sticker.code)).first())"],
            env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()[-1]
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "-w", "1", "--threads", "4", "-b",
             f"127.0.0.1:{args.port}", "--timeout", "120", "app:create_app()"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        worker = int(subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                    text=True).stdout.split()[0])
        body = photo(args.photo)
        clients = []
        for n in range(4):
            session = requests.Session()
            page = session.get(f"{base}/s/{code}").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
            clients.append((session, token, n))
        before = peak_rss_mb(worker)
        answers: list[int] = []

        def post(session: requests.Session, token: str, n: int) -> None:
            files = [("photos", (f"{n}-{i}.png", body)) for i in range(3)]
            answers.append(session.post(
                f"{base}/s/{code}/message", files=files, allow_redirects=False, timeout=120,
                data={"csrf_token": token, "category": "elevator", "text": "电梯"}).status_code)

        threads = [threading.Thread(target=post, args=c) for c in clients]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = peak_rss_mb(worker)
        print(f"photos: 3 × {args.photo}, {len(body) / 2**20:.1f} MB each; "
              f"4 requests of {3 * len(body) / 2**20:.1f} MB at once in "
              f"{time.perf_counter() - started:.1f} s; answers {sorted(answers)}")
        print(f"worker RSS before {before[0]:.0f} MB (peak {before[1]:.0f} MB); "
              f"peak during the uploads {after[1]:.0f} MB")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
