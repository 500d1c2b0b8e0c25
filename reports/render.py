"""Write a report bundle: the chosen formats from one report document, then (optionally) the signed manifest.

The bundle holds the site's weaknesses host by host, so its directory is 0700 and its files 0600: an auditor
gets a copy (it verifies anywhere), other local users get nothing. Nothing is written through a symbolic link:
the bundle's directory is opened with O_NOFOLLOW and each file is created with O_EXCL | O_NOFOLLOW inside it.

All or nothing: the files are written and fsynced in a hidden directory next to --out (`.NAME.tmp-*`), which is
then renamed to --out. A run killed (or out of disk) before that leaves --out as it was -- absent, or the
earlier bundle -- and never a half-written bundle there. With --force over an earlier bundle the old one is
first renamed aside (`.NAME.old-*`, removed after): a kill between the two renames leaves no --out at all, the
complete old and new bundles in those hidden directories. They are 0700 and safe to delete."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
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
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG)


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


def _io_error(e: OSError, what: str) -> TcmscanError:
    """A full or failing disk is "could not run" (exit 3); anything else about the path is the user's (exit 2)."""
    if e.errno in DISK_ERRNOS:
        return RenderError(f"{what}: {e.strerror}; --out is left as it was")
    return UsageError(f"{what}: {e.strerror}")


def check_out(out: Path, force: bool) -> None:
    """Refuse an --out that is a symbolic link (or holds one), a file, a directory with files and no --force, or
    one holding files no bundle has (replacing --out would delete them)."""
    if out.is_symlink():
        raise _symlink(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file")
    try:
        present = sorted(os.listdir(out))
    except OSError as e:
        raise _io_error(e, f"cannot use --out {out}") from None
    if present and not force:
        raise UsageError(f"--out {out} is not empty (use --force to replace an earlier bundle)")
    ours = set(FILE_NAMES.values()) | set(BUNDLE_META)
    for name in present:
        if os.path.islink(out / name):
            raise _symlink(out / name)
    foreign = [name for name in present if name not in ours]
    if foreign:
        raise UsageError(f"--out {out} holds {foreign[0]!r}, which is no part of a report bundle: refusing to "
                         f"replace it (choose another --out)")


def open_out(out: Path, force: bool) -> int:
    """A descriptor of the bundle directory (created 0700, or an existing one made 0700), emptied of an earlier
    bundle's files with `force`; refuses a symbolic link at `out` or at any of the names in it."""
    check_out(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.mkdir(mode=DIR_MODE, exist_ok=True)
        # O_NOFOLLOW: a link swapped in after the checks above is refused here, not followed
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _symlink(out) from None
        raise _io_error(e, f"cannot use --out {out}") from None
    try:
        os.fchmod(fd, DIR_MODE)
        for name in sorted(os.listdir(fd)):
            os.unlink(name, dir_fd=fd)          # check_out let through only a bundle's own files
    except OSError as e:
        os.close(fd)
        raise _io_error(e, f"cannot use --out {out}") from None
    return fd


def write_file(dir_fd: int, out: Path, name: str, data: bytes) -> None:
    """Create `name` (0600, never through a link) in the directory `dir_fd` and put `data` on the disk (fsync);
    `out` names it in messages."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE, dir_fd=dir_fd)
    except FileExistsError:      # planted after the directory was emptied
        raise UsageError(f"--out {out / name} appeared while writing: refusing to write through it") from None
    except OSError as e:
        raise _io_error(e, f"cannot write {out / name}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise _io_error(e, f"cannot write {out / name}") from None


def _aside(out: Path, kind: str) -> Path:
    """A new empty 0700 directory next to `out` (`.NAME.kind-XXXXXXXX`): same file system, so renames are atomic."""
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{kind}-", dir=out.parent))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(out: Path, files: dict[str, bytes], force: bool) -> None:
    """Write `files` as the bundle at `out`, all or nothing (the module's docstring says how)."""
    check_out(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = _aside(out, "tmp")
    except OSError as e:
        # the bundle is made beside --out and renamed into place: its parent directory must be writable
        raise _io_error(e, f"cannot use --out {out} (a bundle is written in {out.parent} first)") from None
    try:
        dir_fd = open_out(staging, force=False)
        try:
            for name, data in files.items():          # manifest and signatures last: a torn copy never verifies
                write_file(dir_fd, out, name, data)
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        check_out(out, force)                          # again: --out may have changed while we rendered
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, out: Path) -> None:
    try:
        try:
            os.rename(staging, out)                    # --out absent or empty: one atomic step
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            old = _aside(out, "old")
            os.rename(out, old)                         # replaces the empty `old`
            try:
                os.rename(staging, out)
            except OSError:
                os.rename(old, out)                     # the earlier bundle goes back where it was
                raise
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(out.parent)
    except OSError as e:
        raise _io_error(e, f"cannot write --out {out}") from None


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
    publish(out, files, force)
    return list(files)
