"""The dashboard's charts: whole-number ticks for counts, a unit on every axis, readable text."""

from __future__ import annotations

import re

import pytest

from dispatch.staff import charts


@pytest.mark.parametrize("most, expected", [
    (0, [0, 1]), (1, [0, 1]), (4, [0, 1, 2, 3, 4]), (5, [0, 2, 4, 6]), (9, [0, 5, 10]),
    (40, [0, 10, 20, 30, 40]), (250, [0, 100, 200, 300])])
def test_count_axes_tick_in_whole_numbers(most: int, expected: list[int]) -> None:
    assert charts.ticks(most, integer=True) == expected


def _tick_labels(svg: str) -> list[str]:
    return re.findall(r'text-anchor="end" fill="#444">([^<（]+)</text>', svg)


def test_a_count_chart_of_small_numbers_has_no_fractional_ticks_and_names_its_unit() -> None:
    svg = str(charts.bars(["11-02", "11-09", "11-16"], [("案件数", [1, 0, 1])],
                          title="每周案件数", integer=True, unit="件"))
    assert _tick_labels(svg) == ["0", "1"]
    assert "（件）" in svg


@pytest.mark.parametrize("svg", [
    charts.bars(["a", "b"], [("案件数", [3, 5])], title="t", integer=True, unit="件"),
    charts.lines(["a", "b"], [("中位数", [2.5, 7.0])], title="t", unit="分钟"),
    charts.stacked([("楼栋", 0.5), ("网格", 0.5)], title="t")])
def test_no_chart_text_is_smaller_than_12_pixels(svg: object) -> None:
    sizes = [int(s) for s in re.findall(r'font-size="(\d+)"', str(svg))]
    assert sizes and min(sizes) >= 12
