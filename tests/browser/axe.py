"""axe-core in the browser tests: inject it into a page and list what it finds.

axe-core is installed from tests/browser/package-lock.json by `scripts/install.sh --tests`
(`npm ci --prefix tests/browser`); it is never served by the app. Without it the check skips
loudly (and fails under LINLI_REQUIRE_SERVICES=1, as CI runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import unavailable

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"


def violations(page: Any) -> list[str]:
    """axe's WCAG 2.x A/AA violations on the page as it is now, one line each."""
    if not AXE.exists():
        unavailable("axe-core (scripts/install.sh --tests installs it)", FileNotFoundError(AXE))
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {runOnly: {type: "tag",
            values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}});
        return result.violations.map(v => v.id + ": " + v.help + " → " +
            v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", "));
    }""")
    return list(found)
