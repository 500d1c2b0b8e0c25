"""ssh.kex and http.probe on the lab: findings of their rules must equal lab/expected-findings.yaml exactly
(core-switch and his SSH plants; pump's plain-HTTP console; his/portal without HSTS; hardened clean)."""

from __future__ import annotations

import pytest

from tests.helpers import expected, scan, triples

RULES = ("crypto.ssh.", "crypto.tls.no-hsts", "crypto.cleartext.http-admin")


@pytest.mark.lab
def test_lab_ssh_and_http_findings_equal_ground_truth(lab, tmp_path):
    _, found = scan([h["address"] for h in lab["hosts"]], scope=[lab["subnet"]], db=tmp_path / "scan.db",
                    checks=["ssh", "http"], inventory=lab["inventory"], extra=["--no-ping"])
    got = {t for t in triples(found, lab) if t[1].startswith(RULES)}
    assert got == expected(RULES)
    assert not [t for t in got if t[0] == "hardened"]
