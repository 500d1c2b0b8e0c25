"""smb.negotiate: NEGOTIATE answers and the direct-TCP framing from a peer sending anything: a NegotiateAnswer or
WireError, never anything else."""

from __future__ import annotations

import socket
import time

from hypothesis import given
from hypothesis import strategies as st

from checks.smb._wire import (
    SMB1_DIALECT,
    SMB2_DIALECTS,
    NegotiateAnswer,
    WireError,
    parse_negotiate,
    read_message,
)
from tests.checks.smb_answers import framed, smb1_answer, smb2_answer
from tests.fuzz import bounded, fuzz, mutated

ANSWERS = st.one_of(
    st.builds(smb2_answer, st.sampled_from([*SMB2_DIALECTS.values(), 0x02FF, 0xFFFF]), st.integers(0, 3),
              st.sampled_from([0, 0xC00000BB]), st.integers(0, 2**64 - 1)),
    st.builds(smb1_answer, st.sampled_from([0, 1, 0xFFFF]), st.integers(0, 15), st.integers(0, 2**64 - 1)))
OFFERS = st.sampled_from([SMB1_DIALECT, *SMB2_DIALECTS])


@fuzz
@given(st.one_of(st.binary(max_size=400), mutated(ANSWERS)), OFFERS)
def test_negotiate_answer(message: bytes, offered: str) -> None:
    a = bounded(parse_negotiate, message, offered, allowed=(WireError,))
    assert a is None or isinstance(a, NegotiateAnswer)
    if a is not None and a.accepted:
        assert a.dialect == offered and a.signing_required in (True, False)
        assert a.server_time is None or 1980 <= a.server_time.year <= 9000


@fuzz
@given(st.one_of(st.binary(max_size=3000), mutated(ANSWERS.map(framed))))
def test_framing_over_a_real_socket(raw: bytes) -> None:
    """Whatever arrives before EOF: one message or WireError; never a hang (deadline 1 s)."""
    a, b = socket.socketpair()
    try:
        a.sendall(raw)
        a.shutdown(socket.SHUT_WR)
        m = bounded(read_message, b, time.monotonic() + 1.0, allowed=(WireError,))
        assert m is None or len(m) == int.from_bytes(raw[1:4], "big")
    finally:
        a.close()
        b.close()
