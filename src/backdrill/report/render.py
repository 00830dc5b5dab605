"""Render a drill report as Markdown and as one self-contained HTML page (inline CSS
and SVG, no external assets), and the drill history page."""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from backdrill.report.charts import TrendPoint, timeline_svg, trend_svg
from backdrill.report.model import DRILL_PROVES, DrillReport
from backdrill.timeutil import human_duration, human_size

_ENV = Environment(
    loader=PackageLoader("backdrill.report", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["duration"] = human_duration
_ENV.filters["size"] = human_size


def trend_points(reports: Sequence[DrillReport]) -> list[TrendPoint]:
    return [
        TrendPoint(
            label=r.started_at.strftime("%Y-%m-%d"),
            rpo_hours=r.rpo.achieved_seconds / 3600,
            rto_hours=r.rto.achieved_seconds / 3600,
            passed=r.result == "pass",
        )
        for r in reports
        if r.rpo is not None and r.rto is not None
    ]


def _targets(reports: Sequence[DrillReport]) -> tuple[float, float]:
    for r in reversed(reports):
        if r.rpo is not None and r.rto is not None:
            return r.rpo.target_seconds / 3600, r.rto.target_seconds / 3600
    return 24.0, 4.0


def render_markdown(report: DrillReport) -> str:
    return _ENV.get_template("report.md.j2").render(r=report, drill_proves=DRILL_PROVES)


def render_html(report: DrillReport, earlier: Sequence[DrillReport]) -> str:
    history = [*earlier, report]
    rpo_t, rto_t = _targets(history)
    return _ENV.get_template("report.html.j2").render(
        r=report,
        drill_proves=DRILL_PROVES,
        timeline=timeline_svg(report.rto.phases) if report.rto else "",
        trend=trend_svg(trend_points(history), rpo_t, rto_t),
    )


def render_history_html(reports: Sequence[DrillReport]) -> str:
    rpo_t, rto_t = _targets(reports)
    return _ENV.get_template("history.html.j2").render(
        reports=list(reversed(reports)), trend=trend_svg(trend_points(reports), rpo_t, rto_t)
    )
