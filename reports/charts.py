"""Inline SVG charts (no script, no external asset): they render the same in a browser, offline and in
WeasyPrint's PDF. Every text placed in a chart is escaped, although all of it is ours."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from reports.i18n import pick, t
from scanner.assess.grading import level_of
from scanner.core.vocab import SEVERITIES, VERDICTS

LEVEL_COLOURS = {0: "#9e9e9e", 1: "#4caf50", 2: "#9ccc65", 3: "#fbc02d", 4: "#f57c00", 5: "#c62828"}
SEVERITY_COLOURS = {"critical": "#8e0000", "high": "#c62828", "medium": "#f57c00", "low": "#fbc02d",
                    "info": "#90a4ae"}
# The verdicts an area bar shows: all but not_applicable (a rule that does not apply is no part of an area).
CHART_VERDICTS = tuple(v for v in VERDICTS if v != "not_applicable")
VERDICT_COLOURS = {"passed": "#43a047", "failed": "#c62828", "waived": "#7e57c2", "not_assessed": "#bdbdbd"}
FONT = "font-family=\"'Noto Sans CJK SC','WenQuanYi Zen Hei',sans-serif\""


def _text(x: float, y: float, s: Any, *, size: int = 12, anchor: str = "start", weight: str = "normal",
          fill: str = "#222") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}" {FONT}>{escape(str(s))}</text>')


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
                  f'height="{height}" role="img" aria-label="{escape(label)}" class="chart">'
                  + "".join(body) + "</svg>")


def risk_matrix(cells: dict[tuple[int, int], tuple[int, int]], lang: str) -> Markup:
    """5 x 5 heat map: rows likelihood L (5 at the top), columns impact F; colour = level of L*F at the cell
    centre (or of the worst finding in it), number = open findings whose rounded (L, F) falls in the cell."""
    cell, left, top = 52, 58, 12
    body = []
    for li in range(5, 0, -1):
        y = top + (5 - li) * cell
        body.append(_text(left - 8, y + cell / 2 + 4, li, anchor="end"))
        for fi in range(1, 6):
            x = left + (fi - 1) * cell
            n, worst = cells.get((li, fi), (0, 0))
            lvl = max(level_of(li * fi)[0], worst)
            body.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="3" '
                        f'fill="{LEVEL_COLOURS[lvl]}" fill-opacity="{1.0 if n else 0.35}"/>')
            if n:
                body.append(_text(x + cell / 2 - 1, y + cell / 2 + 6, n, size=18, anchor="middle", weight="bold",
                                  fill="#fff" if lvl >= 4 or lvl <= 1 else "#222"))
    for fi in range(1, 6):
        body.append(_text(left + (fi - 1) * cell + cell / 2 - 1, top + 5 * cell + 16, fi, anchor="middle"))
    body.append(_text(left + 2.5 * cell, top + 5 * cell + 36, t("impact", lang), anchor="middle", weight="bold"))
    body.append(f'<g transform="translate(14,{top + 2.5 * cell}) rotate(-90)">'
                + _text(0, 0, t("likelihood", lang), anchor="middle", weight="bold") + "</g>")
    return _svg(left + 5 * cell + 10, top + 5 * cell + 46, body, t("risk_matrix", lang))


def bars(items: list[tuple[str, int, str]], lang: str, label: str) -> Markup:
    """Horizontal bars: (label, value, colour)."""
    row, left, width = 26, 96, 210
    top = max((v for _, v, _ in items), default=0) or 1
    body = []
    for i, (name, value, colour) in enumerate(items):
        y = 6 + i * row
        body.append(_text(left - 8, y + 15, name, anchor="end"))
        w = max(0.0, width * value / top)
        body.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 8}" rx="2" fill="{colour}"/>')
        body.append(_text(left + w + 6, y + 15, value, weight="bold"))
    return _svg(left + width + 40, 10 + row * len(items), body, label)


def level_bars(open_by_level: dict[str, int], levels: list[dict[str, Any]], lang: str) -> Markup:
    items = [(pick(lv, lang), open_by_level.get(str(lv["level"]), 0), LEVEL_COLOURS[lv["level"]])
             for lv in sorted(levels, key=lambda x: -x["level"])]
    return bars(items, lang, t("by_level", lang))


def severity_bars(open_by_severity: dict[str, int], lang: str) -> Markup:
    items = [(t(f"sev_{s}", lang), open_by_severity.get(s, 0), SEVERITY_COLOURS[s])
             for s in reversed(SEVERITIES)]
    return bars(items, lang, t("by_severity", lang))


def area_bars(areas: list[dict[str, Any]], lang: str) -> Markup:
    """Stacked bar per area: passed / failed / waived / not assessed (apart, grey), compliance % at the end."""
    row, left, width = 30, 190, 300
    body = []
    for i, a in enumerate(areas):
        y = 8 + i * row
        body.append(_text(left - 8, y + 16, pick(a["name"], lang), anchor="end"))
        c = a["counts"]
        total = sum(c[v] for v in CHART_VERDICTS)
        x = float(left)
        if total == 0:
            body.append(f'<rect x="{left}" y="{y + 3}" width="{width}" height="{row - 10}" fill="none" '
                        f'stroke="#bdbdbd" stroke-dasharray="4 3"/>')
            empty = "not_applicable" if c["not_applicable"] else "no_rules"
            body.append(_text(left + width / 2, y + 16, t(empty, lang), anchor="middle", fill="#757575", size=11))
        for verdict in CHART_VERDICTS:
            if not total or not c[verdict]:
                continue
            w = width * c[verdict] / total
            body.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 10}" '
                        f'fill="{VERDICT_COLOURS[verdict]}"><title>{escape(t(verdict, lang))}: {c[verdict]}'
                        f'</title></rect>')
            x += w
        pct = "—" if a["compliance"] is None else f"{a['compliance']:.0%}"
        body.append(_text(left + width + 8, y + 16, pct, weight="bold"))
    ly = 12 + row * len(areas)
    lx = left
    for verdict in CHART_VERDICTS:
        body.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{VERDICT_COLOURS[verdict]}"/>')
        body.append(_text(lx + 16, ly + 11, t(verdict, lang), size=11))
        lx += 86
    return _svg(left + width + 60, ly + 22, body, t("area_chart", lang))


def trend_chart(points: list[dict[str, Any]], lang: str) -> Markup:
    """Posture score per scan of the same scope (0-100)."""
    left, top, width, height = 36, 10, 420, 120
    body = [f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="#fafafa" stroke="#e0e0e0"/>']
    for v in (0, 50, 100):
        y = top + height - height * v / 100
        body.append(f'<line x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        body.append(_text(left - 6, y + 4, v, anchor="end", size=10))
    n = len(points)
    xy = []
    for i, p in enumerate(points):
        x = left + (width * (i + 0.5) / n)
        y = top + height - height * p["score"] / 100
        xy.append((x, y, p))
    if len(xy) > 1:
        body.append('<polyline fill="none" stroke="#1565c0" stroke-width="2" points="'
                    + " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in xy) + '"/>')
    for x, y, p in xy:
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#1565c0"/>')
        body.append(_text(x, y - 8, f"{p['score']:.0f} {p['grade']}", anchor="middle", size=10, weight="bold"))
        body.append(_text(x, top + height + 14, p["created"][:10], anchor="middle", size=10))
    return _svg(left + width + 10, top + height + 22, body, t("trend", lang))
