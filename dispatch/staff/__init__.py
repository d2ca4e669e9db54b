"""The staff console at /staff: community workers log in here to run the community.

`auth` (logins, roles), `console` (the frame: sections, filters), `board` (open cases and the
case page, with staff actions through `case.lifecycle`), `roster`, `dashboard`, `reports`
(the monthly Excel), `charts`, `stickers`, `notices`, `blocklist`, `coverage`, `audit`, `scope`
(what each login may see). Templates: `templates/staff`.
"""

from __future__ import annotations

from flask import Flask

from dispatch.staff import auth, blocklist, console, notices, stickers


def init_app(app: Flask) -> None:
    auth.init_app(app)
    console.init_app(app)
    for module in (stickers, blocklist, notices):
        app.register_blueprint(module.bp)
