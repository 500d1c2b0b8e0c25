"""services.db-tls on SQL Server's PRELOGIN ENCRYPTION option. No SQL Server runs on Debian: the peers are
`tests/checks/mssql_prelogin_standin.py` stand-ins on 127.27.0.41-44 answering the captured shape of a SQL
Server 2019 PRELOGIN answer with ENCRYPT_NOT_SUP (.41), ENCRYPT_REQ (.42), ENCRYPT_OFF (.43) and ENCRYPT_ON (.44).
nmap's version detection (its own PRELOGIN probe) names each the SQL Server 2019 it imitates; nmap 7.93's
ms-sql-info and ms-sql-ntlm-info fail on any target (nmap issues #2571, #2622: "attempt to index a nil value",
mssql.lua:3334), which the test asserts rather than hides. Findings through the CLI are asserted exactly."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from checks.services import _wire as wire
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.checks.mssql_prelogin_standin import MssqlPreloginStandin, prelogin_answer
from tests.fuzz import fuzz
from tests.helpers import scan

NOT_SUP, REQ, OFF, ON = "127.27.0.41", "127.27.0.42", "127.27.0.43", "127.27.0.44"
ENCRYPTION = {NOT_SUP: 0x02, REQ: 0x03, OFF: 0x00, ON: 0x01}


@pytest.fixture(scope="module")
def standins() -> Iterator[dict[str, MssqlPreloginStandin]]:
    peers = {a: MssqlPreloginStandin(a, e) for a, e in ENCRYPTION.items()}
    try:
        yield peers
    finally:
        for p in peers.values():
            p.close()


def attempt(address: str, name: str = "ms-sql-s", port: int = 1433):
    asset = Asset(address, services=[Service(port, name=name)])
    return execute_attempt(AttemptSpec("t", "services.db-tls", asset.to_dict(), port, timeout=25),
                           RunEnv(scope=[f"{address}/32"]))


def facts(address: str) -> dict:
    r = attempt(address)
    assert (r.status, r.detail) == ("completed", ""), r.detail
    [o] = r.observations
    assert (o.key, o.port) == ("tls", 1433)
    return dict(o.data)


def test_facts_per_encryption_answer(standins: dict[str, MssqlPreloginStandin]) -> None:
    common = {"service": "mssql", "product": "mssql", "version": "15.0.2000.5", "tls_version": ""}
    assert facts(NOT_SUP) == {**common, "tls_offered": False, "plaintext_refused": False,
                              "detail": "PRELOGIN answer to ENCRYPT_OFF: ENCRYPT_NOT_SUP (0x02): no TLS: login and "
                                        "data in cleartext"}
    assert facts(REQ) == {**common, "tls_offered": True, "plaintext_refused": True,
                          "detail": "PRELOGIN answer to ENCRYPT_OFF: ENCRYPT_REQ (0x03): TLS required for the "
                                    "whole session"}
    assert facts(OFF) == {**common, "tls_offered": True, "plaintext_refused": False,
                          "detail": "PRELOGIN answer to ENCRYPT_OFF: ENCRYPT_OFF (0x00): TLS for the login packet "
                                    "only, then cleartext"}
    assert facts(ON) == {**common, "tls_offered": True, "plaintext_refused": True,
                         "detail": "PRELOGIN answer to ENCRYPT_OFF: ENCRYPT_ON (0x01): TLS required for the "
                                   "whole session"}
    # one PRELOGIN per attempt, asking for no encryption; never a LOGIN7
    sent = [r for p in standins.values() for r in p.requests if r == wire.tds_prelogin_request(0x00)]
    assert len(sent) >= 4
    assert all(r[0] == wire.TDS_PRELOGIN for p in standins.values() for r in p.requests)


def test_nmap_version_detection_reads_the_standins(standins: dict[str, MssqlPreloginStandin]) -> None:
    if not shutil.which("nmap"):
        pytest.skip("needs nmap")
    p = subprocess.run(["nmap", "-Pn", "-n", "-sT", "-sV", "-p1433", "--script", "ms-sql-info,ms-sql-ntlm-info",
                        NOT_SUP, REQ], capture_output=True, text=True, timeout=120)
    out = p.stdout
    # nmap's PRELOGIN probe (nmap-service-probes `ms-sql-s`) takes each for the SQL Server 2019 RTM it imitates
    assert out.count("1433/tcp open  ms-sql-s Microsoft SQL Server 2019 15.00.2000.05; RTM") == 2, out
    # nmap 7.93's ms-sql-* scripts die before sending anything (issues #2571/#2622), as against real servers
    if "Nmap 7.93" in out:
        assert out.count("|_ms-sql-info: ERROR: Script execution failed") == 2, out


def test_scan_cli_findings(standins: dict[str, MssqlPreloginStandin], tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": f"sql-{a.rsplit('.', 1)[1]}", "role": "database", "class": "server",
         "zone": "server"} for a in ENCRYPTION]}))
    _sid, found = scan(list(ENCRYPTION), scope=["127.27.0.40/29"], db=tmp_path / "s.db",
                       checks=["services.db-tls"], inventory=str(inv))
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        (NOT_SUP, "crypto.cleartext.database", 1433, "high"),
        (OFF, "crypto.cleartext.database-tls-optional", 1433, "medium")}


def test_misbehaving_peers_bounded() -> None:
    """Silence, garbage, a flood, an absurd length, a TLS alert and an unknown ENCRYPTION value on 1433."""
    from tests.loopback import Scripted

    def talk(mode: str):
        def run(conn, _n, _first):
            if mode == "silent":
                time.sleep(8)
            elif mode == "garbage":
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            elif mode == "flood":
                end = time.monotonic() + 6
                while time.monotonic() < end:
                    conn.sendall(b"\x04\x01\xff\xff" + b"A" * 65536)
            elif mode == "tls-alert":
                conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28")
            elif mode == "unknown-value":
                conn.sendall(prelogin_answer(0x07))
            elif mode == "no-terminator":
                conn.sendall(wire.tds_packet(wire.TDS_REPLY, b"\x01\x00\x05\x00\x01\x02"))
        return run

    cases = {
        "silent": ("error", "timeout", "mssql: timeout waiting for the reply"),
        "garbage": ("not_applicable", "", "port does not speak mssql: not a TDS reply (packet type 0x53)"),
        "flood": ("not_applicable", "", "port does not speak mssql: reply larger than 32767 bytes"),
        "tls-alert": ("not_applicable", "", "port does not speak mssql: not a TDS reply (packet type 0x15)"),
        "unknown-value": ("error", "protocol", "PRELOGIN ENCRYPTION value 0x07 is not in MS-TDS 2.2.6.5"),
        "no-terminator": ("not_applicable", "", "port does not speak mssql: truncated PRELOGIN option table"),
    }
    for i, (mode, (status, reason, detail)) in enumerate(cases.items()):
        address = f"127.27.0.{90 + i}"
        peer = Scripted(talk(mode), address, 1433, read_first=4096, timeout=10)
        try:
            start = time.monotonic()
            r = attempt(address)
            took = time.monotonic() - start
        finally:
            peer.close()
        assert (r.status, r.reason, r.detail) == (status, reason, detail), (mode, r.detail)
        assert r.observations == [] and took < 8, (mode, took)


@fuzz
@given(st.integers(0, 255), st.binary(min_size=6, max_size=6))
def test_parser_reads_back_what_a_server_sends(encryption: int, version: bytes) -> None:
    a = wire.parse_tds_prelogin(prelogin_answer(encryption, version))
    assert (a["encryption"], a["client_cert"], a["options"]) == (encryption, bool(encryption & 0x80), [0, 1, 2, 3])
    assert a["version"] == (f"{version[0]}.{version[1]}.{int.from_bytes(version[2:4], 'big')}."
                            f"{int.from_bytes(version[4:6], 'big')}")
