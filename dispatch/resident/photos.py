"""Residents' photos: checked, re-encoded as plain JPEG, every byte of metadata left behind.

A phone photo carries EXIF: the GPS position of the resident's flat, the phone model, the
time. Decoding the pixels and writing a fresh JPEG without the `exif` argument drops all of
it; the orientation is applied to the pixels first so nothing comes out sideways.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from io import BytesIO
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from dispatch.models import Photo

MAX_PHOTOS = 3
MAX_BYTES = 10 * 1024 * 1024  # per photo, as uploaded
MAX_PIXELS = 50_000_000  # a 48-megapixel phone camera still fits
MAX_SIDE = 1600  # enough to see a crack or a meter reading; small on a slow line
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")


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
    content_type: str = "image/jpeg"


def reencode(stream: IO[bytes], max_bytes: int | None = None) -> Reencoded:
    """Decode an uploaded image and write it again as a metadata-free JPEG."""
    max_bytes = max_bytes or MAX_BYTES
    raw = stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PhotoError("too_big")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(BytesIO(raw))
            kind, pixels = image.format, image.width * image.height
            if kind in ACCEPTED_FORMATS and pixels <= MAX_PIXELS:
                image = _flatten(ImageOps.exif_transpose(image))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise PhotoError("too_big") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise PhotoError("not_image") from None
    if kind not in ACCEPTED_FORMATS:
        raise PhotoError("format")
    if pixels > MAX_PIXELS:
        raise PhotoError("too_big")
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    out = BytesIO()
    image.save(out, "JPEG", quality=82, optimize=True)
    return Reencoded(out.getvalue(), image.width, image.height)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: JPEG has no transparency, and a transparent PNG would turn black."""
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def rows(photos: list[Reencoded]) -> list[Photo]:
    """Re-encoded photos as rows for `cases.file_report` to store with their report."""
    return [Photo(content_type=p.content_type, data=p.data, width=p.width, height=p.height)
            for p in photos]
