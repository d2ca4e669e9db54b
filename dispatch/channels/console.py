"""The console channel: logs each message and keeps the last ones in memory.

It stands in for a provider in development, the demo and tests: the outbox row is the stored
message, the log line is what "the provider" received. Addresses are logged with only their
last four digits, as everywhere else in the logs.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from dataclasses import dataclass

from dispatch.channels.base import SendResult
from dispatch.models import Notification

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConsoleMessage:
    notification_id: int
    channel: str
    to_address: str
    body: str
    provider_id: str


class ConsoleSender:
    """Takes every message at once and answers with a fresh provider id."""

    def __init__(self, keep: int = 1000) -> None:
        self.sent: deque[ConsoleMessage] = deque(maxlen=keep)

    def send(self, notification: Notification) -> SendResult:
        provider_id = f"console-{uuid.uuid4().hex[:20]}"
        self.sent.append(ConsoleMessage(notification.id, str(notification.channel),
                                        notification.to_address, notification.body, provider_id))
        log.info("console %s notification=%s to=…%s provider_id=%s\n%s",
                 notification.channel, notification.id, notification.to_address[-4:],
                 provider_id, notification.body)
        return SendResult.sent(provider_id)
