"""Render a drill report as Markdown and as one self-contained HTML page (inline CSS
and SVG, no external assets), and the drill history page.

Every value is escaped on its way into a page, whatever check or field it comes from:
the HTML templates autoescape (and carry a Content-Security-Policy that runs no script
and loads nothing), the Markdown templates pass every ``{{ }}`` through
``text.markdown``."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from backdrill.report.charts import TrendPoint, timeline_svg, trend_svg
from backdrill.report.model import DRILL_PROVES, DrillReport
from backdrill.runtime import text
from backdrill.runtime.timeutil import human_duration, human_size

_LOADER = PackageLoader("backdrill.report", "templates")
_HTML = Environment(
    loader=_LOADER,
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_MARKDOWN = Environment(
    loader=_LOADER,
    autoescape=False,  # noqa: S701 - Markdown: every value goes through text.markdown
    finalize=text.markdown,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
for _env in (_HTML, _MARKDOWN):
    _env.filters["duration"] = human_duration
    _env.filters["size"] = human_size
_CSS = _HTML.get_template("_style.css.j2").render()
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
#: The pages are self-contained: inline SVG, one inline style sheet (allowed by its hash),
#: no script, no image, no fetch of anything.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; script-src 'none'; "
    "img-src 'none'; base-uri 'none'; form-action 'none'"
)


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


def _page(template: str, **values: object) -> str:
    # the style sheet and the SVG charts are ours (charts.py escapes every text in them)
    return _HTML.get_template(template).render(
        css=Markup(_CSS),  # noqa: S704 - a static file of the package
        csp=CONTENT_SECURITY_POLICY,
        **values,
    )


def render_markdown(report: DrillReport) -> str:
    return _MARKDOWN.get_template("report.md.j2").render(r=report, drill_proves=DRILL_PROVES)


def render_html(report: DrillReport, earlier: Sequence[DrillReport]) -> str:
    history = [*earlier, report]
    rpo_t, rto_t = _targets(history)
    return _page(
        "report.html.j2",
        r=report,
        drill_proves=DRILL_PROVES,
        timeline=Markup(timeline_svg(report.rto.phases)) if report.rto else "",  # noqa: S704
        trend=Markup(trend_svg(trend_points(history), rpo_t, rto_t)),  # noqa: S704
    )


def render_history_html(reports: Sequence[DrillReport]) -> str:
    rpo_t, rto_t = _targets(reports)
    return _page(
        "history.html.j2",
        reports=list(reversed(reports)),
        trend=Markup(trend_svg(trend_points(reports), rpo_t, rto_t)),  # noqa: S704
    )
