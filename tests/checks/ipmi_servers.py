"""A real BMC for the tests: OpenIPMI's LAN simulator `ipmi_sim` (Debian openipmi), one per loopback address, on
UDP 623, with its own lan.conf, emulator commands and state directory, no console (-n)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.loopback import stop_process

IPMI_SIM = "/usr/bin/ipmi_sim"
LAN_CONF = """name "{name}"
set_working_mc 0x20
  startlan 1
    addr {address} {port}
    priv_limit admin
    allowed_auths_callback {auths}
    allowed_auths_user {auths}
    allowed_auths_operator {auths}
    allowed_auths_admin {auths}
    guid {guid}
  endlan
{users}
"""
# one MC at IPMB 0x20 (device id 0x23, IPMI 2.0, manufacturer 0x1291), made the BMC
COMMANDS = "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\nmc_setbmc 0x20\n"


def start_ipmi_sim(tmp: Path, address: str, port: int, auths: str, users: str) -> subprocess.Popen:
    """`auths`: IPMI 1.5 authentication types allowed ("none md2 md5 straight"); `users`: lan.conf user lines."""
    d = tmp / f"ipmi-{address}"
    (d / "state").mkdir(parents=True)
    (d / "lan.conf").write_text(LAN_CONF.format(name=f"bmc{address.replace('.', '')}", address=address, port=port,
                                                auths=auths, guid=address.replace(".", "").ljust(32, "a")[:32],
                                                users=users))
    (d / "cmds.emu").write_text(COMMANDS)
    p = subprocess.Popen([IPMI_SIM, "-c", str(d / "lan.conf"), "-f", str(d / "cmds.emu"), "-s", str(d / "state"),
                          "-n"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while time.monotonic() < end:     # up once the address and port can no longer be bound by us
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((address, port))
            except OSError:
                return p
        if p.poll() is not None:
            raise RuntimeError(f"ipmi_sim on {address} exited with {p.returncode}")
        time.sleep(0.1)
    stop_process(p)
    raise TimeoutError(f"ipmi_sim on {address}:{port}/udp did not come up")
