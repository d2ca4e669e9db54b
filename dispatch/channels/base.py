"""The channel interface: one composed message in, the provider's answer out.

A sender knows its provider and nothing of cases, members or the outbox: the outbox composes
everything the provider is handed (`dispatch.outbox.texts`) into an `OutgoingMessage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

#: Errors after which the provider may or may not have the message: look before sending again,
#: and send exactly the same text and bundle if it does not.
LOOKUP_FAILED = "lookup-failed"
#: The process sending the row died mid-send (`outbox.delivery.recover_interrupted`).
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


#: What a sender is handed besides the address: plain text (SMS, console), an SMS template's
#: parameters (mainland SMS), a push payload.
Form = Literal["text", "template", "push", "card", "robot"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message as its provider gets it."""

    #: The outbox row's id: the reference a provider echoes back (Aliyun's `out_id`, the
    #: voice call's TwiML URL).
    id: int
    channel: str
    to: str
    #: The whole text as the recipient reads it (for voice, what the call says).
    text: str
    #: When the message was decided: a look-up after an uncertain failure searches from here.
    created_at: datetime
    #: The last attempt may have reached the provider (`UNCERTAIN`): look before sending again.
    uncertain: bool = False
    #: Someone must act now (an alert): shorter push TTL, high push urgency.
    urgent: bool = False
    template_params: Mapping[str, str] = field(default_factory=dict)
    push_keys: Mapping[str, Any] | None = None
    push_payload: Mapping[str, Any] = field(default_factory=dict)
    #: A card's fields (WeCom: title, place, category, urgency, reports, task_id, view_url).
    card: Mapping[str, Any] = field(default_factory=dict)
    #: Instead of a new message, update the card sent earlier with this `follow_up` code to
    #: read `text` (WeCom: "已由 王师傅 接单").
    update_of: str | None = None
    #: A group robot: its kind (wecom, dingtalk), key and signing secret.
    robot: Mapping[str, str] = field(default_factory=dict)
    #: When the message is handed over (the sender's clock, for a signature that expires).
    at: datetime | None = None


class Sender(Protocol):
    """A channel backend: hands one message to its provider.

    `form` says what it sends; `paced` that its messages to one phone are spaced and bundled
    (`dispatch.outbox.pacing`); `two_way` that the recipient can answer by reply codes;
    `looks_up` that after an uncertain failure it can ask its provider whether the message
    went out (the outbox then keeps the exact text before the first attempt).
    """

    form: Form
    paced: bool
    two_way: bool
    looks_up: bool

    def send(self, message: OutgoingMessage) -> SendResult: ...
