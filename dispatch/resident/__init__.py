"""The resident side: the page a sticker opens, the receipt, and the private status page.

A resident — often elderly, often on a weak signal in a lift — scans a sticker and, with no
app and no login, calls the person on duty or leaves a message, then follows it to the 回访.
The pages are small (HTML and CSS under 30 KB), work without JavaScript, and are in Chinese
with an English switch. `init_app` wires up the languages, the rate limits and the routes.
"""

from __future__ import annotations

from flask import Flask

from dispatch.resident import fast, i18n, limits, pages, scans, views

#: Defaults a deployment may override in its config.
DEFAULTS = {
    # Shown when no community is known (an unknown code): the citizens' service hotline.
    "RESIDENT_FALLBACK_HOTLINE": "12345",
    # How often the status page's script asks for news.
    "RESIDENT_POLL_SECONDS": 15,
}


def init_app(app: Flask) -> None:
    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    i18n.init_app(app)
    limits.init_app(app)
    pages.init_app(app)
    scans.init_app(app)
    app.register_blueprint(views.bp)
    if "linli.pages" in app.extensions:
        app.wsgi_app = fast.KeptPages(app, app.wsgi_app)  # type: ignore[method-assign]
