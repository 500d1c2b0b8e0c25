"""ldap.directory-policy: the value parsers (AD intervals, FILETIME, GeneralizedTime, binary SIDs) from a directory
sending anything: a value, None or (SIDs) ValueError, never anything else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from checks.ldap.directory_policy import (
    filetime_iso,
    generalized_iso,
    interval_days,
    interval_minutes,
    sid_string,
)
from tests.fuzz import bounded, fuzz, mutated

SIDS = st.builds(lambda subs: bytes([1, len(subs)]) + (5).to_bytes(6, "big")
                 + b"".join(x.to_bytes(4, "little") for x in subs),
                 st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=15))


def test_known_values() -> None:
    assert interval_days("-77760000000000") == 90.0 and interval_minutes("-18000000000") == 30.0
    assert interval_days("0") is None and interval_days("-9223372036854775808") is None
    assert filetime_iso("130000000000000000") == "2012-12-14T23:06:40Z" and filetime_iso("0") is None
    assert generalized_iso("20261203123100.0Z") == "2026-12-03T12:31:00Z"
    sid = bytes([1, 4]) + (5).to_bytes(6, "big") + b"".join(x.to_bytes(4, "little") for x in (21, 1, 2, 512))
    assert sid_string(sid) == "S-1-5-21-1-2-512"


@fuzz
@given(st.one_of(st.text(max_size=40), st.integers(-2**70, 2**70).map(str)))
def test_numbers_and_times(raw: str) -> None:
    for fn in (interval_days, interval_minutes, filetime_iso, generalized_iso):
        v = bounded(fn, raw)
        assert v is None or isinstance(v, float | str)


@fuzz
@given(st.one_of(st.binary(max_size=80), mutated(SIDS)))
def test_sid(raw: bytes) -> None:
    s = bounded(sid_string, raw, allowed=(ValueError,))
    assert s is None or s.startswith("S-1-")


@fuzz
@given(st.dictionaries(st.sampled_from(["domainFunctionality", "vendorName", "x"]),
                       st.one_of(st.text(max_size=20), st.lists(st.text(max_size=20), max_size=3)), max_size=3))
def test_root_dse_values(attrs: dict) -> None:
    """ldap.anonymous reads root DSE attributes of any shape a server sends."""
    from checks.ldap.anonymous import _int, _values

    assert all(isinstance(v, str) for v in bounded(_values, attrs, "vendorName") or [])
    v = bounded(_int, attrs, "domainFunctionality")
    assert v is None or isinstance(v, int)
