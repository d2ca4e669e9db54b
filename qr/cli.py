"""`flask --app app stickers …`: print sheets, reissue, retire and revoke sticker codes.

`scripts/print_qr_sheets.py` runs the same `print` command without the `flask` wrapper.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup
from tqdm import tqdm

from dispatch import clock
from dispatch.db import db
from dispatch.models import Community, PlaceKind, Sticker
from qr import codes, usage
from qr.printing import Selection, print_selection, resolve_scope, scope_name
from qr.sheet import LAYOUTS, Layout

stickers_cli = AppGroup("stickers", help="Print sticker sheets; reissue, retire, revoke codes.")

KIND_CHOICES = click.Choice([str(k) for k in codes.STICKER_KINDS])


@stickers_cli.command("print")
@click.argument("scope")
@click.option("--kind", "kinds", multiple=True, type=KIND_CHOICES,
              help="unit, elevator or area; repeat for several (default: all).")
@click.option("--layout", "layout_name", type=click.Choice(sorted(LAYOUTS)), default="3x4",
              show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="PDF to write (default: stickers-<scope>.pdf).")
@click.option("--max-per-file", default=2000, show_default=True,
              help="Split longer runs into numbered files, keeping memory flat.")
@click.option("--allow-insecure-url", is_flag=True,
              help="Print even for a localhost, private or plain-http PUBLIC_BASE_URL "
                   "(tests and demos only: such stickers do not work on the wall).")
def print_command(scope: str, kinds: tuple[str, ...], layout_name: str, out_path: Path | None,
                  max_per_file: int, allow_insecure_url: bool) -> None:
    """Print the stickers of a community, grid or building (SCOPE is its code)."""
    started = time.perf_counter()
    try:
        community, _ = resolve_scope(scope)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    selection = Selection(scope, tuple(PlaceKind(k) for k in kinds) or codes.STICKER_KINDS)
    out_path = out_path or Path(f"stickers-{scope}.pdf")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    today = clock.today(community.timezone, clock.now())
    bar = tqdm(unit="张", desc="printing", disable=True)

    def start(total: int) -> None:
        nonlocal bar
        bar = tqdm(total=total, unit="张", desc="printing",
                   disable=total < 200 or not sys.stderr.isatty())

    try:
        summary = print_selection(selection, current_app.config["PUBLIC_BASE_URL"], out_path,
                                  layout=Layout.preset(layout_name), printed_on=today,
                                  max_per_file=max_per_file, on_total=start,
                                  progress=lambda done: bar.update(done - bar.n),
                                  allow_insecure_url=allow_insecure_url)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(f"{exc}; nothing was printed or issued") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    click.echo(f"{summary.stickers} stickers, {summary.pages} pages, {len(summary.files)} "
               f"file(s) in {seconds:.1f} s:")
    for path in summary.files:
        click.echo(f"  {path}")


def _sticker(code: str) -> Sticker:
    sticker = codes.find(code)
    if sticker is None:
        raise click.ClickException(f"no sticker {code!r}")
    return sticker


@stickers_cli.command("reissue")
@click.argument("code")
@click.option("--note", help="Why, e.g. 贴纸破损.")
def reissue_command(code: str, note: str | None) -> None:
    """Issue a replacement code for a damaged sticker; the old one keeps working for now."""
    new = codes.reissue(_sticker(code), note)
    db.session.commit()
    click.echo(f"{new.place.code}: new sticker {new.code} (old {code} works until retired)")


@stickers_cli.command("retire")
@click.argument("code")
def retire_command(code: str) -> None:
    """Take a replaced sticker out of use."""
    codes.retire(_sticker(code))
    db.session.commit()
    click.echo(f"retired {code}")


@stickers_cli.command("revoke")
@click.argument("code")
@click.option("--note", help="Why, e.g. abuse.")
def revoke_command(code: str, note: str | None) -> None:
    """Stop an abused sticker: scans are recorded and reach no member."""
    codes.revoke(_sticker(code), note)
    db.session.commit()
    click.echo(f"revoked {code}")


@stickers_cli.command("unscanned")
@click.argument("scope", required=False)
@click.option("--days", default=usage.UNSCANNED_DAYS, show_default=True, type=click.IntRange(1),
              help="Report stickers printed this long ago and not scanned since.")
def unscanned_command(scope: str | None, days: int) -> None:
    """List stickers nobody has scanned for DAYS days: check they are still on the wall.

    SCOPE is a community, grid or building code (default: the only community).
    """
    try:
        community, root = resolve_scope(scope) if scope else (_only_community(), None)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    rows = usage.unscanned(community, clock.now(), days=days, root=root)
    for row in rows:
        last = clock.format_local(row.last, community.timezone, "%Y-%m-%d", empty="从未扫码")
        click.echo(f"{row.place.code}\t{row.place.label}\t{row.sticker.code}\t{last}")
    click.echo(f"{len(rows)} sticker(s) of {scope_name(community, root)} not scanned for "
               f"{days} days", err=True)


def _only_community() -> Community:
    communities = db.session.scalars(sa.select(Community).limit(2)).all()
    if len(communities) != 1:
        raise LookupError("several communities (or none): name one as SCOPE")
    return communities[0]


def init_app(app: Flask) -> None:
    app.cli.add_command(stickers_cli)
