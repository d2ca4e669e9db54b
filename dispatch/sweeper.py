"""The sweeper: re-drives from the database whatever a lost job missed.

Redis may lose a queued job (a flush, a restart without persistence); the database never
loses the row that says the work is due. Every few seconds the sweeper looks for due work
and runs it through the same functions the jobs call.
"""

from __future__ import annotations


def sweep() -> int:
    """Run one sweep; returns how many items it re-drove."""
    return 0
