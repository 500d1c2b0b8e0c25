"""The firewall, update and old-Redis plants are in place in the running lab, read with real clients from
the scanner's vantage point (10.77.0.1).  Targets: lab addresses only."""

from __future__ import annotations

import socket
import time
from typing import Any

import paramiko
import pytest

from lab.topology import load

pytestmark = pytest.mark.lab

KEY = "/var/lib/tcmscan-lab/scanner_ed25519"
APT_SIM = "apt-get -s -o Debug::NoLocking=1 upgrade"


def ssh(address: str, command: str) -> str:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # lab host keys change every up
    client.connect(address, username="root", pkey=paramiko.Ed25519Key.from_private_key_file(KEY),
                   look_for_keys=False, allow_agent=False, timeout=10)
    try:
        _, out, err = client.exec_command(command, timeout=60)
        text = out.read().decode()
        assert out.channel.recv_exit_status() == 0, (address, command, err.read().decode())
        return text
    finally:
        client.close()


def test_rulesets_loaded_exactly_where_planted(lab: dict[str, Any]) -> None:
    got = {}
    for h in load().hospital:     # the hostile hosts: most run no sshd; tests/lab/test_hostile_live.py
        ruleset = ssh(h.address, "nft list ruleset")
        got[h.name] = "policy drop" if "type filter hook input priority filter; policy drop;" in ruleset \
            else ruleset.strip()
    assert got == {"core-switch": "policy drop", "his": "", "emr-db": "policy drop", "pacs": "", "modality": "",
                   "hl7": "", "pump": "", "backup": "policy drop", "portal": "", "hardened": "policy drop",
                   "sm-gw": "policy drop",
                   # issues 15-17 hosts: none (their `no-firewall` plants)
                   **{h.name: "" for h in load().hospital[11:]}}


def test_firewall_refuses_other_ports_at_once(lab: dict[str, Any]) -> None:
    # refused like a closed port (TCP reset), not dropped: the scan takes no longer than without a firewall
    emr = load().host("emr-db").address
    t0 = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((emr, 8080), timeout=5)
    assert time.monotonic() - t0 < 1.0
    socket.create_connection((emr, 3306), timeout=5).close()


def test_his_alone_has_a_pending_security_update(lab: dict[str, Any]) -> None:
    got = {}
    for h in load().hospital:
        if h.fragile:
            continue   # safe mode never logs in to a medical device
        got[h.name] = [ln for ln in ssh(h.address, APT_SIM).splitlines() if ln.startswith("Inst ")]
    assert got == {"core-switch": [], "emr-db": [], "backup": [], "portal": [], "hardened": [], "sm-gw": [],
                   "his": ["Inst lab-hospital-tools [1.0-1] (1.0-2 tcmscan-lab-security:12/bookworm-security [all])"],
                   **{h.name: [] for h in load().hospital[11:] if not h.fragile}}


def test_the_only_security_source_is_the_labs_own_offline_archive(lab: dict[str, Any]) -> None:
    his = load().host("his").address
    sources = ssh(his, "cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list")
    assert sources.splitlines() == ["deb http://deb.debian.org/debian bookworm main",
                                    "deb http://deb.debian.org/debian bookworm-updates main",
                                    "deb [trusted=yes] file:/srv/lab-apt bookworm-security main"]
    lists = ssh(his, "ls /var/lib/apt/lists | grep -i security").split()
    assert lists == ["_srv_lab-apt_dists_bookworm-security_Release",
                     "_srv_lab-apt_dists_bookworm-security_main_binary-amd64_Packages"]
    assert ssh(his, "dpkg-query -W -f='${Version}' lab-hospital-tools") == "1.0-1"
    assert ssh(load().host("hardened").address, "dpkg-query -W -f='${Version}' lab-hospital-tools") == "1.0-2"


def test_his_redis_is_the_old_build(lab: dict[str, Any]) -> None:
    his = load().host("his").address
    with socket.create_connection((his, 6379), timeout=5) as s:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while b"redis_mode:" not in data and time.monotonic() < deadline:
            data += s.recv(4096)
    fields = dict(ln.split(":", 1) for ln in data.decode().splitlines() if ":" in ln)
    assert (fields["redis_version"], fields["redis_git_sha1"], fields["redis_mode"]) == (
        "6.2.14", "40305114", "standalone")
