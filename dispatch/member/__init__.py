"""The member pages at /m: party members and volunteers act on a case from their phone.

`pages` (a member's open cases and the actions on one, by signed links), `push` (Web Push
subscriptions on the member's own phone). Templates: `templates/member`.
"""

from __future__ import annotations

from flask import Flask

from dispatch.member import pages, push


def init_app(app: Flask) -> None:
    app.register_blueprint(pages.bp)
    app.register_blueprint(push.bp)
