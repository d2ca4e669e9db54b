"""The private status page: a plain-words timeline in local time, live updates, and the 回访."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.case.timeline import EventKind, record
from dispatch.db import db
from dispatch.models import Callback, Case, CaseStatus, Member, Resolution
from tests.dispatch.resident.helpers import Resident, accept, receipt_token, walk_to_resolved


def _case(app: Flask, token: str) -> Case:
    return db.session.scalar(sa.select(Case).where(Case.public_token == token))


def test_status_page_shows_the_public_timeline_in_the_community_time_zone(
        app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    with app.app_context():
        case = _case(app, token)
        case.reported_at = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
        case.events[0].at = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
        accept(case, db.session.scalar(sa.select(Member).where(Member.code == "L1")))
        for event in case.events[1:]:
            event.at = datetime(2026, 11, 27, 2, 2, tzinfo=UTC)
        db.session.commit()
    html = resident.client.get(f"/c/{token}").get_data(as_text=True)
    assert "李师傅已接单，正在处理" in html
    timeline = html[html.index('<ol class="timeline"'):html.index("</ol>")]
    # 02:02 UTC is 10:02 in Asia/Shanghai
    assert "已收到反映" in timeline and "10:00" in timeline
    assert "已通知楼栋党小组" in timeline and "李师傅已接单" in timeline and "10:02" in timeline
    assert timeline.index("已收到反映") < timeline.index("已通知") < timeline.index("李师傅已接单")
    # internal lines (delivery details, skipped rungs, full names, phones) stay internal
    for internal in ("短信通知", "李建国", "13800138001", "无人值班"):
        assert internal not in html


def test_status_page_works_without_javascript_and_loads_a_small_script_with_it(
        app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    html = resident.client.get(f"/c/{token}").get_data(as_text=True)
    assert f'href="/c/{token}"' in html  # the refresh link
    assert '<script src="/static/status.js" defer></script>' in html
    assert f'data-live="/c/{token}/live"' in html


def test_live_json_carries_the_status_and_the_rendered_timeline(app: Flask,
                                                                resident: Resident) -> None:
    token = receipt_token(resident.message())
    first = resident.client.get(f"/c/{token}/live")
    assert first.status_code == 200 and first.headers["Cache-Control"] == "private, no-store"
    assert first.json["status"] == "open"
    with app.app_context():
        case = _case(app, token)
        accept(case, db.session.scalar(sa.select(Member).where(Member.code == "L1")))
    news = resident.client.get(f"/c/{token}/live").json
    assert news["status"] == "accepted" and "李师傅已接单" in news["timeline"]
    assert news["status_text"] == "李师傅已接单，正在处理"


def test_public_event_text_is_escaped(app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    with app.app_context():
        record(_case(app, token), EventKind.NOTE, "x", at=clock.now(),
               public="<script>alert(1)</script>")
        db.session.commit()
    html = resident.client.get(f"/c/{token}").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<script>alert(1)" not in json.dumps(resident.client.get(f"/c/{token}/live").json)


def test_unknown_status_links_get_the_helpful_404(resident: Resident) -> None:
    for token in ("A" * 22, "short", "x" * 60):
        response = resident.client.get(f"/c/{token}")
        assert response.status_code == 404
        assert "这个二维码或链接无法使用" in response.get_data(as_text=True)
    assert resident.client.get(f"/c/{'A' * 22}/live").status_code == 404


def test_callback_form_appears_only_after_resolution(app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    assert "回访：问题解决了吗？" not in resident.client.get(f"/c/{token}").get_data(as_text=True)
    refused = resident.callback(token, solved="yes")
    assert refused.status_code == 303
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Callback.id))) == 0
        walk_to_resolved(_case(app, token).id)
    html = resident.client.get(f"/c/{token}").get_data(as_text=True)
    assert "已处理完毕，请您回访" in html and "回访：问题解决了吗？" in html
    assert "已到场" in html and "已解决" in html


def test_callback_solved_closes_the_case_as_fixed(app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    with app.app_context():
        walk_to_resolved(_case(app, token).id)
    response = resident.callback(token, solved="partly", contacted="yes", satisfaction="4",
                                 comment="换了按钮，还有点响")
    assert response.status_code == 303
    html = resident.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "感谢您的回访" in html and "居民回访：部分解决" in html and "已办结" in html
    assert "回访：问题解决了吗？" not in html
    with app.app_context():
        case = _case(app, token)
        callback = db.session.scalar(sa.select(Callback))
        assert (case.status, case.resolution) == (CaseStatus.CLOSED, Resolution.FIXED)
        assert case.closed_at is not None and case.callback_at is not None
        assert (callback.solved.value, callback.contacted, callback.satisfaction,
                callback.comment) == ("partly", True, 4, "换了按钮，还有点响")
    again = resident.client.post(f"/c/{token}/callback", data={"solved": "no"})
    assert again.status_code == 400  # no CSRF token
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Callback.id))) == 1


def test_callback_not_solved_reopens_the_case(app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    with app.app_context():
        walk_to_resolved(_case(app, token).id)
    response = resident.callback(token, solved="no", contacted="no", comment="还是坏的")
    html = resident.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "已重新派单" in html and "未解决，已重新派单" in html
    with app.app_context():
        case = _case(app, token)
        assert (case.status, case.resolution, case.reopen_count) == (CaseStatus.OPEN, None, 1)
        assert case.open_key is not None


def test_bad_callback_answers_are_explained_and_kept(app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    with app.app_context():
        walk_to_resolved(_case(app, token).id)
    response = resident.callback(token, satisfaction="9", contacted="yes", comment="<b>好</b>")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "请选择问题是否解决。" in html and "请选择满意、基本满意或不满意。" in html
    assert ">&lt;b&gt;好&lt;/b&gt;</textarea>" in html
    assert 'name="contacted" value="yes" checked' in html
    with app.app_context():
        assert _case(app, token).status == CaseStatus.RESOLVED


def test_a_refused_callback_form_is_shown_again_with_the_answers(app: Flask,
                                                                 resident: Resident) -> None:
    token = receipt_token(resident.message())
    with app.app_context():
        walk_to_resolved(_case(app, token).id)
    response = resident.client.post(f"/c/{token}/callback",
                                    data={"solved": "partly", "comment": "还差一点"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "提交没有成功" in html
    assert 'name="solved" value="partly" checked' in html and ">还差一点</textarea>" in html
    with app.app_context():
        assert _case(app, token).status == CaseStatus.RESOLVED
