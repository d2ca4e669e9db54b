"""Command-line tools for staff and operators: `flask --app app community …`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from dispatch import community as community_files
from dispatch.community import CommunityFileError

community_cli = AppGroup("community", help="Import, export and demo community files.")


@community_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(path: Path) -> None:
    """Import (or re-import) a community from a .yaml or .xlsx file."""
    try:
        community, changes = community_files.import_file(path)
    except CommunityFileError as exc:
        click.echo(f"{path.name}: {len(exc.problems)} problem(s); nothing was imported.", err=True)
        for where, message in exc.problems:
            click.echo(f"  {where}: {message}", err=True)
        sys.exit(1)
    click.echo(f"Imported {community.code} {community.name}:")
    for line in changes.lines():
        click.echo(f"  {line}")


@community_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--community", "code", help="Community code, if there are several.")
def export_command(path: Path, code: str | None) -> None:
    """Export a community to a .yaml or .xlsx file that re-imports to the same state."""
    community = community_files.export_file(path, code)
    click.echo(f"Exported {community.code} {community.name} to {path}")


@community_cli.command("demo")
@click.option("--seed", default=2018, show_default=True, help="Same seed, same community.")
def demo_command(seed: int) -> None:
    """Generate and import the Donghu-sized demo community (idempotent)."""
    started = time.perf_counter()
    community, changes = community_files.load_demo(seed)
    summary = "no changes" if changes.empty else f"{sum(map(len, changes.added.values()))} added"
    click.echo(f"Demo community {community.code} {community.name} ready ({summary}, "
               f"{time.perf_counter() - started:.1f} s).")


def init_app(app: Flask) -> None:
    app.cli.add_command(community_cli)
