"""Raw reads over the shared SSH session: a batch of commands and file reads run in ONE remote shell
(each exec costs a round trip and a process start on the host), each section keeping its own exit
status and error text, so an observation can say "unavailable: <why>" instead of guessing: a missing
command (exit 127, BusyBox), a refused sudo, a permission error, a timeout.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scanner.sdk import CheckError
from scanner.sdk.ssh_session import HostSession, shell_quote

# Non-root logins may lack the sbin directories in PATH (sshd, nft, iptables live there).
PATH_PREFIX = 'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"; export PATH; '
BATCH_LIMIT = 8 * 1024 * 1024      # bytes of output for the whole batch
SECTION_LIMIT = 2 * 1024 * 1024    # bytes kept per section
SECTION_TIMEOUT = 30               # seconds per section, where the host has timeout(1)


@dataclass(frozen=True)
class Section:
    name: str
    command: str
    needs: tuple[str, ...] = ()           # programs that must exist: a missing one -> "command not found"
    ok_status: tuple[int, ...] = (0,)
    label: str = ""                       # what the observation's `sources` shows (default: the command)


@dataclass
class Read:
    """One section's outcome. `ok`: it ran and its output can be parsed."""

    command: str
    ok: bool
    stdout: str = ""
    reason: str = ""              # why not ok: "command not found (missing: nft)", "exit status 1: ..."
    exit_status: int | None = None
    privileged: bool = False
    truncated: bool = False
    mark: str = ""                # the batch's random marker (file_reader sections use it)

    def source(self) -> dict[str, Any]:
        d: dict[str, Any] = {"command": self.command, "ok": self.ok}
        if not self.ok:
            d["unavailable"] = self.reason
        if self.truncated:
            d["truncated"] = True
        return d


@dataclass
class Collector:
    session: HostSession
    time_left: Callable[[], float]            # seconds left in the attempt (CheckContext.remaining)
    sudo_refused: str = ""
    reads: dict[str, Read] = field(default_factory=dict)

    def batch(self, sections: list[Section], *, privileged: bool = True, timeout: float = 90) -> dict[str, Read]:
        """Run every section in one remote shell; {section name: Read}. Raises CheckError only when the
        session itself fails (connection dropped, timeout)."""
        mark = f"@@tcmscan-{secrets.token_hex(5)}@@"
        script = PATH_PREFIX + ("if command -v timeout >/dev/null 2>&1; then T='timeout "
                                f"{SECTION_TIMEOUT}'; else T=''; fi; ")
        for s in sections:
            pre = "".join(f"command -v {n} >/dev/null 2>&1 || {{ echo 'missing: {n}' >&2; exit 127; }}; "
                          for n in s.needs)
            body = pre + "$T sh -c " + shell_quote(s.command.replace("%%F", mark + "F"))
            script += (f"echo '{mark} B {s.name}'; "
                       f"{{ err=$( {{ {body} ; }} 2>&1 1>&3 ); st=$?; }} 3>&1; "
                       f"echo; echo \"{mark} E {s.name} $st\"; "
                       f"[ -n \"$err\" ] && printf '%s\\n' \"$err\" | head -n 5 | "
                       f"while IFS= read -r l; do echo \"{mark} R {s.name} $l\"; done; ")
        left = self.time_left()
        if left < 3:
            raise CheckError("timeout", "attempt budget used up before the snapshot started")
        use_sudo = privileged and self.session.sudo and self.session.user != "root"
        r = self.session.run(script, timeout=min(timeout, left - 1), privileged=use_sudo, limit=BATCH_LIMIT)
        if use_sudo and f"{mark} B " not in r.stdout and _sudo_failed(r.stderr):
            # sudo asked for a password or is not allowed: say so once, read what a plain user can
            self.sudo_refused = (r.stderr.strip().splitlines() or ["sudo refused"])[0][:200]
            use_sudo = False
            r = self.session.run(script, timeout=min(timeout, self.time_left() - 1), limit=BATCH_LIMIT)
        as_root = self.session.user == "root" or use_sudo
        parsed = _split_sections(r.stdout if r.clean else "", mark)
        out: dict[str, Read] = {}
        for s in sections:
            label = s.label or s.command
            got = parsed.get(s.name)
            if not r.clean:
                read = Read(label, False, reason="the login shell did not run our commands (no start marker)")
            elif got is None:
                why = "output cut off (size limit)" if r.truncated else "section did not run"
                read = Read(label, False, reason=why, truncated=r.truncated)
            else:
                text, status, errors = got
                read = Read(label, False, exit_status=status, privileged=privileged and as_root,
                            truncated=len(text) > SECTION_LIMIT, mark=mark)
                err = errors[-1][:200] if errors else ""
                if status == 127:
                    read.reason = f"command not found ({err or 'exit 127'})"
                elif status == 124:
                    read.reason = f"timed out after {SECTION_TIMEOUT} s"
                elif status not in s.ok_status:
                    read.reason = f"exit status {status}" + (f": {err}" if err else "")
                    if privileged and not as_root:
                        read.reason += " (not root and no working sudo)"
                else:
                    read.ok, read.stdout = True, text[:SECTION_LIMIT]
            out[s.name] = read
        self.reads.update(out)
        return out


def _split_sections(stdout: str, mark: str) -> dict[str, tuple[str, int | None, list[str]]]:
    """{name: (stdout, exit status, first error lines)} from the batch's marked output."""
    out: dict[str, tuple[str, int | None, list[str]]] = {}
    current: str | None = None
    buf: list[str] = []
    for line in stdout.split("\n"):
        if line.startswith(mark + " "):
            kind, _, rest = line[len(mark) + 1:].partition(" ")
            if kind == "B":
                current, buf = rest, []
            elif kind == "E" and current is not None:
                name, _, st = rest.rpartition(" ")
                text = "\n".join(buf[:-1] if buf and buf[-1] == "" else buf)
                out[name] = (text, int(st) if st.isdigit() else None, [])
                current = None
            elif kind == "R":
                name, _, msg = rest.partition(" ")
                if name in out:
                    out[name][2].append(msg)
            continue
        if current is not None:
            buf.append(line)
    return out


def file_reader(paths: list[str]) -> str:
    """A shell snippet printing each file (globs allowed) between markers (%%F: replaced by the batch's
    random marker, so file content cannot forge one); see parse_files."""
    for p in paths:
        if not all(c.isalnum() or c in "/._-*?[]" for c in p):
            raise ValueError(f"unsafe path {p!r}")    # our own constants only: never host-provided text
    return ("for f in " + " ".join(paths) + "; do "
            "if [ -d \"$f\" ]; then continue; fi; "
            "if [ ! -e \"$f\" ]; then echo \"%%F MISSING $f\"; "
            "elif [ ! -r \"$f\" ]; then echo \"%%F UNREADABLE $f\"; "
            "else echo \"%%F BEGIN $f\"; cat -- \"$f\"; echo; echo \"%%F END $f\"; fi; done")


def parse_files(read: Read) -> dict[str, str | None] | str:
    """{path: text, or None when missing} from file_reader output, or the reason it could not be read.
    A file that exists but cannot be read makes the whole group unavailable (nothing guessed)."""
    if not read.ok:
        return read.reason
    out: dict[str, str | None] = {}
    unreadable = []
    current: str | None = None
    buf: list[str] = []
    tag = read.mark + "F "
    for line in read.stdout.split("\n"):
        if line.startswith(tag):
            kind, _, path = line[len(tag):].partition(" ")
            if kind == "BEGIN":
                current, buf = path, []
            elif kind == "END" and current == path:
                out[path] = "\n".join(buf[:-1] if buf and buf[-1] == "" else buf)
                current = None
            elif kind == "MISSING":
                if not any(c in path for c in "*?["):     # an unmatched glob is no file, not a missing one
                    out[path] = None
            elif kind == "UNREADABLE":
                unreadable.append(path)
            continue
        if current is not None:
            buf.append(line)
    if unreadable:
        return "permission denied: " + ", ".join(unreadable[:5])
    return out


def _sudo_failed(stderr: str) -> bool:
    s = stderr.lower()
    return "sudo" in s and ("password is required" in s or "not allowed" in s or "not in the sudoers" in s
                            or "a terminal is required" in s or "not found" in s)
