"""Residents' photos: checked, re-encoded as plain JPEG, every byte of metadata left behind.

A phone photo carries EXIF: the GPS position of the resident's flat, the phone model, the
time. Decoding the pixels and writing a fresh JPEG without the `exif` argument drops all of
it; the orientation is applied to the pixels first so nothing comes out sideways.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from typing import IO

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from dispatch.models import Photo

# HEIC/HEIF, what many phones save, read through libheif (pillow-heif's wheel bundles it).
pillow_heif.register_heif_opener()

MAX_PHOTOS = 3
MAX_BYTES = 10 * 1024 * 1024  # per photo, as uploaded
MAX_PIXELS = 50_000_000  # a 48-megapixel phone camera still fits
#: Formats decoded whole (PNG, WebP) may have fewer: a 12-megapixel RGBA image is 48 MB in
#: memory, and a 7000 × 7000 palette PNG of 143 KB would be 196 MB once made RGBA.
MAX_PIXELS_DECODED_WHOLE = 12_000_000
MAX_SIDE = 1600  # enough to see a crack or a meter reading; small on a slow line
#: The case page shows photos 96 px wide; twice that stays sharp on a phone's 2× screen.
THUMBNAIL_SIDE = 192
#: MPO is what many phone cameras write: a JPEG with a second (depth or preview) image;
#: HEIF is the HEIC of iPhones and many Android phones.
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "HEIF")
#: HEIF is decoded whole, as RGB: 16 megapixels is 48 MB, the bound measured for PNG (RGBA, 12
#: megapixels); a 12-megapixel phone (4032 × 3024) fits. Larger ones are shrunk by the page's
#: script before upload where the browser can read them (Safari), or refused as too big.
MAX_PIXELS_HEIF = 16_000_000
#: Formats Pillow can decode at 1/2, 1/4 or 1/8 scale, so a 48-megapixel photo never is.
SCALED_DECODE = ("JPEG", "MPO")


class PhotoError(ValueError):
    """A file that is not a photo Linli accepts; `reason` is too_big, not_image or format."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Reencoded:
    data: bytes
    width: int
    height: int
    thumbnail: bytes | None = None
    content_type: str = "image/jpeg"


def reencode(stream: IO[bytes], max_bytes: int | None = None) -> Reencoded:
    """Decode an uploaded image and write it again as a metadata-free JPEG.

    The size is checked from the file's header, before a pixel is decoded; JPEGs are decoded
    straight at the smallest scale that still gives `MAX_SIDE`, which keeps a worker's memory
    flat whatever the camera (docs/security.md gives the figures).
    """
    max_bytes = max_bytes or MAX_BYTES
    if stream.seekable():  # an upload waits in a temporary file: decode it from there
        stream.seek(0, 2)
        size = stream.tell()
        stream.seek(0)
    else:
        stream = BytesIO(stream.read(max_bytes + 1))
        size = len(stream.getbuffer())
    if size > max_bytes:
        raise PhotoError("too_big")
    return _decoder.submit(_reencode, stream).result()


#: Photos are decoded one at a time, on one thread of each process. A worker's threads
#: decoding at once would each hold a decoded image (48 MB for 12 megapixels in RGBA), and the
#: C allocator keeps what a thread freed in that thread's own arena: four threads measured
#: 640 MB where one decoding thread keeps a worker under 300 MB (docs/security.md). Decoding
#: takes a tenth of a second or so; the thread starts on first use, after gunicorn forks.
_decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linli-photos")


def _reencode(stream: IO[bytes]) -> Reencoded:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image: Image.Image = Image.open(stream)
            kind, pixels = image.format, image.width * image.height
            if kind not in ACCEPTED_FORMATS:
                raise PhotoError("format")
            limit = (MAX_PIXELS if kind in SCALED_DECODE
                     else MAX_PIXELS_HEIF if kind == "HEIF" else MAX_PIXELS_DECODED_WHOLE)
            if pixels > limit:
                raise PhotoError("too_big")
            if kind in SCALED_DECODE:
                image.draft("RGB", _fitting(image.size))
            image.thumbnail((MAX_SIDE, MAX_SIDE))
            image = _flatten(ImageOps.exif_transpose(image))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise PhotoError("too_big") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, PhotoError):
                raise
            raise PhotoError("not_image") from None
    # Whatever the decoder kept (a JPEG comment, an ICC profile, XMP) stays behind.
    image.info = {}
    out = BytesIO()
    image.save(out, "JPEG", quality=82, optimize=True)
    return Reencoded(out.getvalue(), image.width, image.height, _thumbnail(image))


def _thumbnail(image: Image.Image) -> bytes:
    """A JPEG at most `THUMBNAIL_SIDE` pixels a side: 5–10 KB where the photo is 100s of KB."""
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = BytesIO()
    small.convert("RGB").save(out, "JPEG", quality=75, optimize=True)
    return out.getvalue()


def thumbnail_of(data: bytes) -> bytes | None:
    """The thumbnail of a stored (already re-encoded) photo, or None if it cannot be decoded.

    For photos stored before thumbnails were made at upload; decoded on the photo thread,
    at the smallest JPEG scale that still gives the thumbnail.
    """
    def make() -> bytes | None:
        try:
            image = Image.open(BytesIO(data))
            image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            return _thumbnail(image)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                Image.DecompressionBombError):
            return None
    return _decoder.submit(make).result()


def _fitting(size: tuple[int, int]) -> tuple[int, int]:
    """The size whose longest side is MAX_SIDE: what the decoder must at least deliver."""
    width, height = size
    scale = min(1.0, MAX_SIDE / max(width, height, 1))
    return max(1, int(width * scale)), max(1, int(height * scale))


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: JPEG has no transparency, and a transparent PNG would turn black."""
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def rows(photos: list[Reencoded]) -> list[Photo]:
    """Re-encoded photos as rows for `case.report.file_report` to store with their report."""
    return [Photo(content_type=p.content_type, data=p.data, width=p.width, height=p.height,
                  thumbnail=p.thumbnail) for p in photos]
