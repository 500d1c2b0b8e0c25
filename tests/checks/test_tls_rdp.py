"""tls.scan on RDP: every probe connection first asks for TLS with an X.224 Connection Request (the STARTTLS
dialogue `rdp` in checks/tls/_starttls.py), then grades RDP's TLS like any TLS port, certificate included.
Real xrdp servers on 127.16.0.24 (security_layer tls, TLS 1.2/1.3) and 127.16.0.25 (security_layer rdp: TLS
not offered, a fact and no finding of the mail/FTP STARTTLS rule); the suites equal sslyze's own RDP scan."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.checks.rdp_servers import XRDP, start_xrdp
from tests.checks.tls_support import sslyze_versions
from tests.loopback import pick_port, stop_process

TLS_ONLY, RDP_ONLY = "127.16.0.24", "127.16.0.25"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    if not Path(XRDP).exists():
        pytest.skip("needs xrdp (Debian package)")
    tmp = tmp_path_factory.mktemp("xrdp-tls")
    port = pick_port([TLS_ONLY, RDP_ONLY], 3389)
    procs = [start_xrdp(tmp, TLS_ONLY, port, "tls"), start_xrdp(tmp, RDP_ONLY, port, "rdp")]
    try:
        yield port
    finally:
        for p in procs:
            stop_process(p)


def _attempt(address: str, port: int):
    asset = Asset(address=address, cls="server", zone="server", services=[Service(port=port, name="ms-wbt-server")])
    spec = AttemptSpec(scan_id="t", check_id="tls.scan", asset=asset.to_dict(), port=port, timeout=60.0)
    return execute_attempt(spec, RunEnv(scope=["127.16.0.0/24"]))


def _sorted(versions: dict) -> dict:
    return {v: sorted(s) for v, s in versions.items()}


def test_rdp_tls_graded_and_equal_to_sslyze(servers) -> None:
    port = servers
    r = _attempt(TLS_ONLY, port)
    assert r.status == "completed", r.detail
    obs = {o.key: o.data for o in r.observations}
    assert obs["versions"]["starttls"] == {"protocol": "rdp", "offered": True}
    theirs = sslyze_versions(TLS_ONLY, port, starttls="RDP", sni="rdp.loopback.test")
    assert _sorted(obs["versions"]["versions"]) == theirs
    assert [v for v, s in theirs.items() if s] == ["TLSv1.2", "TLSv1.3"]     # xrdp.ini ssl_protocols


def test_rdp_without_tls_is_a_fact(servers) -> None:
    r = _attempt(RDP_ONLY, servers)
    assert r.status == "completed", r.detail
    assert [(o.key, o.data) for o in r.observations] == [
        ("starttls", {"starttls": {"protocol": "rdp", "offered": False,
                                   "reply": "selected protocol 0 instead of TLS"}})]
