"""What libraries say from their own loggers and threads, turned into the detail of the attempt that made them
say it, never into a traceback on the terminal, in a log or in the store.

paramiko reports a failed handshake from its Transport thread as "Exception (client): Incompatible ssh server
(no acceptable ciphers)" followed by the traceback, one ERROR record per line; with no handler installed,
logging's last resort prints all of it on stderr. scapy prints through a handler of its own. Here the network
libraries' loggers get one handler that keeps the first lines of what they say for the attempt running on the
thread (or started the thread) that said it, and drops traceback lines. A thread a library starts that dies
of an exception is one line too (`threading.excepthook`), never a traceback.

Which attempt: the worker thread runs its attempt inside `capture()`; a thread started while it does (paramiko's
Transport, pynetdicom's association) inherits that capture (Python 3.11 threads do not inherit context, so
`Thread.start` is wrapped once to pass it on). A record from a thread of no running attempt is one line on
stderr (`stray`).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from scanner.core.output import printable

# The loggers of the libraries that talk to targets. Their records never propagate to ours (or to the root's
# last resort): this module's handler is their only one.
LIBRARY_LOGGERS = ("paramiko", "pynetdicom", "pydicom", "scapy", "urllib3", "pymysql", "pg8000", "nmap",
                   "impacket", "ldap3")
MAX_NOTES = 5          # lines kept per attempt: a hostile peer can make a library log without end
MAX_NOTE_CHARS = 200
# Lines of a formatted traceback that paramiko (util.tb_strings) logs one record at a time.
_TRACEBACK_HEAD = "Traceback (most recent call last):"
_CHAIN_LINES = ("During handling of the above exception", "The above exception was the direct cause")


@dataclass
class Capture:
    """What the libraries said during one attempt: at most MAX_NOTES one-line notes."""

    notes: list[str] = field(default_factory=list)
    dropped: int = 0
    closed: bool = False
    _in_traceback: dict[int, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, note: str) -> None:
        note = printable(note.strip())[:MAX_NOTE_CHARS]
        with self._lock:
            if not note or note in self.notes:
                return
            if len(self.notes) < MAX_NOTES:
                self.notes.append(note)
            else:
                self.dropped += 1

    def annotate(self, detail: str) -> str:
        """`detail` followed by what the libraries said that it does not already say."""
        extra = [n for n in self.notes if _cause(n) not in detail]
        if not extra:
            return detail
        more = f"; {self.dropped} more" if self.dropped else ""
        said = "; ".join(extra) + more
        return f"{detail} ({said})" if detail else said


def _cause(note: str) -> str:
    # "paramiko.transport: X" says nothing new when the detail already names X
    return note.rsplit(": ", 1)[-1]


_local = threading.local()
_installed = False
_install_lock = threading.Lock()
_handler: _Handler | None = None
_stray_traceback: dict[int, bool] = {}      # thread id -> inside a traceback, for records of no attempt


def _stray(note: str) -> None:
    """What a library said outside any attempt (discovery, the end of the scan): one line, never a traceback."""
    print(f"tcmscan: warning: {printable(note)[:MAX_NOTE_CHARS]}", file=sys.stderr, flush=True)


def current() -> Capture | None:
    """The capture of the attempt this thread works for, if any."""
    cap = getattr(_local, "capture", None)
    if cap is None:
        cap = getattr(threading.current_thread(), "_tcmscan_capture", None)
    return cap


@contextmanager
def capture() -> Iterator[Capture]:
    """Run an attempt's code inside: what libraries say on this thread, or on threads started from it, is kept."""
    install()
    cap = Capture()
    previous = getattr(_local, "capture", None)
    _local.capture = cap
    try:
        yield cap
    finally:
        _local.capture = previous
        # Later records (a connection the attempt left to the scan's shared session, closed at the end) belong
        # to no attempt's outcome any more: they are dropped, not printed.
        cap.closed = True


class _Handler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._keep(record)
        except Exception:  # noqa: BLE001 - a handler that raises would print its own traceback
            pass

    def _keep(self, record: logging.LogRecord) -> None:
        cap = current()
        first = record.getMessage().split("\n", 1)[0].rstrip()
        tid = threading.get_ident()
        state = cap._in_traceback if cap is not None else _stray_traceback
        if first.startswith(_TRACEBACK_HEAD):
            state[tid] = True
            return
        if not first.strip() or first.startswith((" ", "\t") + _CHAIN_LINES):
            return
        if state.pop(tid, False):
            return          # the exception line that closes a traceback: the record before it said it
        if record.exc_info and record.exc_info[1] is not None:
            e = record.exc_info[1]
            first = f"{first}: {type(e).__name__}: {e}"
        # paramiko's "Exception (client): X" is its way of saying X happened on our side: X is the news
        note = f"{record.name}: {first.removeprefix('Exception (client): ').removeprefix('Exception (server): ')}"
        if cap is None:
            _stray(note)
        elif not cap.closed:
            cap.add(note)


def _excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread
    name = thread.name if thread is not None else "?"
    note = f"thread {name} died: {args.exc_type.__name__}: {args.exc_value}"
    cap = getattr(thread, "_tcmscan_capture", None) if thread is not None else None
    if cap is None:
        _stray(note)
    elif not cap.closed:
        cap.add(note)


_original_start = threading.Thread.start


def _start(self: threading.Thread) -> None:
    cap = current()
    if cap is not None:
        self._tcmscan_capture = cap  # type: ignore[attr-defined]
    _original_start(self)


def install() -> None:
    """Route the libraries' loggers and dying threads here. Idempotent and cheap: every attempt calls it, which
    also takes back a logger whose library added a handler of its own since."""
    global _installed, _handler
    with _install_lock:
        if not _installed:
            import scapy.error  # noqa: F401 - scapy adds its stderr handler on import; import it so it is replaced

            _handler = _Handler()
            threading.excepthook = _excepthook
            threading.Thread.start = _start  # type: ignore[method-assign]
            _installed = True
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            if logger.handlers != [_handler]:
                logger.handlers = [_handler]
            logger.propagate = False
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)      # DEBUG records are never even built
