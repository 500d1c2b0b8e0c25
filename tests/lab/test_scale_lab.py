"""The lab's scale mode (lab/scale.py): N addresses in one namespace, each answering OpenSSH on 22 and nginx on
80 and 443; no default route inside; `down` removes the namespace, the veth and the daemons it recorded."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess

import pytest

from lab import scale
from lab.manager import route_device

pytestmark = pytest.mark.lab


@pytest.fixture
def scale_lab():
    if scale.status()["running"]:
        pytest.fail("a scale lab is already up (a benchmark running?): this test would take it down")
    st = scale.up(5, progress=lambda _m: None)
    try:
        yield st
    finally:
        scale.down(progress=lambda _m: None)


def _first_line(address: str, port: int, tls: bool = False) -> bytes:
    sock = socket.create_connection((address, port), timeout=5)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)
    with sock:
        if port != 22:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
        return sock.recv(200).split(b"\r\n")[0]


def test_each_address_is_a_host_with_ssh_http_and_https(scale_lab) -> None:
    assert scale_lab["hosts"] == ["10.78.0.10", "10.78.0.11", "10.78.0.12", "10.78.0.13", "10.78.0.14"]
    pids = dict(scale_lab["pids"])
    for address in scale_lab["hosts"]:
        assert route_device(address) == scale.HOST_LINK
        assert _first_line(address, 22).startswith(b"SSH-2.0-OpenSSH_")
        assert _first_line(address, 80) == b"HTTP/1.1 200 OK"
        assert _first_line(address, 443, tls=True) == b"HTTP/1.1 200 OK"
    routes = subprocess.run(["ip", "-n", scale.NETNS, "route", "show", "default"], capture_output=True,
                            text=True, check=True).stdout
    assert routes.strip() == "", "no default route in the scale namespace"
    scale.down(progress=lambda _m: None)
    assert not scale.status()["running"] and scale.NETNS not in subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert subprocess.run(["ip", "link", "show", scale.HOST_LINK], capture_output=True).returncode != 0
    for pid in pids.values():
        assert not os.path.exists(f"/proc/{pid}") or b"nginx" not in open(f"/proc/{pid}/cmdline", "rb").read()
