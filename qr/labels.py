"""What one printed sticker says, and the URL its QR code points to.

A sticker (二维码贴纸) is stuck in a unit's entrance (单元), inside an elevator (电梯) or at an area
such as a gate (岗亭). Residents scan it to call the community's duty staff or leave a message.
"""

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

KINDS = ("unit", "elevator", "area")

# QR alphanumeric mode packs 2 characters into 11 bits instead of 16 in byte mode, so a URL that
# stays inside this set gets a smaller symbol and, at a fixed print size, larger modules.
QR_ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")

CALL_TO_ACTION = "扫码一键呼叫 / 留言"
ELEVATOR_EMERGENCY = "被困请按警铃 · 电梯应急 96333"
ELEVATOR_CALL_TO_ACTION = "电梯故障 · " + CALL_TO_ACTION


@dataclass(frozen=True, slots=True)
class StickerLabel:
    """The data printed on one sticker; `url` is what its QR code encodes."""

    code: str
    url: str
    community: str
    place: str
    kind: str
    hotline: str
    place_code: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"sticker kind {self.kind!r} is not one of {', '.join(KINDS)}")


def sticker_url(public_base_url: str, code: str) -> str:
    """Return the URL a sticker encodes, upper-cased so the QR code can use alphanumeric mode.

    Scheme and host are case-insensitive, so `HTTPS://LINLI.EXAMPLE.CN` is the same site; the
    `/S/<code>` route must accept its code case-insensitively. A path in the base URL is
    upper-cased too, so the base URL should be just scheme, host and port.
    """
    url = f"{public_base_url.rstrip('/')}/S/{code}".upper()
    outside = sorted(set(url) - QR_ALPHANUMERIC)
    if outside:
        raise ValueError(
            f"sticker URL {url!r} has characters outside QR alphanumeric mode: {''.join(outside)!r}"
        )
    return url


class InsecureUrlError(ValueError):
    """A base URL no phone out on the street can reach, or only over plain http."""


def check_printable_url(public_base_url: str) -> None:
    """Refuse to print codes for a base URL that is useless or unsafe once on the wall.

    A sticker lives for years: localhost, a private or link-local address or a one-word intranet
    host cannot be reached from a resident's phone, and plain http lets anyone on the path swap
    the page. Decided from the URL alone, without DNS: printing works offline.
    """
    parts = urlsplit(public_base_url)
    host = (parts.hostname or "").rstrip(".").lower()
    why = None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        why = "is this machine or the local network"
    elif address is not None and not address.is_global:
        why = "is a private, loopback or reserved address"
    elif address is None and "." not in host:
        why = "is not a public host name"
    elif parts.scheme != "https":
        why = "is plain http, not https"
    if why:
        raise InsecureUrlError(
            f"PUBLIC_BASE_URL {public_base_url} {why}: phones scanning the stickers could not "
            f"reach it safely. Set PUBLIC_BASE_URL to the public https address "
            f"(e.g. https://linli.example.cn), or pass --allow-insecure-url for a test or demo"
        )


def grouped_code(code: str, group: int = 4) -> str:
    """Split a sticker code into dash-separated groups (K7QM-3X9P-Z2AB) for reading or typing."""
    return "-".join(code[i : i + group] for i in range(0, len(code), group))


def hotline_text(hotline: str) -> str:
    """The fallback line printed on every sticker: a phone call works without mobile data."""
    return f"无网络请拨 社区值班电话 {hotline}"


def code_text(code: str, place_code: str = "") -> str:
    """The sticker code as printed for manual entry, then the place's code in the community.

    The place code tells two stickers with the same name apart on the sheet and on the wall.
    """
    text = f"编号 {grouped_code(code)}"
    return f"{text} · {place_code}" if place_code else text


def call_to_action(kind: str, community: str) -> str:
    """What scanning does, after whom it calls: 东湖花园 · 扫码一键呼叫 / 留言.

    On elevators it comes after the emergency line, so it names faults.
    """
    action = ELEVATOR_CALL_TO_ACTION if kind == "elevator" else CALL_TO_ACTION
    return f"{community} · {action}"
