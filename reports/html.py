"""The HTML report: one self-contained file (inline CSS and SVG, no script, no external reference).

Everything a scanned host said reaches the page only through jinja2 autoescaping and `untrusted`, which also
shows control and bidi-override characters as escapes and clips overlong values, so a banner can neither run
script nor reorder or swamp the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2

from reports import charts
from reports.i18n import LANGS, pick, t

TEMPLATES = Path(__file__).resolve().parent / "templates"
CLIP = 400          # characters of one untrusted value shown in HTML/PDF; the JSON keeps it whole
# C0/C1 controls (but tab/newline), and the Unicode bidi controls that can reorder the text around them.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def neutral(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def untrusted(value: Any, limit: int = CLIP) -> dict[str, Any]:
    """A value from the network or an input file as display text: {text, truncated (total length or 0)}."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = neutral(text)
    if len(text) > limit:
        return {"text": text[:limit] + "…", "truncated": len(text)}
    return {"text": text, "truncated": 0}


def short(value: Any, limit: int = 80) -> str:
    return untrusted(value, limit)["text"]


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["untrusted"] = untrusted
    env.filters["short"] = short
    env.filters["pct"] = lambda v: "—" if v is None else f"{v:.0%}"
    return env


def matrix_cells(doc: dict[str, Any]) -> dict[tuple[int, int], tuple[int, int]]:
    """(L bin, F bin) -> (open findings, their worst level): a cell holding a very high risk is drawn as such
    even where the cell centre alone would be one level lower. The cell is the one stored at evaluation."""
    cells: dict[tuple[int, int], tuple[int, int]] = {}
    for f in doc["findings"]:
        if f["status"] != "open":
            continue
        key = (int(f["risk"]["cell"][0]), int(f["risk"]["cell"][1]))
        n, worst = cells.get(key, (0, 0))
        cells[key] = (n + 1, max(worst, f["risk"]["level"]))
    return cells


def judged_rules(area: dict[str, Any]) -> list[dict[str, Any]]:
    """Rules of an area that reached any verdict other than 'not applicable' on some host."""
    return [r for r in area["rules"] if any(v for k, v in r["counts"].items() if k != "not_applicable")]


def render_html(doc: dict[str, Any], lang: str = "zh", *, for_pdf: bool = False) -> str:
    if lang not in LANGS:
        raise ValueError(f"language must be one of {LANGS}")
    by_fp = {f["fingerprint"]: f for f in doc["findings"]}
    svg = {
        "matrix": charts.risk_matrix(matrix_cells(doc), lang),
        "levels": charts.level_bars(doc["summary"]["open_by_level"], doc["risk_model"]["levels"], lang),
        "severity": charts.severity_bars(doc["summary"]["open_by_severity"], lang),
        "areas": charts.area_bars(doc["areas"], lang),
        "trend": charts.trend_chart(doc["trend"], lang) if len(doc["trend"]) > 1 else None,
    }
    return environment().get_template("report.html.j2").render(
        doc=doc, lang=lang, by_fp=by_fp, svg=svg, for_pdf=for_pdf,
        t=lambda key, **kw: t(key, lang, **kw), pick=lambda v: pick(v, lang), judged_rules=judged_rules,
        rules_hidden=sum(len(a["rules"]) - len(judged_rules(a)) for a in doc["areas"]),
        level_colour=charts.LEVEL_COLOURS, sev_colour=charts.SEVERITY_COLOURS)
