"""The Twilio SDK, set up once per app: its REST client and its webhook signature check.

`TWILIO_API_BASE_URL` (default Twilio's own) lets the real SDK talk to a Twilio-compatible
server: the client gets an HTTP client that rewrites every `https://*.twilio.com` address
onto that base, so tests and local runs exercise the SDK's own request building and error
parsing against a fake (tests/fakes/twilio_server.py).

Webhook URLs are built from `PUBLIC_BASE_URL`, and a webhook's signature is checked against the
URL rebuilt from it too: behind a TLS-terminating proxy `request.url` says http://127.0.0.1…,
while Twilio signed the public https URL.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Request, current_app
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.datastructures import MultiDict

#: Seconds to wait for Twilio's answer; a send that times out is retried later, carefully.
DEFAULT_TIMEOUT = 10.0
#: Where the SDK sends messages and calls.
API_URL = "https://api.twilio.com/2010-04-01"


class RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """Twilio's HTTP client, sending what it would send to *.twilio.com to `base_url` instead."""

    proxy: dict[str, str]  # TwilioHttpClient's, which twilio leaves unannotated

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(timeout=timeout)
        self.base = urlsplit(base_url.rstrip("/"))
        # requests looks up proxies and CA bundles in the environment on every request (a
        # scan of the whole environment, each SMS); it does not change under a running process,
        # so look once, for the host this client talks to.
        assert self.session is not None
        found = self.session.merge_environment_settings(self.rebase(API_URL), self.proxy, None,
                                                        None, None)
        self.session.trust_env = False
        self.proxy = found["proxies"]
        self.session.verify = found["verify"]

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(method, self.rebase(url), *args, **kwargs)

    def rebase(self, url: str) -> str:
        """`url` with Twilio's scheme and host swapped for the base URL's (path kept)."""
        parts = urlsplit(url)
        if self.base.netloc == "api.twilio.com" or not (parts.hostname or "").endswith(
                "twilio.com"):
            return url
        return urlunsplit((self.base.scheme, self.base.netloc, self.base.path + parts.path,
                           parts.query, parts.fragment))


def client(app: Flask | None = None) -> Client:
    """The app's Twilio REST client, built on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    built = app.extensions.get("linli.twilio")
    if built is None:
        http = RebasedHttpClient(app.config["TWILIO_API_BASE_URL"],
                                 float(app.config.get("TWILIO_TIMEOUT", DEFAULT_TIMEOUT)))
        built = app.extensions["linli.twilio"] = Client(
            app.config["TWILIO_ACCOUNT_SID"], app.config["TWILIO_AUTH_TOKEN"],
            http_client=http)
    return built


def public_url(path: str) -> str:
    """The absolute URL of one of our routes as Twilio reaches it (`PUBLIC_BASE_URL` + path)."""
    return str(current_app.config["PUBLIC_BASE_URL"]) + path


def is_signed(request: Request) -> bool:
    """Whether the request carries Twilio's valid `X-Twilio-Signature` for its public URL."""
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = public_url(request.full_path.rstrip("?"))
    # Twilio signed the values it sent, not the ones dispatch/security.py cleaned for the views.
    form = cast("MultiDict[str, str]", getattr(request, "raw_form", request.form))
    params = form.to_dict() if request.method == "POST" else {}
    return bool(RequestValidator(token).validate(url, params, signature))
