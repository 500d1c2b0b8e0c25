"""Write a report bundle: the chosen formats from one report document, then (optionally) the signed manifest.

The bundle holds the site's weaknesses host by host, so its directory is 0700 and its files 0600: an auditor
gets a copy (it verifies anywhere), other local users get nothing. Nothing is written through a symbolic link:
--out is opened with O_NOFOLLOW and each file is created with O_EXCL | O_NOFOLLOW inside that directory."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from reports.formats import render_csv, render_json, render_sarif, validate_report, validate_sarif
from reports.html import render_html
from reports.model import build
from reports.signing import BUNDLE_META, SigningKey, signed_manifest
from scanner.core.errors import TcmscanError, UsageError
from scanner.store import Store

FILE_NAMES = {"html": "report.html", "pdf": "report.pdf", "json": "report.json", "csv": "findings.csv",
              "sarif": "report.sarif"}
DIR_MODE, FILE_MODE = 0o700, 0o600


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


def _symlink(path: Path) -> UsageError:
    return UsageError(f"--out {path} is a symbolic link: refusing to write through it")


def open_out(out: Path, force: bool) -> int:
    """A descriptor of the bundle directory (created 0700, or an existing one made 0700), emptied of an earlier
    bundle's files with `force`; refuses a symbolic link at `out` or at any of the names in it."""
    if out.is_symlink():
        raise _symlink(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.mkdir(mode=DIR_MODE, exist_ok=True)
        # O_NOFOLLOW: a link swapped in after the checks above is refused here, not followed
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _symlink(out) from None
        raise UsageError(f"cannot use --out {out}: {e.strerror}") from None
    try:
        os.fchmod(fd, DIR_MODE)
        present = sorted(os.listdir(fd))
        if present and not force:
            raise UsageError(f"--out {out} is not empty (use --force to replace an earlier bundle)")
        ours = set(FILE_NAMES.values()) | set(BUNDLE_META)
        for name in present:
            if os.path.islink(out / name):
                raise _symlink(out / name)
            if name in ours:
                os.unlink(name, dir_fd=fd)
    except OSError as e:
        os.close(fd)
        raise UsageError(f"cannot use --out {out}: {e.strerror}") from None
    except UsageError:
        os.close(fd)
        raise
    return fd


def write_file(dir_fd: int, out: Path, name: str, data: bytes) -> None:
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE, dir_fd=dir_fd)
    except FileExistsError:      # planted after open_out emptied the directory
        raise UsageError(f"--out {out / name} appeared while writing: refusing to write through it") from None
    except OSError as e:
        raise UsageError(f"cannot write {out / name}: {e.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def render(doc: dict[str, Any], fmt: str, lang: str) -> bytes:
    if fmt == "html":
        return render_html(doc, lang).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(render_html(doc, lang, for_pdf=True))
    if fmt == "json":
        return render_json(doc).encode("utf-8")
    if fmt == "csv":
        return render_csv(doc).encode("utf-8")
    text = render_sarif(doc)
    errs = validate_sarif(json.loads(text))
    if errs:
        raise RenderError(f"SARIF output does not match the SARIF 2.1.0 schema: {errs[0]}")
    return text.encode("utf-8")


def write_bundle(store: Store, scan_id: str, out: Path, *, formats: list[str], lang: str = "zh",
                 keys: list[SigningKey] | None = None, force: bool = False, now: str | None = None) -> list[str]:
    doc = build(store, scan_id, now=now)
    errors = validate_report(doc)
    if errors:   # a bug of ours, never the input's: stop rather than hand out a report that breaks its schema
        raise RenderError(f"report JSON does not match its schema: {errors[0]}")
    files = {FILE_NAMES[fmt]: render(doc, fmt, lang) for fmt in formats}   # all rendered before anything is written
    if keys:
        files |= signed_manifest(doc, files, keys)
    dir_fd = open_out(out, force)
    try:
        for name, data in files.items():
            write_file(dir_fd, out, name, data)
    finally:
        os.close(dir_fd)
    return list(files)
