"""mqtt.broker against real Debian mosquitto brokers on 127.17.0.x (anonymous with retained ward messages; a
password + TLS twin; a password-only plaintext one), compared with mosquitto_sub; misbehaving brokers
(flood, huge packet, silence, garbage, hang-up) on loopback; the CLI end to end with a grep of the
database for the planted patient names and payloads."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.helpers import observations, scan
from tests.loopback import Scripted, stop_process, wait_port

OPEN, LOCKED, PWPLAIN = "127.17.0.11", "127.17.0.12", "127.17.0.13"
USER, PASSWORD = "monitor", "Ward3-Broker-Secret"
# Retained messages planted on the open broker: topic -> payload with a fake patient (never to be stored).
RETAINED = {
    "ward/3/bed/12/vitals": '{"patient":"FAKEPATIENT Zhang Sanfeng","mrn":"MRN-TEST-0012","hr":72,"spo2":97}',
    "ward/3/bed/14/vitals": '{"patient":"FAKEPATIENT Li Siguang","mrn":"MRN-TEST-0014","hr":88,"spo2":93}',
    "nursecall/ward3/room5": '{"call":"bed 12","patient":"FAKEPATIENT Zhang Sanfeng","priority":"high"}',
}
NEEDLES = [b"FAKEPATIENT", b"Zhang Sanfeng", b"Li Siguang", b"MRN-TEST", b"spo2", b"priority"]


def _need() -> None:
    missing = [b for b in ("mosquitto", "mosquitto_pub", "mosquitto_sub", "mosquitto_passwd", "openssl")
               if not shutil.which(b)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install mosquitto mosquitto-clients)")


@pytest.fixture(scope="module")
def brokers() -> Iterator[Path]:
    """Three mosquitto processes with configs of their own, stopped by PID at the end."""
    _need()
    tmp = Path(tempfile.mkdtemp(prefix="tcmscan-mqtt-"))
    os.chmod(tmp, 0o755)            # mosquitto drops to its own user and must read its files
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp / "key.pem"),
                    "-out", str(tmp / "cert.pem"), "-days", "2", "-subj", "/CN=mqtt-twin.test"],
                   check=True, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp / "passwd"), USER, PASSWORD], check=True,
                   capture_output=True)
    for f in tmp.iterdir():
        os.chmod(f, 0o644)
    common = "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
    confs = {
        "open": f"listener 1883 {OPEN}\nallow_anonymous true\n{common}",
        "locked": (f"listener 8883 {LOCKED}\ncertfile {tmp}/cert.pem\nkeyfile {tmp}/key.pem\n"
                   f"allow_anonymous false\npassword_file {tmp}/passwd\n{common}"),
        "pwplain": f"listener 1883 {PWPLAIN}\nallow_anonymous false\npassword_file {tmp}/passwd\n{common}",
    }
    procs = []
    try:
        for name, text in confs.items():
            conf = tmp / f"{name}.conf"
            conf.write_text(text)
            os.chmod(conf, 0o644)
            procs.append(subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                          stderr=open(tmp / f"{name}.log", "wb")))
        for address, port in ((OPEN, 1883), (LOCKED, 8883), (PWPLAIN, 1883)):
            wait_port(address, port)
        for topic, payload in RETAINED.items():
            subprocess.run(["mosquitto_pub", "-h", OPEN, "-p", "1883", "-t", topic, "-r", "-q", "1", "-m", payload],
                           check=True, capture_output=True, timeout=10)
        yield tmp
    finally:
        for p in procs:
            stop_process(p)
        shutil.rmtree(tmp, ignore_errors=True)


def attempt(address: str, port: int, name: str = "mqtt", timeout: float = 30):
    asset = Asset(address, services=[Service(port, name=name)])
    env = RunEnv(scope=[f"{address}/32"])
    spec = AttemptSpec("t", "mqtt.broker", asset.to_dict(), port, timeout=timeout)
    return execute_attempt(spec, env)


def facts(r) -> dict:
    assert r.status == "completed", (r.reason, r.detail)
    [o] = r.observations
    assert o.key == "mqtt"
    d = dict(o.data)
    assert 2.5 <= d.pop("window_s") <= 4.0 if d["subscribed"] else d.pop("window_s") == 0.0
    return d


def test_anonymous_broker_facts(brokers: Path) -> None:
    assert facts(attempt(OPEN, 1883)) == {
        "tls": False, "tls_version": "", "connected": True, "accepted": True, "connack": "Success",
        "subscribed": True, "suback": "Granted QoS 0", "messages": 3, "retained": 3,
        "topics": sorted(RETAINED), "topics_truncated": False, "stopped": ""}


def test_hardened_twins_facts(brokers: Path) -> None:
    locked = facts(attempt(LOCKED, 8883, "secure-mqtt"))
    assert locked.pop("tls_version") in ("TLSv1.2", "TLSv1.3")
    assert locked == {"tls": True, "connected": True, "accepted": False, "connack": "Not authorized",
                      "subscribed": None, "suback": "", "messages": 0, "retained": 0, "topics": [],
                      "topics_truncated": False, "stopped": ""}
    assert facts(attempt(PWPLAIN, 1883)) == {
        "tls": False, "tls_version": "", "connected": True, "accepted": False, "connack": "Not authorized",
        "subscribed": None, "suback": "", "messages": 0, "retained": 0, "topics": [], "topics_truncated": False,
        "stopped": ""}


def _mosquitto_sub(address: str, port: int, *tls: str) -> tuple[int, list[str], str]:
    """mosquitto_sub's view: anonymous, '#', topics only (-F %t), 3 s without a message ends it (-W)."""
    p = subprocess.run(["mosquitto_sub", "-h", address, "-p", str(port), "-t", "#", "-F", "%t", "-W", "3",
                        "-V", "mqttv311", "-i", "tcmscan-compare", *tls], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout.splitlines(), p.stderr.strip()


def test_mosquitto_sub_agrees(brokers: Path) -> None:
    ours = facts(attempt(OPEN, 1883))
    rc, topics, _err = _mosquitto_sub(OPEN, 1883)
    # -W ends it with 27 ("timed out") once the retained messages are in: accepted and subscribed
    assert rc == 27
    assert (ours["messages"], ours["topics"]) == (len(topics), sorted(set(topics)))
    for address, port, tls in ((PWPLAIN, 1883, ()), (LOCKED, 8883, ("--insecure", "--cafile",
                                                                    str(brokers / "cert.pem")))):
        rc, topics, err = _mosquitto_sub(address, port, *tls)
        ours = facts(attempt(address, port, "secure-mqtt" if tls else "mqtt"))
        assert (rc != 0, topics, "not authorised" in err.lower()) == (True, [], True), err
        assert (ours["accepted"], ours["connack"], ours["tls"]) == (False, "Not authorized", bool(tls))


def test_scan_cli_findings_and_no_payload_stored(brokers: Path, tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": n, "role": "message-broker", "class": "server", "zone": "server"}
        for a, n in ((OPEN, "mqtt-open"), (LOCKED, "mqtt-locked"), (PWPLAIN, "mqtt-pw"))]}))
    db = tmp_path / "s.db"
    sid, found = scan([OPEN, LOCKED, PWPLAIN], scope=["127.17.0.0/24"], db=db, checks=["mqtt"],
                      inventory=str(inv))
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        (OPEN, "data.mqtt.anonymous-access", 1883, "critical"), (OPEN, "crypto.cleartext.mqtt", 1883, "high"),
        (PWPLAIN, "crypto.cleartext.mqtt", 1883, "high")}
    anon = next(f for f in found if f["rule_id"] == "data.mqtt.anonymous-access")
    assert anon["evidence"] == {"port": 1883, "tls": False, "subscribed": True, "messages": 3, "retained": 3,
                                "topics": sorted(RETAINED)}
    obs = observations(db, sid)
    assert sorted((o["address"], o["port"]) for o in obs if o["check_id"] == "mqtt.broker") == [
        (OPEN, 1883), (LOCKED, 8883), (PWPLAIN, 1883)]
    stored = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("s.db"))
    assert [n for n in NEEDLES if n in stored] == []
    assert [n for n in NEEDLES if n in repr(found).encode() or n in repr(obs).encode()] == []


# ------------------------------------------------------------------------------------------- bad brokers

def _varint(n: int) -> bytes:
    out = b""
    while True:
        n, digit = divmod(n, 128)
        out += bytes([digit | (0x80 if n else 0)])
        if not n:
            return out


def _publish(topic: bytes, payload: bytes) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + payload
    return b"\x30" + _varint(len(body)) + body


class FakeBroker(Scripted):
    """Plays a broker: reads CONNECT, answers (or not), reads SUBSCRIBE, answers SUBACK, then `after`."""

    def __init__(self, address: str, mode: str, after: bytes = b"") -> None:
        self.mode, self.after = mode, after
        super().__init__(self._talk_mqtt, address, 1883, read_first=4096, timeout=5)

    def _talk_mqtt(self, conn: socket.socket, _n: int, first: bytes) -> None:
        if self.mode == "silent":
            self.stop.wait(12)
            return
        if self.mode == "drop":
            return
        if self.mode == "garbage":
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.stop.wait(3)
            return
        conn.sendall(b"\x20\x02\x00\x00")                 # CONNACK accepted
        sub = conn.recv(4096)
        mid = sub[2:4] if sub[:1] == b"\x82" else b"\x00\x01"
        conn.sendall(b"\x90\x03" + mid + (b"\x80" if self.mode == "refuse-sub" else b"\x00"))
        if self.mode == "flood":
            msg = _publish(b"flood/topic", b"x" * 20) * 50
            end = time.monotonic() + 8
            while time.monotonic() < end and not self.stop.is_set():
                conn.sendall(msg)
        elif self.mode == "huge":
            conn.sendall(b"\x30" + _varint(200 * 1024 * 1024 - 1) + b"\x00\x01t")
            chunk = b"\x00" * 65536
            end = time.monotonic() + 8
            while time.monotonic() < end and not self.stop.is_set():
                conn.sendall(chunk)
        elif self.mode == "bytes":
            conn.sendall(self.after)        # and hang up: each example ends at once
        else:
            self.stop.wait(1)


def test_misbehaving_brokers_bounded() -> None:
    # mode: (status, reason, detail prefix, facts subset or None)
    cases = {
        "flood": ("completed", "", "", {"accepted": True, "subscribed": True, "messages": 200,
                                        "topics": ["flood/topic"], "stopped": "message cap: stopped after 200 messages"}),
        "refuse-sub": ("completed", "", "", {"accepted": True, "subscribed": False, "suback": "Unspecified error",
                                             "messages": 0}),
        "huge": ("error", "protocol", "MQTT broker: the peer sent more than 2097152 bytes", None),
        "silent": ("error", "timeout", "no CONNACK within 8 s", None),
        "drop": ("error", "protocol", "MQTT broker: connection ended", None),
        "garbage": ("error", "protocol", "MQTT broker", None),
    }
    for i, (mode, (status, reason, detail, subset)) in enumerate(cases.items()):
        address = f"127.17.0.{40 + i}"
        peer = FakeBroker(address, mode)
        try:
            start = time.monotonic()
            r = attempt(address, 1883, timeout=20)
            took = time.monotonic() - start
        finally:
            peer.close()
        assert (r.status, r.reason, r.detail[:len(detail)]) == (status, reason, detail), (mode, r.detail)
        assert [{k: o.data[k] for k in subset} for o in r.observations] == ([subset] if subset else []), mode
        assert took < 15, (mode, took)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=600))
def test_any_bytes_after_suback_end_as_facts_or_a_reason(after: bytes) -> None:
    """paho parses whatever follows the SUBACK: never a traceback (status bug), always facts or a reason."""
    peer = FakeBroker("127.17.0.60", "bytes", after)
    try:
        r = attempt("127.17.0.60", 1883, timeout=15)
    finally:
        peer.close()
    assert r.status in ("completed", "error"), (r.status, r.detail)
    assert r.reason in ("", "protocol", "timeout"), (r.reason, r.detail)
