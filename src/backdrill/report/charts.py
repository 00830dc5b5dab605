"""Inline SVG for the reports: a phase timeline and a trend of RPO/RTO against targets.
Pure functions returning markup; every text is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from backdrill.runtime.timeutil import human_duration

PHASE_COLOURS = {
    "provision": "#8250df",
    "download": "#0969da",
    "restore": "#bf8700",
    "verify": "#1a7f37",
}


def timeline_svg(phases: dict[str, float], width: int = 860) -> str:
    """Phases as consecutive bars proportional to their duration, with a legend."""
    total = sum(phases.values()) or 1.0
    x = 0.0
    bars: list[str] = []
    legend: list[str] = []
    for i, (name, seconds) in enumerate(phases.items()):
        w = max(1.0, width * seconds / total)
        colour = PHASE_COLOURS.get(name, "#57606a")
        bars.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="28" fill="{colour}">'
            f"<title>{escape(name)}: {seconds:.2f}s</title></rect>"
        )
        lx = i * 200
        legend.append(
            f'<rect x="{lx}" y="40" width="12" height="12" fill="{colour}"/>'
            f'<text x="{lx + 18}" y="51" font-size="13" fill="#24292f">'
            f"{escape(name)} {escape(human_duration(seconds))}</text>"
        )
        x += w
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 58" width="100%" '
        f'role="img" aria-label="phase timeline">{"".join(bars)}{"".join(legend)}</svg>'
    )


@dataclass(frozen=True)
class TrendPoint:
    label: str
    rpo_hours: float
    rto_hours: float
    passed: bool


def trend_svg(
    points: Sequence[TrendPoint], rpo_target_h: float, rto_target_h: float, width: int = 860
) -> str:
    """Two series (RPO and RTO, in hours) over drills, with dashed target lines."""
    height, pad = 220, 36
    if not points:
        return '<p class="muted">no earlier drills</p>'
    top = (
        max(
            [
                rpo_target_h,
                rto_target_h,
                *(p.rpo_hours for p in points),
                *(p.rto_hours for p in points),
            ]
        )
        * 1.15
        or 1.0
    )
    n = len(points)

    def px(i: int) -> float:
        return pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)

    def py(v: float) -> float:
        return height - pad - (height - 2 * pad) * (v / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        'role="img" aria-label="RPO and RTO of drills against targets">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#8c959f"/>',
    ]
    for value, colour, name in (
        (rpo_target_h, "#0969da", "RPO target"),
        (rto_target_h, "#bf8700", "RTO target"),
    ):
        y = py(value)
        parts.append(
            f'<line x1="{pad}" y1="{y:.1f}" x2="{width - pad}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-dasharray="6 4"/><text x="{width - pad}" y="{y - 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="{colour}">{escape(name)} {value:g} h</text>'
        )
    for attr, colour in (("rpo_hours", "#0969da"), ("rto_hours", "#bf8700")):
        coords = " ".join(f"{px(i):.1f},{py(getattr(p, attr)):.1f}" for i, p in enumerate(points))
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for i, p in enumerate(points):
            fill = colour if p.passed else "#cf222e"
            parts.append(
                f'<circle cx="{px(i):.1f}" cy="{py(getattr(p, attr)):.1f}" r="4" fill="{fill}">'
                f"<title>{escape(p.label)}: {getattr(p, attr):.2f} h</title></circle>"
            )
    parts.append(
        f'<text x="{pad}" y="{height - 8}" font-size="11" fill="#57606a">'
        f"{escape(points[0].label)}</text>"
        f'<text x="{width - pad}" y="{height - 8}" font-size="11" text-anchor="end" '
        f'fill="#57606a">{escape(points[-1].label)}</text>'
        f'<text x="{pad}" y="14" font-size="11" fill="#0969da">● RPO achieved (h)</text>'
        f'<text x="{pad + 150}" y="14" font-size="11" fill="#bf8700">● RTO achieved (h)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
