"""tftp.configs against Debian tftpd-hpa on 127.17.0.x (a server holding a switch configuration with password
lines and a harmless one; a twin holding no configuration), compared with curl's tftp://; misbehaving servers
(silent, endless transfer, garbage, access violation) on loopback; hypothesis on the packet parser and the
credential scan; the observation stored and judged in a real database, which is then grepped for the planted
secrets."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.tftp import _wire as wire
from checks.tftp.configs import credential_kinds, table
from scanner.assess.baseline import DEFAULT_PROFILE, load_profile
from scanner.core.knowledge import knowledge
from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.engine.scan import evaluate_stored
from scanner.sdk.context import RunEnv
from scanner.store.database import Store

SERVER, TWIN = "127.17.0.21", "127.17.0.22"
SWITCH = (b"! ward-3 access switch (test plant)\nhostname sw-ward3\n"
          b"enable secret 5 $1$FAKE$PlantedEnableSecretHash.\n"
          b"username netadmin privilege 15 password 0 FakeSwitchPass123\n"
          b"snmp-server community FAKE-RW-COMMUNITY RW\n"
          + b"interface GigabitEthernet0/1\n description bedside monitors\n!\n" * 20)
HARMLESS = b"# H3C test plant without secrets\nsysname core-b\nvlan 30\n description pacs\n"
SECRETS = [b"FakeSwitchPass123", b"FAKE-RW-COMMUNITY", b"PlantedEnableSecretHash", b"sw-ward3"]


def _need() -> None:
    missing = [b for b in ("in.tftpd", "curl") if not shutil.which(b)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install tftpd-hpa curl)")


@pytest.fixture(scope="module")
def servers() -> Iterator[None]:
    """Two in.tftpd processes in the foreground (-L), read-only (--secure chroot, no -c), stopped by PID."""
    _need()
    tmp = Path(tempfile.mkdtemp(prefix="tcmscan-tftp-"))
    procs = []
    try:
        for address, files in ((SERVER, {"network-confg": SWITCH, "startup.cfg": HARMLESS}),
                               (TWIN, {"pxelinux.0": b"\x7fELF not a configuration"})):
            root = tmp / address
            root.mkdir()
            for name, content in files.items():
                (root / name).write_bytes(content)
                (root / name).chmod(0o644)
            root.chmod(0o755)
            procs.append(subprocess.Popen(["in.tftpd", "-L", "-l", "-a", f"{address}:69", "-s", str(root),
                                           "-u", "nobody"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        tmp.chmod(0o755)
        for address in (SERVER, TWIN):
            _wait_udp(address)
        yield
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_udp(address: str) -> None:
    """in.tftpd is up once a request for a missing file draws an ERROR."""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            s.sendto(wire.rrq("tcmscan-ready-probe"), (address, 69))
            try:
                if s.recvfrom(600)[0][:2] == b"\x00\x05":
                    return
            except OSError:
                time.sleep(0.1)
    raise TimeoutError(f"tftpd on {address} did not come up")


def attempt(address: str, port: int = 69, timeout: float = 60):
    asset = Asset(address, services=[Service(port, proto="udp", name="tftp")])
    spec = AttemptSpec("t", "tftp.configs", asset.to_dict(), port, proto="udp", timeout=timeout)
    return asset, execute_attempt(spec, RunEnv(scope=[f"{address}/32"]))


NAMES = [f["name"] for f in knowledge()["tftp_config_files"]["files"]]


def test_server_with_switch_config_facts(servers: None) -> None:
    _, r = attempt(SERVER)
    assert (r.status, r.detail) == ("completed", "")
    assert [(o.key, o.port, o.data) for o in r.observations] == [("tftp", 69, {
        "tried": len(NAMES), "not_found": len(NAMES) - 2, "denied": 0, "other_errors": 0, "error_messages": [],
        "found": [
            {"name": "network-confg", "size": len(SWITCH), "credentials": True,
             "credential_kinds": ["enable-secret", "snmp-community", "user-password"]},
            {"name": "startup.cfg", "size": len(HARMLESS), "credentials": False, "credential_kinds": []}]})]


def test_twin_without_configs_facts(servers: None) -> None:
    _, r = attempt(TWIN)
    assert (r.status, [o.data for o in r.observations]) == ("completed", [{
        "tried": len(NAMES), "found": [], "not_found": len(NAMES), "denied": 0, "other_errors": 0,
        "error_messages": []}])


def test_curl_agrees(servers: None) -> None:
    for address in (SERVER, TWIN):
        _, r = attempt(address)
        ours = {f["name"]: f["size"] for f in r.observations[0].data["found"]}
        theirs = {}
        for name in NAMES:
            p = subprocess.run(["curl", "-s", "--max-time", "10", f"tftp://{address}/{name}", "-o", "-"],
                               capture_output=True, timeout=20)
            if p.returncode == 0:
                theirs[name] = len(p.stdout)
            else:
                assert p.returncode == 68, (name, p.returncode)      # curl: "file not found on TFTP server"
        assert ours == theirs, address


def test_findings_stored_without_secrets(servers: None, tmp_path: Path) -> None:
    db = tmp_path / "tftp.db"
    results = {a: attempt(a) for a in (SERVER, TWIN)}
    store = Store(db)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    store.create_scan({"id": "s1", "created": now, "started": now, "finished": now, "status": "done",
                       "phase": "done", "targets": [SERVER, TWIN], "scope": ["127.17.0.0/24"], "exclude": [],
                       "settings": {}, "inventory": {}, "profile_id": "", "profile_version": "",
                       "profile_sha256": "", "tool_version": "", "check_versions": {}, "error": None})
    store.save_assets("s1", [asset for asset, _ in results.values()])
    for _, r in results.values():
        store.record_attempt("s1", r, "1.0", now)
    evaluate_stored("s1", store, load_profile(DEFAULT_PROFILE))
    found = {(f.address, f.rule_id, f.port, f.severity) for f in store.findings("s1")}
    assert found == {(SERVER, "data.tftp.config-exposed", 69, "critical")}
    [f] = store.findings("s1")
    assert f.evidence == {"port": 69, "files": ["network-confg", "startup.cfg"],
                          "with_credentials": ["network-confg"]}
    verdicts = {(r.rule_id, r.address): r.status for r in store.rule_results("s1") if r.rule_id.startswith("data.tftp")}
    assert verdicts == {("data.tftp.config-exposed", SERVER): "failed", ("data.tftp.config-exposed", TWIN): "passed"}
    store.close()
    stored = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("tftp.db"))
    assert [s for s in SECRETS if s in stored] == []


# -------------------------------------------------------------------------------------------- bad servers

class FakeTftp:
    """A UDP 'TFTP server' on loopback answering each RRQ per `mode` from a port of its own (as RFC 1350 servers
    do): silent | endless | garbage | denied | oack."""

    def __init__(self, address: str, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 69))
        self.sock.settimeout(0.2)
        self.address = address
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                _req, client = self.sock.recvfrom(600)
            except OSError:
                continue
            if self.mode == "silent":
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as t:
                t.bind((self.address, 0))
                t.settimeout(1)
                if self.mode == "garbage":
                    t.sendto(b"HTTP/1.1 400 Bad Request\r\n\r\n", client)
                elif self.mode == "denied":
                    t.sendto(struct.pack("!HH", 5, 2) + b"Access violation\0", client)
                elif self.mode == "oack":
                    t.sendto(struct.pack("!H", 6) + b"blksize\x001428\0", client)
                elif self.mode == "endless":
                    block = 1
                    while not self.stop.is_set():
                        t.sendto(struct.pack("!HH", 3, block & 0xFFFF) + b"A" * 512, client)
                        try:
                            data = t.recv(600)
                        except OSError:
                            break
                        if data[:2] != b"\x00\x04":
                            break          # the client's ERROR: it stopped
                        block += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=3)
        self.sock.close()


def test_misbehaving_servers_bounded() -> None:
    limit = knowledge()["tftp_config_files"]["max_bytes"]
    cases = {
        "silent": ("error", "timeout", "TFTP network-confg: no answer within 5 s (request sent twice)", None),
        "endless": ("error", "protocol", f"TFTP network-confg: more than {limit} bytes, not a device configuration "
                                         "(or a transfer that never ends); aborted", None),
        "garbage": ("error", "protocol", "TFTP network-confg: unexpected opcode 18516", None),
        "oack": ("error", "protocol", "TFTP network-confg: option acknowledgement to a request without options",
                 None),
        "denied": ("completed", "", "", {"found": [], "denied": len(NAMES), "not_found": 0}),
    }
    for i, (mode, (status, reason, detail, subset)) in enumerate(cases.items()):
        address = f"127.17.0.{70 + i}"
        peer = FakeTftp(address, mode)
        try:
            start = time.monotonic()
            _, r = attempt(address, timeout=40)
            took = time.monotonic() - start
        finally:
            peer.close()
        assert (r.status, r.reason, r.detail) == (status, reason, detail), mode
        assert [{k: o.data[k] for k in subset} for o in r.observations] == ([subset] if subset else []), mode
        assert took < 12, (mode, took)


# -------------------------------------------------------------------------------------------- parsers

@settings(max_examples=400, deadline=200)
@given(st.binary(max_size=700))
def test_parse_any_datagram(datagram: bytes) -> None:
    try:
        kind, number, body = wire.parse(datagram)
    except wire.TftpError:
        return
    assert kind in ("data", "error") and 0 <= number <= 0xFFFF
    assert len(body) <= wire.BLOCK


def test_parse_known_packets() -> None:
    assert wire.parse(b"\x00\x03\x00\x07" + b"x" * 10) == ("data", 7, b"x" * 10)
    assert wire.parse(b"\x00\x05\x00\x01File not found\x00") == ("error", 1, "File not found")
    assert wire.rrq("network-confg") == b"\x00\x01network-confg\x00octet\x00"
    assert wire.ack(65536 + 3) == b"\x00\x04\x00\x03"


@settings(max_examples=200, deadline=500)
@given(st.binary(max_size=4096))
def test_credential_scan_of_any_content(content: bytes) -> None:
    _names, patterns, _max = _patterns()
    kinds = credential_kinds(content, patterns)
    assert kinds == sorted(set(kinds)) and set(kinds) <= {pid for pid, _ in patterns}


def test_credential_patterns_on_known_lines() -> None:
    _names, patterns, _max = _patterns()
    lines = {
        b"enable secret 5 $1$abc": ["enable-secret"], b" password 7 0822455D0A16": ["line-password"],
        b"local-user admin class manage\n password cipher $c$3$x": ["comware-password", "line-password"],
        b"super password level 3 simple x": ["super-password"], b"snmp-agent community write private": ["snmp-community"],
        b'reg.1.auth.password="1234"': ["key-value-password"], b"<adminPassword>x</adminPassword>": ["xml-password"],
        b"radius-server host 10.0.0.5 key s3cr3t": ["aaa-server-key"], b"description password policy": [],
        b"hostname core\ninterface vlan 1": [],
    }
    assert {k: credential_kinds(k, patterns) for k in lines} == lines


def _patterns():
    class Ctx:
        knowledge = knowledge()
    return table(Ctx())  # type: ignore[arg-type]
