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

from dispatch.channels.base import Form, OutgoingMessage, SendResult

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

    form: Form = "text"
    paced = False
    two_way = False
    looks_up = False

    def __init__(self, keep: int = 1000) -> None:
        self.sent: deque[ConsoleMessage] = deque(maxlen=keep)

    def send(self, message: OutgoingMessage) -> SendResult:
        provider_id = f"console-{uuid.uuid4().hex[:20]}"
        self.sent.append(ConsoleMessage(message.id, message.channel, message.to, message.text,
                                        provider_id))
        log.info("console %s notification=%s to=…%s provider_id=%s\n%s",
                 message.channel, message.id, message.to[-4:], provider_id, message.text)
        return SendResult.sent(provider_id)
