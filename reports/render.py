"""Write a report bundle: the chosen formats from one report document, then (optionally) the signed manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports.formats import render_csv, render_json, render_sarif, validate_report, validate_sarif
from reports.html import render_html
from reports.model import build
from reports.signing import BUNDLE_META, SigningKey, sign_bundle
from scanner.core.errors import TcmscanError, UsageError
from scanner.store import Store

FILE_NAMES = {"html": "report.html", "pdf": "report.pdf", "json": "report.json", "csv": "findings.csv",
              "sarif": "report.sarif"}


class RenderError(TcmscanError):
    code = 3


def _refuse_url(url: str, *_: Any, **__: Any) -> dict[str, Any]:
    # The HTML is self-contained; a URL here could only come from untrusted text: never fetch it.
    raise ValueError(f"external resource refused: {url[:80]}")


def render_pdf(html: str) -> bytes:
    try:
        import weasyprint
    except ImportError:
        raise RenderError("PDF needs WeasyPrint (pip install weasyprint) and a CJK font "
                          "(apt-get install fonts-noto-cjk)") from None
    return weasyprint.HTML(string=html, url_fetcher=_refuse_url).write_pdf()


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    present = [p for p in out.iterdir()]
    ours = set(FILE_NAMES.values()) | set(BUNDLE_META)
    if present and not force:
        raise UsageError(f"--out {out} is not empty (use --force to replace an earlier bundle)")
    for p in present:
        if p.name in ours and p.is_file():
            p.unlink()


def write_bundle(store: Store, scan_id: str, out: Path, *, formats: list[str], lang: str = "zh",
                 keys: list[SigningKey] | None = None, force: bool = False, now: str | None = None) -> list[str]:
    doc = build(store, scan_id, now=now)
    errors = validate_report(doc)
    if errors:   # a bug of ours, never the input's: stop rather than hand out a report that breaks its schema
        raise RenderError(f"report JSON does not match its schema: {errors[0]}")
    prepare_out(out, force)
    written = []
    html = render_html(doc, lang) if {"html", "pdf"} & set(formats) else ""
    for fmt in formats:
        name = FILE_NAMES[fmt]
        if fmt == "html":
            (out / name).write_text(html, encoding="utf-8")
        elif fmt == "pdf":
            (out / name).write_bytes(render_pdf(render_html(doc, lang, for_pdf=True)))
        elif fmt == "json":
            (out / name).write_text(render_json(doc), encoding="utf-8")
        elif fmt == "csv":
            (out / name).write_text(render_csv(doc), encoding="utf-8", newline="")
        elif fmt == "sarif":
            text = render_sarif(doc)
            errs = validate_sarif(json.loads(text))
            if errs:
                raise RenderError(f"SARIF output does not match the SARIF 2.1.0 schema: {errs[0]}")
            (out / name).write_text(text, encoding="utf-8")
        written.append(name)
    if keys:
        written += sign_bundle(out, doc, written, keys)
    return written
