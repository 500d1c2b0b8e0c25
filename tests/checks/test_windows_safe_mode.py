"""Fragile and medical assets get the SMB/LDAP probes only as far as they are known to take them: the handshake
(smb.negotiate) is paced like every probe; the checks that open a session or bind (smb.shares, ldap.anonymous)
run there only with the inventory's explicit permission; ldap.directory-policy needs a credential the hospital
gave for that address. Every check registers and loads (entry points in pyproject.toml)."""

from __future__ import annotations

import pytest

from scanner.core.models import Asset, Service
from scanner.engine.plugins import load_registry

IDS = ("smb.negotiate", "smb.shares", "ldap.anonymous", "ldap.directory-policy")


def test_registered() -> None:
    reg = load_registry()
    assert {i: reg.get(i) is not None for i in IDS} == dict.fromkeys(IDS, True)
    assert not {k: v for k, v in reg.errors.items() if k in IDS}


@pytest.mark.parametrize(("check_id", "opt_in", "plain", "with_opt_in"), [
    ("smb.negotiate", "", True, True),
    ("smb.shares", "smb_session_allowed", False, True),
    ("ldap.anonymous", "ldap_bind_allowed", False, True),
    ("ldap.directory-policy", "", True, True),
])
def test_safe_mode(check_id, opt_in, plain, with_opt_in) -> None:
    check = load_registry().get(check_id)
    fragile = Asset(address="10.77.0.23", cls="medical-device", fragile=True,
                    services=[Service(port=445, name="microsoft-ds"), Service(port=389, name="ldap")])
    assert check.allowed_in_safe_mode(fragile) is plain
    allowed = Asset(address="10.77.0.23", cls="medical-device", fragile=True, services=fragile.services,
                    extra={opt_in: True} if opt_in else {})
    assert check.allowed_in_safe_mode(allowed) is with_opt_in
    assert check.meta.needs_credentials == ("ldap" if check_id == "ldap.directory-policy" else "")


def test_directory_policy_one_attempt_per_directory() -> None:
    from checks.ldap.directory_policy import applies

    both = Asset(address="10.77.0.5", services=[Service(port=389, name="ldap"), Service(port=636, name="ldaps")])
    only_ldaps = Asset(address="10.77.0.6", services=[Service(port=636, name="ldaps")])
    assert [applies(both, s) for s in both.services] == [True, False]
    assert [applies(only_ldaps, s) for s in only_ldaps.services] == [True]
