"""Hide the secrets a backup job's text carries before any of it is kept (observation, database, log, report).

Which options, variables and argument shapes hold a secret is data: baselines/knowledge/secret_options.yaml.
The text is split into shell words (quotes, escapes, operators) so that an option's value is found whether it
is attached (-pX, --password=X), separate (--password "a b c") or nested in a quoted command
(sh -c 'mysqldump -pX'); URL userinfo (scheme://user:SECRET@host) is hidden everywhere. Every hidden value
becomes ***; the rest of the text is kept so an auditor can still read what the job does."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from scanner.sdk import knowledge

MASK = "***"
MAX_DEPTH = 4                      # nested quoted commands followed at most this deep
_OPS = set(";|&()`\n")
_REDIR = set("<>")
_BLANK = set(" \t\r")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)([^/\s]*)@")
_ASSIGN = re.compile(r"(?:^|(?<=[,;=]))([A-Za-z_][A-Za-z0-9_.-]*)=")


@dataclass
class _Opt:
    kind: str                      # value | attached | separate | none
    user_sep: str = ""
    prefix: str = ""


@dataclass
class _Program:
    options: dict[str, _Opt] = field(default_factory=dict)
    after: re.Pattern[str] | None = None
    words: list[re.Pattern[str]] = field(default_factory=list)


@dataclass
class Table:
    """secret_options.yaml, compiled."""
    parts: frozenset[str]
    contains: tuple[str, ...]
    names: frozenset[str]
    not_last: frozenset[str]
    not_first: frozenset[str]
    programs: dict[str, _Program]

    def secret_name(self, name: str) -> bool:
        """NAME of NAME=value or of --name: does its value carry a secret?"""
        low = name.lower()
        parts = [p for p in re.split(r"[_.-]", low) if p]
        if not parts or parts[-1] in self.not_last or parts[0] in self.not_first:
            return False
        return low in self.names or any(p in self.parts for p in parts) or any(c in low for c in self.contains)


def compile_table(doc: dict[str, Any]) -> Table:
    n = doc["names"]
    programs: dict[str, _Program] = {}
    for entry in doc["programs"]:
        opts = {}
        for name, spec in (entry.get("options") or {}).items():
            opts[name] = _Opt(spec) if isinstance(spec, str) else _Opt(spec["kind"], spec.get("user_sep", ""),
                                                                        spec.get("prefix", ""))
        prog = _Program(opts, re.compile(entry["after"]) if entry.get("after") else None,
                        [re.compile(w) for w in entry.get("words") or []])
        for name in entry["names"]:
            programs[name] = prog
    return Table(frozenset(n["parts"]), tuple(n["contains"]), frozenset(n["names"]), frozenset(n["not_last"]),
                 frozenset(n["not_first"]), programs)


@functools.cache
def default_table() -> Table:
    return compile_table(knowledge()["secret_options"])


def redact(text: str, limit: int | None = 300, table: Table | None = None) -> str:
    """`text` with every secret the table knows replaced by ***, cut to `limit` characters (None: whole)."""
    out = _redact(text, table or default_table(), None, 0)
    return out if limit is None else out[:limit]


# ------------------------------------------------------------------ shell words

@dataclass
class _Tok:
    kind: str                      # word | blank | op | redir | comment
    raw: str
    value: str = ""                # a word without its quotes and escapes


def _tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _BLANK or (c == "\\" and text[i + 1:i + 2] == "\n"):      # a line continuation is a blank
            j = i + (2 if c == "\\" else 1)
            while j < n and (text[j] in _BLANK or (text[j] == "\\" and text[j + 1:j + 2] == "\n")):
                j += 2 if text[j] == "\\" else 1
            toks.append(_Tok("blank", text[i:j]))
        elif c == "#" and (not toks or toks[-1].kind != "word"):
            j = text.find("\n", i)
            j = n if j < 0 else j
            toks.append(_Tok("comment", text[i:j]))
        elif c in _OPS or (c == "$" and text[i + 1:i + 2] == "("):
            j = i + 2 if c == "$" else i + 1
            toks.append(_Tok("op", text[i:j]))
        elif c in _REDIR:
            j = i
            while j < n and text[j] in "<>&":
                j += 1
            toks.append(_Tok("redir", text[i:j]))
        else:
            j, value = _word(text, i)
            toks.append(_Tok("word", text[i:j], value))
        i = j
    return toks


def _word(text: str, i: int) -> tuple[int, str]:
    buf: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c in _BLANK or c in _OPS or c in _REDIR or (c == "$" and text[i + 1:i + 2] == "("):
            break
        if c == "\\":
            if text[i + 1:i + 2] == "\n":
                break
            buf.append(text[i + 1:i + 2])
            i += 2
        elif c == "'":
            k = text.find("'", i + 1)
            k = n if k < 0 else k                      # unbalanced: the rest is the word
            buf.append(text[i + 1:k])
            i = k + 1
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and text[i + 1:i + 2] in ('"', "\\", "$", "`"):
                    i += 1
                buf.append(text[i])
                i += 1
            i += 1
        else:
            buf.append(c)
            i += 1
    return min(i, n), "".join(buf)


def _emit(value: str) -> str:
    """A changed word written back: quoted when it holds blanks (it was quoted to hold them)."""
    if any(c in value for c in " \t\n;|&<>'\""):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


# ------------------------------------------------------------------ redaction

def _shape(value: str, opt: _Opt) -> str | None:
    """The redacted form of an option value, or None when this value carries no secret."""
    if opt.prefix:
        return opt.prefix + MASK if value.startswith(opt.prefix) and len(value) > len(opt.prefix) else None
    if opt.user_sep:
        user, sep, secret = value.partition(opt.user_sep)
        return user + sep + MASK if sep and secret else None   # no separator: the tool prompts
    return MASK if value else None


def _option(word: str, prog: _Program | None, table: Table) -> tuple[str | None, _Opt | None]:
    """(redacted word, None) for an attached secret; (None, option) when the next word is the secret."""
    opts = prog.options if prog else {}
    if word.startswith("--"):
        name, eq, val = word.partition("=")
        opt = opts.get(name) or (_Opt("value") if table.secret_name(name[2:]) else None)
        if opt is None or opt.kind == "none":
            return None, None
        if eq:
            shaped = _shape(val, opt) if opt.kind in ("value", "attached") else None
            return (name + "=" + shaped if shaped else None), None
        return None, opt if opt.kind in ("value", "separate") else None
    if word.startswith("-") and len(word) >= 2:
        if word in opts:
            opt = opts[word]
            return None, opt if opt.kind in ("value", "separate") else None
        opt = opts.get(word[:2])
        if opt and opt.kind in ("value", "attached") and len(word) > 2:     # getopt: -pSECRET
            shaped = _shape(word[2:], opt)
            return (word[:2] + shaped if shaped else None), None
    return None, None


def _assignments(word: str, table: Table) -> str | None:
    """NAME=SECRET (env, systemd Environment=NAME=..., mount -o user=u,password=SECRET, conninfo)."""
    for m in _ASSIGN.finditer(word):
        if table.secret_name(m.group(1)):
            start = m.end()
            in_list = m.start() > 0 and word[m.start() - 1] == ","
            end = word.find(",", start) if in_list else -1
            end = len(word) if end < 0 else end
            if end > start:
                rest = _assignments(word[end:], table) if end < len(word) else ""
                return word[:start] + MASK + (rest if rest is not None else word[end:])
    return None


def _redact(text: str, table: Table, program: str | None, depth: int) -> str:
    if depth > MAX_DEPTH:
        return _URL_USERINFO.sub(r"\1" + MASK + "@", text)
    out: list[str] = []
    prog_name = program
    command_position = True
    pending: _Opt | None = None
    after_hit = False
    filename_next = False
    for t in _tokens(text):
        if t.kind == "blank":
            out.append(t.raw)
            continue
        if t.kind == "comment":
            out.append("#" + _redact(t.raw[1:], table, None, depth + 1))
            continue
        if t.kind in ("op", "redir"):
            if t.kind == "op":
                prog_name, command_position = program, True
            pending, after_hit, filename_next = None, False, t.kind == "redir"
            out.append(t.raw)
            continue
        v = t.value
        prog = table.programs.get(prog_name) if prog_name else None
        new: str | None = None
        if pending is not None:
            new = _shape(v, pending)
            pending = None
        elif after_hit and not v.startswith("-") and not filename_next:
            new = MASK
        else:
            base = v.rsplit("/", 1)[-1]
            if base in table.programs:
                prog_name, prog, command_position = base, table.programs[base], False
            elif command_position and not _ASSIGN.match(v) and not v.startswith("-"):
                # another command: its options are not the last program's (a nested text keeps the program
                # it was an argument of: lftp -e 'open -u user,SECRET host')
                prog_name, command_position = program, False
                prog = table.programs.get(prog_name) if prog_name else None
            elif not filename_next:
                new, pending = _option(v, prog, table)
                if new is None and pending is None:
                    new = _assignments(v, table)
                if new is None and prog is not None:
                    new = _words(v, prog)
        after_hit = bool(prog and prog.after and prog.after.search(v)) and pending is None
        filename_next = False
        cur = v if new is None else new
        cur = _URL_USERINFO.sub(r"\1" + MASK + "@", cur)
        if new is None and any(c in cur for c in " \t\n"):
            cur = _redact(cur, table, prog_name, depth + 1)      # a quoted command or conninfo
        out.append(t.raw if cur == v else _emit(cur))
    return "".join(out)


def _words(word: str, prog: _Program) -> str | None:
    for pat in prog.words:
        m = pat.search(word)
        if m and m.group("secret"):
            return word[:m.start("secret")] + MASK + word[m.end("secret"):]
    return None
