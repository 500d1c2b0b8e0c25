"""Real VNC servers for the tests: TigerVNC's Xvnc (Debian tigervnc-standalone-server), headless, one per loopback
address, each with its own SecurityTypes. Started and stopped by the tests; no X11 TCP listener."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.loopback import self_signed, start_listening

XVNC = "/usr/bin/Xvnc"


def _free_display() -> int:
    for n in range(160, 260):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number between 160 and 259")


def start_xvnc(tmp: Path, address: str, port: int, security: str, password: str = "",
               extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """Xvnc on address:port offering `security` (TigerVNC SecurityTypes, e.g. "None" or "VncAuth"). With
    `password`, the VNC password file is written by TigerVNC's own `vncpasswd -f` (tigervnc-tools)."""
    args = [XVNC, f":{_free_display()}", "-rfbport", str(port), "-interface", address, "-nolisten", "tcp",
            "-SecurityTypes", security, "-geometry", "64x48", "-depth", "16",
            # TigerVNC blocks an address for 10 s after 5 connections that end before authentication: every
            # probe here is one, and a blocked server answers nothing but "Too many security failures"
            "-BlacklistThreshold", "1000000"]
    if "Vnc" in security:
        pw = tmp / f"passwd-{address}"
        if password:
            pw.write_bytes(subprocess.run(["vncpasswd", "-f"], input=password.encode(), capture_output=True,
                                          check=True).stdout)
        else:
            pw.write_bytes(os.urandom(8))   # an obfuscated 8-byte VNC password; its value plays no part
        args += ["-PasswordFile", str(pw)]
    if "X509" in security:
        key, cert = tmp / "vnc.key", tmp / "vnc.crt"
        self_signed(key, cert, "vnc.loopback.test")
        args += ["-X509Key", str(key), "-X509Cert", str(cert)]
    if "Plain" in security:
        args += ["-PlainUsers", "nobody-tcmscan"]
    return start_listening([*args, *extra], address, port)
