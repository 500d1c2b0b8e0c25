"""Real RDP servers for the tests: Debian's xrdp, one per loopback address, in the foreground, with its own xrdp.ini
(security_layer rdp / tls / negotiate, crypt_level low / high) and a log file in the test's directory. No session manager: the tests
read the connection negotiation only, which xrdp answers without sesman or a desktop."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.loopback import self_signed, start_listening

XRDP = "/usr/sbin/xrdp"
INI = """[Globals]
ini_version=1
fork=false
port=tcp://{address}:{port}
use_vsock=false
security_layer={layer}
crypt_level={crypt}
certificate={tmp}/rdp.crt
key_file={tmp}/rdp.key
ssl_protocols=TLSv1.2, TLSv1.3

[Logging]
LogFile={tmp}/xrdp-{address}.log
LogLevel=INFO
EnableSyslog=false
EnableConsole=false
"""


def start_xrdp(tmp: Path, address: str, port: int, layer: str, crypt: str = "high") -> subprocess.Popen:
    self_signed(tmp / "rdp.key", tmp / "rdp.crt", "rdp.loopback.test")
    ini = tmp / f"xrdp-{address}.ini"
    ini.write_text(INI.format(address=address, port=port, layer=layer, crypt=crypt, tmp=tmp))
    return start_listening([XRDP, "--nodaemon", "--config", str(ini)], address, port)
