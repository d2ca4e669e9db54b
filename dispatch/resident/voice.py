"""Residents' voice notes (按住说话): a short recording sent with a message, checked by its bytes.

Some residents cannot type a problem on a phone, or cannot type it quickly: where the browser
can record (MediaRecorder), the sticker page's script records up to `MAX_SECONDS` and sends the
recording with the message form. What browsers produce is one of three containers, told apart
by their first bytes, never by the type the upload declares (a script can declare anything):

- WebM (EBML header, DocType ``webm``): Chromium, Edge and Firefox, ``audio/webm;codecs=opus``;
- MP4 (an ``ftyp`` box first): Safari on iOS and macOS, ``audio/mp4`` (AAC);
- Ogg (``OggS`` with an ``OpusHead``): older Firefox, ``audio/ogg;codecs=opus``.

The recording is stored as sent (re-encoding audio would need ffmpeg on every web server) and
served back with the type its bytes say, `nosniff`, only through routes that check who asks.
The page asks for 32 kbit/s, so 60 s is about 240 KB; `MAX_BYTES` leaves room for a browser
that ignores the asked rate and records at 128 kbit/s (about 0.96 MB a minute).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import IO

from flask import Response, send_file

from dispatch.models import VoiceNote

MAX_SECONDS = 60
#: The asked bit rate, in bits per second: speech stays clear in Opus at 24–32 kbit/s.
BITS_PER_SECOND = 32_000
MAX_BYTES = 1024 * 1024
#: Smaller than any real recording's header and first frame: an empty or cut-off file.
MIN_BYTES = 64

CONTENT_TYPES = ("audio/webm", "audio/mp4", "audio/ogg")
#: ISO base media files that are still images (HEIC photos, AVIF), not recordings.
IMAGE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif",
                          b"avis"})


class VoiceError(ValueError):
    """A file that is not a recording Linli accepts; `reason` is too_big or format."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Recording:
    data: bytes
    content_type: str


def check(stream: IO[bytes]) -> Recording:
    """Read an uploaded recording (at most `MAX_BYTES`) and name its type from its bytes."""
    data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise VoiceError("too_big")
    content_type = sniff(data)
    if content_type is None or len(data) < MIN_BYTES:
        raise VoiceError("format")
    return Recording(data, content_type)


def sniff(data: bytes) -> str | None:
    """The audio type the first bytes show, or None when they are no recording we take."""
    head = data[:64]
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"\x42\x82" in head and b"webm" in head:
        return "audio/webm"  # EBML, with the DocType element (0x4282) saying webm
    brand = head[8:12]
    if head[4:8] == b"ftyp" and brand.strip().isalnum() and brand not in IMAGE_BRANDS:
        return "audio/mp4"  # Safari writes iso5, mp42 or M4A; any brand but an image's
    if head.startswith(b"OggS") and b"OpusHead" in head:
        return "audio/ogg"
    return None


def rows(recordings: list[Recording], now: datetime) -> list[VoiceNote]:
    """Checked recordings as rows for `case.report.file_report` to store with their report."""
    return [VoiceNote(content_type=r.content_type, data=r.data, size=len(r.data),
                      created_at=now) for r in recordings]


def serve(note: VoiceNote, *, cache: str) -> Response:
    """The recording with the type its bytes showed, answering byte ranges: Safari plays media
    only from a server that does (and every browser seeks with them)."""
    response = send_file(BytesIO(note.data), mimetype=note.content_type, conditional=True,
                         etag=f"voice-{note.id}-{note.size}", max_age=None)
    response.headers["Cache-Control"] = cache
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
