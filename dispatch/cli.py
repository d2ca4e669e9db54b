"""Command-line tools for staff and operators: `flask --app app community …`, `worker`…"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import redis.exceptions
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from flask import Flask, current_app
from flask.cli import AppGroup

from dispatch import channels, clock, jobs
from dispatch import community as community_files
from dispatch.community import CommunityFileError, history
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.models import Case, Community
from dispatch.resident import pages

community_cli = AppGroup("community", help="Import, export and demo community files.")


@community_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--partial", help="Update only these tables (comma-separated, e.g. "
                                "community,categories); the others stay as they are.")
def import_command(path: Path, partial: str | None) -> None:
    """Import (or re-import) a community from a .yaml or .xlsx file."""
    tables = [t.strip() for t in partial.split(",") if t.strip()] if partial else None
    try:
        community, changes = community_files.import_file(path, tables)
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # e.g. out/, as the README writes
        community = community_files.export_file(path, code)
    except (LookupError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Exported {community.code} {community.name} to {path}")


@community_cli.command("demo")
@click.option("--seed", default=2018, show_default=True, help="Same seed, same community.")
@click.option("--if-empty", is_flag=True,
              help="Only into a database without a community: a restart keeps what staff "
                   "changed in the console (re-importing the demo would undo it).")
@click.option("--history", "history_days", type=click.IntRange(0, 730), default=0,
              help="Also seed this many days of past cases, through the lifecycle, so the "
                   "dashboard has figures (only into a community without cases).")
def demo_command(seed: int, if_empty: bool, history_days: int) -> None:
    """Generate and import the Donghu-sized demo community (idempotent)."""
    if if_empty and db.session.scalar(sa.select(Community.id).limit(1)) is not None:
        click.echo("A community is already in the database: the demo is not imported again "
                   "(without --if-empty it would be, undoing changes made in the console).")
        return
    started = time.perf_counter()
    community, changes = community_files.load_demo(seed)
    counts = [f"{sum(map(len, getattr(changes, kind).values()))} {kind}"
              for kind in ("added", "updated", "removed") if getattr(changes, kind)]
    summary = ", ".join(counts) or "no changes"
    click.echo(f"Demo community {community.code} {community.name} ready ({summary}, "
               f"{time.perf_counter() - started:.1f} s).")
    if not history_days:
        return
    if db.session.scalar(sa.select(Case.id).where(Case.community_id == community.id).limit(1)):
        click.echo("The community has cases already: no history seeded.")
        return
    started = time.perf_counter()
    seeded = history.seed(community, history_days, clock.now(), seed=seed)
    click.echo(f"Seeded {seeded.cases} past cases ({seeded.reports} reports) over "
               f"{history_days} days ({time.perf_counter() - started:.1f} s).")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run the jobs queued now, then exit.")
@click.option("--worker-class", type=click.Choice(sorted(jobs.WORKER_CLASSES)), default="fork",
              envvar="WORKER_CLASS", show_default=True,
              help="fork: a work horse per job; simple: jobs run in the worker process.")
def worker_command(burst: bool, worker_class: str) -> None:
    """Run an RQ worker (forking, with the scheduler) for escalation steps and messages."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("REDIS_URL"):
        raise click.UsageError("REDIS_URL is not set: jobs run inside the web process "
                               "(the embedded runner), so there is no worker to start.")
    # Built before the worker forks, so each work horse inherits them ready instead of building
    # them, and importing a provider SDK, for every job it runs.
    channels.prepare(app)
    jobs.work(app, burst=burst, worker_class=worker_class)


@click.command("sweeper")
@click.option("--once", is_flag=True, help="Sweep once and exit (for cron or a health check).")
def sweeper_command(once: bool) -> None:
    """Re-drive due escalation steps and stuck messages from the database every SWEEP_SECONDS.

    With REDIS_URL the work it finds is done here and what follows goes to the RQ workers;
    without it, this process runs the embedded runner (steps, sends and sweeps) on its own.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    interval = float(app.config["SWEEP_SECONDS"])
    runner = jobs.runner(app)
    if once:
        click.echo(f"Re-drove {sweeper.sweep()} item(s).")
        if isinstance(runner, jobs.EmbeddedRunner):
            runner.drain()
        return
    click.echo(f"Sweeping every {interval:g} s ({runner.kind} runner); Ctrl-C stops.")
    if isinstance(runner, jobs.EmbeddedRunner):
        runner.start()
        while runner.alive:
            time.sleep(1)
        return
    while True:
        started = time.monotonic()
        try:
            with app.app_context():  # a fresh session per sweep
                sweeper.sweep()
        except Exception:  # a database blip must not end the sweeper; the next sweep retries
            app.logger.exception("sweep failed")
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


pages_cli = AppGroup("pages", help="The kept sticker pages.")


@pages_cli.command("clear")
def pages_clear_command() -> None:
    """Drop every kept sticker page, in every web process (after editing the database by
    hand: nothing else tells them)."""
    if not pages.clear(current_app):
        raise click.ClickException(
            "Redis (REDIS_URL) did not answer: the web processes still keep their pages. "
            "Run this again once Redis is back.")
    click.echo("Every kept sticker page is dropped; each is rendered again at its next scan.")


def init_app(app: Flask) -> None:
    app.cli.add_command(community_cli)
    app.cli.add_command(pages_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(sweeper_command)


def database_message(error: sa_exc.SQLAlchemyError) -> str:
    """The driver's first line (what went wrong, e.g. which constraint), without the statement
    and its parameters: those may hold a password hash, a phone number or a token."""
    cause = getattr(error, "orig", None) or error
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return f"the database refused this: {first}"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def guard_database_errors(app: Flask) -> None:
    """Make a database (or Redis) error in any of the app's commands one line and exit code 1.

    Called once every command is registered (app.py), so no command can forget it: an
    operator gets what went wrong, not a traceback that prints the failed statement's values.
    """
    def guard(command: click.Command) -> None:
        if isinstance(command, click.Group):
            for child in command.commands.values():
                guard(child)
        if command.callback is None or getattr(command.callback, "_guarded", False):
            return
        callback: Callable[..., Any] = command.callback

        @functools.wraps(callback)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except sa_exc.SQLAlchemyError as exc:
                raise click.ClickException(database_message(exc)) from None
            except redis.exceptions.ConnectionError as exc:
                where = _without_password(str(app.config.get("REDIS_URL")))
                raise click.ClickException(f"Redis at {where} is not reachable ({exc})") from None

        guarded._guarded = True  # type: ignore[attr-defined]
        command.callback = guarded

    guard(app.cli)
