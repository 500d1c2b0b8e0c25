"""Hypothesis over every parser of what a target sends (or a scanned host prints over SSH): arbitrary bytes and
valid messages mutated byte by byte. Each parser returns a value or raises its family's declared error, never
anything else, and never takes more than MEMORY_LIMIT bytes.

Profiles: "ci" (bounded, the default: the suite) and "long" (`scripts/fuzz.sh MINUTES`), chosen by
$TCMSCAN_FUZZ_PROFILE. A crash found is fixed in the parser and its input pinned with `@example`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parents[2]
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_SLOW_OK)
# Fresh random inputs each run, failures kept in .hypothesis/fuzz and replayed first next time.
settings.register_profile("long", max_examples=int(os.environ.get("TCMSCAN_FUZZ_EXAMPLES", "20000")),
                          deadline=None, database=DirectoryBasedExampleDatabase(ROOT / ".hypothesis" / "fuzz"),
                          suppress_health_check=_SLOW_OK)
PROFILE = os.environ.get("TCMSCAN_FUZZ_PROFILE", "ci")
fuzz = settings.get_profile(PROFILE)

# Inputs are a few KiB; a parser that allocates more than this is sizing something by a length it was sent.
MEMORY_LIMIT = 16 * 1024 * 1024

T = TypeVar("T")


def bounded(fn: Callable[..., T], *args: Any, allowed: tuple[type[BaseException], ...] = (), **kw: Any) -> T | None:
    """fn(*args): its value, or None when it raised one of `allowed`; any other exception propagates (the
    failure hypothesis shrinks). Fails when the call's peak allocation exceeds MEMORY_LIMIT."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        return fn(*args, **kw)
    except allowed:
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        if started:
            tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"{fn.__name__} allocated {peak} bytes"


INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes], max_edits: int = 6) -> bytes:
    """A valid message with a few edits: byte flips, boundary values (length fields), inserted and deleted runs,
    truncation."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(0, max_edits))):
        op = draw(st.sampled_from(("flip", "set", "set4", "insert", "delete", "truncate")))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and pos < len(data):
            data[pos] = draw(st.sampled_from(INTERESTING) | st.integers(0, 255))
        elif op == "set4":
            data[pos:pos + 4] = draw(st.sampled_from((b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff",
                                                       b"\x80\x00\x00\x00", b"\x00\x00\xff\xff")))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


@contextlib.contextmanager
def peer(sent: bytes) -> Iterator[socket.socket]:
    """Our end of a connection whose peer sends `sent` and then closes its side (what a hostile server does);
    what we send is read and dropped, so our writes never block."""
    ours, theirs = socket.socketpair()

    def drain() -> None:
        with contextlib.suppress(OSError):
            while theirs.recv(65536):
                pass

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        theirs.sendall(sent)
        theirs.shutdown(socket.SHUT_WR)
        yield ours
    finally:
        ours.close()
        t.join(2)
        theirs.close()
