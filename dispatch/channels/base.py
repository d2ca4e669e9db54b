"""The channel interface: one message in, the provider's answer out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dispatch.models import Notification

#: Errors after which the provider may or may not have the message: look before sending again,
#: and send exactly the same text and bundle if it does not.
LOOKUP_FAILED = "lookup-failed"
#: The process sending the row died mid-send (`outbox.recover_interrupted`).
INTERRUPTED = "interrupted"
UNCERTAIN = frozenset({"timeout", "connection", "http-500", "http-502", "http-503", "http-504",
                       LOOKUP_FAILED, INTERRUPTED})


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider said: its id for the message, or an error and whether to retry."""

    provider_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    retryable: bool = False
    #: What the provider hands back for acting on the message later, besides its id: WeCom's
    #: `response_code`, without which a sent card cannot be updated ("已由 王师傅 接单").
    follow_up: str | None = None

    @property
    def ok(self) -> bool:
        return self.provider_id is not None

    @classmethod
    def sent(cls, provider_id: str, follow_up: str | None = None) -> SendResult:
        return cls(provider_id=provider_id, follow_up=follow_up)

    @classmethod
    def failed(cls, error_code: str, error: str, *, retryable: bool) -> SendResult:
        return cls(error_code=error_code, error=error, retryable=retryable)


class Sender(Protocol):
    """A channel backend: hands one message to its provider."""

    def send(self, notification: Notification) -> SendResult: ...
