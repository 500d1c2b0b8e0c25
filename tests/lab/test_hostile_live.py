"""The lab's hostile hosts misbehave as lab/topology.yaml says, seen from the scanner's vantage point (10.77.0.1)
with plain sockets and real clients. Targets: lab addresses only."""

from __future__ import annotations

import gzip
import io
import re
import socket
import ssl
import subprocess
import time
import warnings
from typing import Any

import pytest
from cryptography import x509

from lab.topology import load
from tests.lab.test_lab_up import tls_context

pytestmark = pytest.mark.lab


def _address(name: str) -> str:
    return load().host(name).address


def _connect(name: str, port: int) -> socket.socket:
    return socket.create_connection((_address(name), port), timeout=5)


def test_status_lists_the_hostile_hosts_apart(lab: dict[str, Any]) -> None:
    topo = load()
    assert [h["name"] for h in lab["hostile"]] == [h.name for h in topo.hosts if h.hostile] == [
        "tarpit", "drip", "flood", "reset", "garble", "absurd", "oddssh", "flapper"]
    assert not {h["name"] for h in lab["hosts"]} & {h["name"] for h in lab["hostile"]}
    assert next(h for h in lab["hostile"] if h["name"] == "garble")["services"][0] == "ssh/22 ssh-garbage-kexinit"


def test_no_default_route_on_the_hostile_hosts(lab: dict[str, Any]) -> None:
    for h in lab["hostile"]:
        routes = subprocess.run(["ip", "-n", f"lab-{h['name']}", "-4", "route", "show"], capture_output=True,
                                text=True, check=True).stdout.strip().splitlines()
        # flapper's connected route leaves with its address
        assert routes in ([f"10.77.0.0/24 dev eth0 proto kernel scope link src {h['address']}"], []), h["name"]
        assert routes or h["name"] == "flapper"


def test_silent_port_says_nothing(lab: dict[str, Any]) -> None:
    with _connect("tarpit", 21) as s:
        s.settimeout(2)
        with pytest.raises(TimeoutError):
            s.recv(10)


def test_drip_sends_its_greeting_then_one_byte_a_second(lab: dict[str, Any]) -> None:
    with _connect("drip", 21) as s:
        t0 = time.monotonic()
        got = s.recv(10)
        assert got == b"220 "
        while len(got) < 6:
            got += s.recv(10)
        assert got == b"220 AA"
        assert 1.7 < time.monotonic() - t0 < 3.5


def test_flood_sends_megabytes_without_a_line_end(lab: dict[str, Any]) -> None:
    with _connect("flood", 21) as s:
        got = b""
        while len(got) < 2_000_000:
            got += s.recv(65536)
    assert got.startswith(b"220 AAAA") and b"\n" not in got


def test_reset_port_resets(lab: dict[str, Any]) -> None:
    with _connect("reset", 3306) as s:
        s.settimeout(3)
        with pytest.raises(ConnectionResetError):
            s.recv(10)


def test_garbage_and_endless_kexinit(lab: dict[str, Any]) -> None:
    with _connect("garble", 22) as s:
        s.sendall(b"SSH-2.0-lab_test\r\n")
        time.sleep(0.5)
        data = s.recv(4096)
    assert data.startswith(b"SSH-2.0-hostile_garbage_kexinit\r\n")
    assert data[len(b"SSH-2.0-hostile_garbage_kexinit\r\n") + 5:][:1] == b"\x14"      # KEXINIT
    with _connect("absurd", 22) as s:
        s.sendall(b"SSH-2.0-lab_test\r\n")
        got = b""
        while len(got) < 1_000_000:
            got += s.recv(65536)
    assert got.split(b"\r\n", 1)[1][:4] == b"\xff\xff\xff\xfc"                          # a 4 GiB packet


def test_paramiko_finds_no_algorithm_in_common_with_oddssh(lab: dict[str, Any]) -> None:
    import paramiko

    with _connect("oddssh", 22) as s:
        t = paramiko.Transport(s)
        try:
            with pytest.raises(paramiko.SSHException, match="no acceptable kex algorithm"):
                t.start_client(timeout=10)
        finally:
            t.close()


def test_absurd_certificate_chain(lab: dict[str, Any]) -> None:
    out = subprocess.run(["openssl", "s_client", "-connect", f"{_address('absurd')}:443", "-showcerts"],
                         input="", capture_output=True, text=True, timeout=30).stdout
    pems = re.findall(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", out, re.S)
    assert len(pems) == 50
    with warnings.catch_warnings():     # cryptography warns of the negative serial: the point of it
        warnings.simplefilter("ignore")
        leaf = x509.load_pem_x509_certificate(pems[0].encode())
        assert (leaf.serial_number, leaf.not_valid_before_utc.year, leaf.not_valid_after_utc.year) == (-5, 1950, 9999)
    with socket.create_connection((_address("absurd"), 443), timeout=5) as raw, \
            tls_context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3).wrap_socket(raw) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: absurd\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200 OK")


def _http(name: str, port: int, path: str = "/") -> bytes:
    with _connect(name, port) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got and len(got) < 2_000_000:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_http_behaviours(lab: dict[str, Any]) -> None:
    assert b"\r\nLocation: /loop\r\n" in _http("garble", 80)
    assert b"\r\nLocation: /\r\n" in _http("garble", 80, "/loop")
    assert len(_http("garble", 8080)) > 1_000_000                  # still no end of headers
    head = _http("absurd", 80)
    assert b"\r\nContent-Encoding: gzip\r\n" in head
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length < 2_000_000
    with _connect("absurd", 80) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: absurd\r\n\r\n")
        body = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    inflated = gzip.GzipFile(fileobj=io.BytesIO(body.split(b"\r\n\r\n", 1)[1])).read(1 << 20)
    assert inflated.startswith(b"<html><head><title>hostile gzip bomb</title>")
    assert b"Transfer-Encoding: chunked" in _http("absurd", 8080)


def test_dicom_and_mllp_behaviours(lab: dict[str, Any]) -> None:
    from scanner.sdk.probes import associate_rq, harmless_message, mllp_frame

    with _connect("absurd", 104) as s:
        s.sendall(associate_rq("ANY", "LABTEST"))
        assert s.recv(6) == b"\x02\x00\xff\xff\xff\xff"
    with _connect("garble", 2575) as s:
        s.sendall(mllp_frame(harmless_message("LABTEST")))
        time.sleep(0.5)
        data = s.recv(4096)
    assert data.startswith(b"\x0bMSH|") and b"\x1c\x0d" not in data


def test_snmp_answers_in_wrong_types(lab: dict[str, Any]) -> None:
    from checks.snmp import _wire as wire
    from lab.probe import snmp_get_sysdescr

    for name, readable in (("garble", False), ("absurd", True)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(snmp_get_sysdescr("public", 4242), (_address(name), 161))
            data, _ = s.recvfrom(4096)
        if readable:
            assert wire.decode(data).varbinds == [("1.3.6.1.2.1.1.1.0", (1 << 127) - 1)]
        else:
            with pytest.raises(wire.SnmpError):
                wire.decode(data)


def test_flapper_address_disappears_and_comes_back(lab: dict[str, Any]) -> None:
    flap = load().host("flapper").flap
    seen: set[bool] = set()
    deadline = time.monotonic() + flap["first_up"] + 2 * (flap["up"] + flap["down"])
    while seen != {True, False} and time.monotonic() < deadline:
        out = subprocess.run(["ip", "-n", "lab-flapper", "-4", "-o", "addr", "show", "dev", "eth0"],
                             capture_output=True, text=True, check=True).stdout
        seen.add(" 10.77.0.77/24 " in out)
        time.sleep(0.5)
    assert seen == {True, False}
