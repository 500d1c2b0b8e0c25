"""Real net-snmp agents for the tests: `snmpd` in the foreground on a loopback address, UDP 161, with its own
configuration (the given user lines), log, pid file and persistent directory."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from checks.snmp import _v3 as v3
from tests.loopback import stop_process


def wait_v3(address: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        for i in range(100):
            s.sendto(v3.discovery(i + 1, i + 1), (address, 161))
            try:
                if v3.decode(s.recvfrom(65535)[0]).engine_id:
                    return
            except (OSError, v3.SnmpV3Error):
                time.sleep(0.1)
    finally:
        s.close()
    raise TimeoutError(f"snmpd on {address} did not answer SNMPv3 discovery")


def start_snmpd(tmp: Path, address: str, users: str) -> subprocess.Popen:
    """snmpd on `address`:161 with `users` (createUser/rouser lines) in its configuration, once it answers
    SNMPv3 discovery. The caller stops it (tests.loopback.stop_process)."""
    conf = tmp / "snmpd.conf"
    conf.write_text(f"agentaddress udp:{address}:161\n{users}sysDescr Test switch fw V1.2.3\n")
    proc = subprocess.Popen(
        ["snmpd", "-f", "-Lf", str(tmp / "snmpd.log"), "-C", "-c", str(conf), "-p", str(tmp / "pid")],
        env={**os.environ, "SNMP_PERSISTENT_DIR": str(tmp / "persist"), "MIBS": ""},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_v3(address)
    except BaseException:
        stop_process(proc)
        raise
    return proc
