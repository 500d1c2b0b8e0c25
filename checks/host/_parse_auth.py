"""Parsers for authentication settings read from a host: login.defs, PAM stacks, pwquality.conf,
faillock.conf and the shells' TMOUT. Pure functions over text: the text comes from a remote host and is
untrusted, so every parser tolerates garbage and keeps its output bounded."""

from __future__ import annotations

import re
import shlex
from typing import Any

MAX_LINES = 5000          # lines looked at per file
MAX_KEYS = 300            # keys kept per key=value file


def _lines(text: str) -> list[str]:
    return text.splitlines()[:MAX_LINES]


def to_int(value: Any) -> int | None:
    """'90' -> 90, '0x10' -> 16, '010' -> 8 (login.defs reads octal), anything else -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    s = str(value or "").strip()
    m = re.fullmatch(r"-?(0x[0-9a-fA-F]+|0[0-7]+|\d+)", s)
    if not m:
        return None
    try:
        return int(s, 0) if not re.fullmatch(r"-?0\d+", s) else int(s, 8)
    except ValueError:
        return None


def parse_login_defs(text: str) -> dict[str, str]:
    """`KEY value` lines of /etc/login.defs; comments and blank lines ignored; the last setting wins."""
    out: dict[str, str] = {}
    for line in _lines(text):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        key = parts[0]
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", key):
            continue
        if key not in out and len(out) >= MAX_KEYS:
            continue
        out[key] = parts[1].strip()[:256] if len(parts) > 1 else ""
    return out


def parse_kv_conf(text: str) -> dict[str, str | bool]:
    """`key = value` and bare `flag` lines (pwquality.conf, faillock.conf); the last setting wins."""
    out: dict[str, str | bool] = {}
    for line in _lines(text):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" in line:
            k, v = line.split("=", 1)
            k, val = k.strip().lower(), v.strip()[:256]
        else:
            k, val = line.lower(), True
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", k):
            continue
        if k not in out and len(out) >= MAX_KEYS:
            continue
        out[k] = val
    return out


def parse_pam(text: str) -> list[dict[str, Any]]:
    """Lines of a PAM stack file: {type, control, module, args, include} (comments dropped).

    `args` maps `key=value` to its value and a bare flag to True. `-auth` (optional module) keeps its
    type as `auth` with `optional_module: True`. `@include name` yields {"include": name}.
    """
    out: list[dict[str, Any]] = []
    for raw in _lines(text):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("@include"):
            parts = line.split()
            if len(parts) >= 2:
                out.append({"include": parts[1][:128]})
            continue
        m = re.match(r"(-?)(auth|account|password|session)\s+(\[[^\]]*\]|\S+)\s+(\S+)\s*(.*)$", line,
                     re.IGNORECASE)
        if not m:
            continue
        module = m.group(4).rsplit("/", 1)[-1]
        module = module[:-3] if module.endswith(".so") else module
        try:
            tokens = shlex.split(m.group(5))
        except ValueError:
            tokens = m.group(5).split()
        args: dict[str, Any] = {}
        for t in tokens[:64]:
            if "=" in t:
                k, v = t.split("=", 1)
                args[k.lower()[:64]] = v[:256]
            else:
                args[t.lower()[:64]] = True
        out.append({"type": m.group(2).lower(), "control": m.group(3)[:128], "module": module[:64],
                    "args": args, "optional_module": m.group(1) == "-"})
        if len(out) >= 500:
            break
    return out


def expand_pam(files: dict[str, str | None], start: str, depth: int = 0) -> list[dict[str, Any]]:
    """The lines of PAM file `start` with @include directives replaced by the included files' lines."""
    text = files.get(f"/etc/pam.d/{start}")
    if text is None or depth > 5:
        return []
    out: list[dict[str, Any]] = []
    for line in parse_pam(text):
        if "include" in line:
            out.extend(expand_pam(files, line["include"].rsplit("/", 1)[-1], depth + 1))
        else:
            out.append({**line, "file": f"/etc/pam.d/{start}"})
    return out


def password_quality(stack: list[dict[str, Any]], pwquality_conf: dict[str, Any] | None,
                     login_defs: dict[str, str] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """Effective minimum length and character classes for new passwords, with where each came from.

    Order of authority, as PAM applies them: pam_pwquality / pam_cracklib in the `password` stack (module
    arguments override pwquality.conf, which overrides the module's documented default), else pam_unix's
    minlen, else login.defs PASS_MIN_LEN (used only where passwd(1) runs without PAM).
    """
    pw_lines = [line for line in stack if line.get("type") == "password"]
    quality = next((line for line in pw_lines if line["module"] in ("pam_pwquality", "pam_cracklib")), None)
    unix = next((line for line in pw_lines if line["module"] == "pam_unix"), None)
    out: dict[str, Any] = {"quality_module": quality["module"] if quality else None,
                           "quality_module_args": _public_args(quality["args"]) if quality else None,
                           "pam_unix_args": _public_args(unix["args"]) if unix else None}
    if quality is not None:
        kind = "pwquality" if quality["module"] == "pam_pwquality" else "cracklib"
        conf = (pwquality_conf or {}) if kind == "pwquality" else {}
        merged = {**conf, **quality["args"]}
        d = defaults.get(kind, {})
        minlen, src_len = _pick(merged, conf, "minlen", d.get("minlen"), quality["file"], kind)
        minclass, src_class = _pick(merged, conf, "minclass", d.get("minclass", 0), quality["file"], kind)
        # a negative credit (dcredit=-1) makes that class mandatory
        negative = sum(1 for c in ("dcredit", "ucredit", "lcredit", "ocredit")
                       if (to_int(merged.get(c)) or 0) < 0)
        classes = max(minclass or 0, negative)
        out.update(min_length=minlen, min_length_source=src_len, min_classes=classes,
                   min_classes_source=src_class if classes == (minclass or 0) else f"negative credits ({kind})")
        return out
    if unix is not None:
        minlen = to_int(unix["args"].get("minlen"))
        if minlen is None:
            minlen = defaults.get("pam_unix", {}).get("minlen")
            src = "pam_unix default (no minlen argument)"
        else:
            src = f"{unix['file']}: pam_unix minlen"
        out.update(min_length=minlen, min_length_source=src, min_classes=0,
                   min_classes_source="no pam_pwquality/pam_cracklib in the password stack")
        return out
    if login_defs is not None and to_int(login_defs.get("PASS_MIN_LEN")) is not None:
        out.update(min_length=to_int(login_defs["PASS_MIN_LEN"]), min_length_source="/etc/login.defs PASS_MIN_LEN",
                   min_classes=0, min_classes_source="no PAM password stack")
        return out
    out.update(min_length=None, min_length_source="no password stack and no PASS_MIN_LEN", min_classes=None,
               min_classes_source="no password stack")
    return out


def _pick(merged: dict[str, Any], conf: dict[str, Any], key: str, default: Any, file: str, kind: str
          ) -> tuple[int | None, str]:
    if key in merged and merged[key] is not True and to_int(merged[key]) is not None:
        where = f"{file}: module argument" if key not in conf or merged[key] != conf[key] else \
            "/etc/security/pwquality.conf"
        return to_int(merged[key]), where
    return default, f"{kind} default"


def _public_args(args: dict[str, Any]) -> dict[str, Any]:
    # PAM module arguments are configuration, not secrets; keep them short anyway
    return {k: v for k, v in list(args.items())[:32]}


def lockout(stack: list[dict[str, Any]], faillock_conf: dict[str, Any] | None, defaults: dict[str, Any]
            ) -> dict[str, Any]:
    """Login-failure lockout from the `auth` stack: pam_faillock, pam_tally2 or pam_tally."""
    auth = [line for line in stack if line.get("type") == "auth"]
    for module, kind in (("pam_faillock", "faillock"), ("pam_tally2", "tally2"), ("pam_tally", "tally2")):
        lines = [line for line in auth if line["module"] == module]
        if not lines:
            continue
        merged: dict[str, Any] = dict(faillock_conf or {}) if kind == "faillock" else {}
        for line in lines:                  # the module lines (preauth/authfail) carry the same settings
            merged.update(line["args"])
        d = defaults.get(kind, {})
        deny = to_int(merged.get("deny"))
        unlock = to_int(merged.get("unlock_time"))
        return {"module": module, "files": sorted({line["file"] for line in lines}),
                "deny": d.get("deny") if deny is None else deny,
                "deny_source": "default" if deny is None else "configured",
                "unlock_time": d.get("unlock_time") if unlock is None else unlock,
                "unlock_time_source": "default" if unlock is None else "configured",
                "even_deny_root": bool(merged.get("even_deny_root"))}
    return {"module": None, "files": [], "deny": None, "unlock_time": None}


_TMOUT = re.compile(r"^\s*(?:(?:export|readonly|declare|typeset)(?:\s+-[a-zA-Z]+)*\s+)?TMOUT=['\"]?(\d{1,9})['\"]?"
                    r"(?:\s|;|$)")
_READONLY = re.compile(r"^\s*(?:readonly|declare\s+-[a-zA-Z]*r|typeset\s+-[a-zA-Z]*r)\b[^#]*\bTMOUT\b")


def tmout_settings(files: list[tuple[str, str]]) -> dict[str, Any]:
    """TMOUT assignments in shell start-up files, in the order a login shell reads them.

    `files`: (path, text) in reading order (/etc/profile, /etc/profile.d/*.sh sorted, /etc/bash.bashrc).
    Effective value: the last assignment, unless an earlier one was made readonly (later ones then fail).
    """
    settings: list[dict[str, Any]] = []
    effective: int | None = None
    source = ""
    frozen = False
    for path, text in files:
        for n, line in enumerate(_lines(text), 1):
            if line.lstrip().startswith("#"):
                continue
            m = _TMOUT.match(line)
            readonly_here = bool(_READONLY.match(line))
            if m:
                value = int(m.group(1))
                settings.append({"file": path, "line": n, "value": value})
                if not frozen:
                    effective, source = value, f"{path}:{n}"
            if readonly_here and effective is not None:
                frozen = True
            if len(settings) >= 50:
                break
    return {"settings": settings, "effective": effective, "effective_source": source or None,
            "readonly": frozen}
