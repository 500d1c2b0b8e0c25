"""Version text a server announces (nmap's product/version of a banner, a DICOM implementation version name)
against the known-vulnerable table (scanner/sdk/versions.py): ordering and matching never raise."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from scanner.core.knowledge import knowledge
from scanner.sdk import versions as v
from tests.fuzz import bounded, fuzz

TABLE = knowledge()["vulnerable_versions"]
PRODUCTS = sorted({m for spec in (TABLE.get("products") or {}).values() for m in spec.get("match", [])})
VERSION = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(("1", "2", ".", "p", "-", "+deb12u", "Debian-", "~", ":", " ", "²", "٣", "0" * 5000,
                              "9" * 30)), max_size=12).map("".join),
)


@fuzz
@given(VERSION, VERSION)
@example("²:1", "1")                                  # isdigit() but not int()
@example("1" * 5000, "2")                             # past int()'s 4300-digit limit
def test_version_ordering(a: str, b: str) -> None:
    assert bounded(v.dpkg_cmp, a, b) in (-1, 0, 1)
    assert bounded(v.dpkg_cmp, a, a) == 0
    lt = bounded(v.upstream_lt, a, b)
    assert not (lt and bounded(v.upstream_lt, b, a))


@fuzz
@given(st.one_of(st.sampled_from(PRODUCTS), st.text(max_size=40)), VERSION)
@example("OpenSSH", "²:9.2p1 Debian-2+deb12u3")
@example("OpenSSH", "9" * 4400 + "p1 Debian-2+deb12u3")
def test_matching_a_banner(product: str, version: str) -> None:
    found = bounded(v.match_vulnerable, TABLE, product, version)
    assert found["version"] == version and isinstance(found["matches"], list)
