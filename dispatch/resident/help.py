"""Help with choosing a category: an example under each, and a nudge towards the urgent one.

"挡住了消防通道" filed under 环境卫生 is low urgency and waits for Monday; the resident meant a
safety hazard. Two helps, both from the community file with the defaults below:

- the `example` (and `example_en`) column of `categories`: one line under each category;
- the `urgent_words` table (`word`, `category`): words that suggest an urgent category.

The nudge is shown by the page's script as the resident types, and checked again on the
server: a message whose text has such a word, sent under a category that is not urgent, comes
back once asking to confirm, with its text and photos kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispatch.community import settings
from dispatch.models import Community, Urgency
from dispatch.resident import i18n

DEFAULT_EXAMPLES: dict[str, tuple[str, str]] = {
    "repair": ("如：楼道灯不亮、水管漏水、门禁坏了", "e.g. stair lights out, a leaking pipe"),
    "elevator": ("如：电梯停运、门关不上、有异响", "e.g. lift stopped, door will not close"),
    "safety": ("如：堵了消防通道、燃气味、电线裸露", "e.g. fire lane blocked, gas smell"),
    "noise": ("如：深夜装修、噪音持续不停", "e.g. renovation late at night"),
    "sanitation": ("如：垃圾没清运、楼道堆物", "e.g. rubbish not collected"),
    "dispute": ("如：漏水到楼下、占用公共空间", "e.g. water leaking to the flat below"),
    "help": ("如：独居老人需要帮助、有人摔倒", "e.g. an elderly neighbour needs help"),
    "other": ("以上都不是的问题", "anything not listed above"),
}

DEFAULT_URGENT_KEYWORDS: dict[str, str] = {
    "消防通道": "safety", "安全出口": "safety", "燃气": "safety", "煤气": "safety",
    "天然气": "safety", "漏电": "safety", "触电": "safety", "电线": "safety",
    "着火": "safety", "起火": "safety", "冒烟": "safety", "烟味": "safety",
    "倒塌": "safety", "坠落": "safety", "被困": "elevator", "困人": "elevator",
    "摔倒": "help", "晕倒": "help",
}


@dataclass(frozen=True, slots=True)
class Nudge:
    keyword: str
    code: str  # the urgent category suggested
    name: str  # its name in the resident's language


def examples(community: Community) -> dict[str, str]:
    """The example line for each category code, in the resident's language."""
    rows: list[dict[str, Any]] = community.settings.get("categories") or []
    configured = {str(r.get("code")): (r.get("example"), r.get("example_en")) for r in rows}
    en = i18n.language() == "en"
    shown = {}
    for category in settings.categories(community):
        zh, english = configured.get(category.code, (None, None))
        if not zh:
            zh, english = DEFAULT_EXAMPLES.get(category.code, (None, None))
        if zh:
            shown[category.code] = str(english if en and english else zh)
    return shown


def urgent_keywords(community: Community) -> dict[str, str]:
    """word → urgent category code, limited to categories the community has as urgent."""
    urgent = {c.code for c in settings.categories(community) if c.urgency == Urgency.URGENT}
    configured = community.settings.get("urgent_words")
    words = ({str(w["word"]): str(w["category"]) for w in configured}
             if configured else DEFAULT_URGENT_KEYWORDS)
    return {k: v for k, v in words.items() if k and v in urgent}


def nudge(community: Community, category_code: str, text: str | None) -> Nudge | None:
    """The urgent category a message's words suggest, if it was sent under one not urgent."""
    chosen = settings.category(community, category_code)
    if not text or chosen is None or chosen.urgency == Urgency.URGENT:
        return None
    for keyword, code in urgent_keywords(community).items():
        if keyword in text:
            found = settings.category(community, code)
            if found is not None:
                return Nudge(keyword, code, i18n.category_name(found))
    return None
