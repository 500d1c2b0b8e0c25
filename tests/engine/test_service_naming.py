"""Discovery names services with our own greeting read first and nmap -sV only for the rest, on nmap's own
probe table with bounded waits (scanner/engine/discovery.py). Real daemons on loopback: OpenSSH, OpenSSL's
s_server, a telnet negotiation."""

import os
import stat
from pathlib import Path

import pytest

from scanner.engine import discovery
from tests.loopback import Listener, pick_port, start_sshd, start_tls, stop_process

ADDRESS = "127.0.0.64"
TELNET_NEGOTIATION = b"\xff\xfb\x01\xff\xfb\x03\xff\xfd\x18"      # WILL ECHO, WILL SGA, DO TERMINAL-TYPE: no newline


def _table(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if not ln.startswith(("totalwaitms ", "tcpwrappedms "))]


def test_the_bounded_probe_table_is_nmaps_own_with_short_waits() -> None:
    option = discovery.versiondb_option()
    assert option.startswith("--versiondb ") and option.endswith(" ")
    path = Path(option.split()[1])
    ours = path.read_text(encoding="latin-1")
    theirs = discovery.NMAP_SERVICE_PROBES.read_text(encoding="latin-1")
    assert _table(ours) == _table(theirs), "the same probes and matches, in the same order"
    lines = ours.splitlines()
    probes = [i for i, ln in enumerate(lines) if ln.startswith("Probe ")]
    assert len(probes) > 100
    assert all(lines[i + 1] == f"totalwaitms {discovery.VERSION_PROBE_WAIT_MS}" for i in probes)
    waits = [ln for ln in lines if ln.startswith(("totalwaitms ", "tcpwrappedms "))]
    assert waits.count(f"tcpwrappedms {discovery.VERSION_PROBE_WAIT_MS}") == 1
    assert len(waits) == len(probes) + 1
    # a private directory: nobody else can swap the table nmap will send from
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert path.parent.stat().st_uid == os.getuid()


@pytest.fixture
def daemons(tmp_path):
    ports = {"ssh": pick_port([ADDRESS], 22), "tls": pick_port([ADDRESS], 443)}
    procs = [start_sshd(tmp_path, ADDRESS, ports["ssh"]), start_tls(tmp_path, ADDRESS, ports["tls"])]
    telnet = Listener(ADDRESS, 23, TELNET_NEGOTIATION, hold=30)
    yield ports
    telnet.close()
    for p in procs:
        stop_process(p)


def test_our_naming_equals_nmaps_default_service_detection(daemons, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same name, product, version and tunnel as nmap -sV --version-light with its own waits, port by port;
    the telnet port is named by its greeting and nmap -sV is not asked for it."""
    asked: list[str] = []
    real = discovery._nmap_scan

    def spy(address: str, args: str) -> dict:
        asked.append(args)
        return real(address, args)

    monkeypatch.setattr(discovery, "_nmap_scan", spy)
    monkeypatch.setattr(discovery, "top_tcp_ports", lambda n=1000: [])
    monkeypatch.setattr(discovery, "hospital_ports", lambda: {"tcp": [23, daemons["ssh"], daemons["tls"]],
                                                               "udp": [], "no_version_probe": []})
    ours = {s.port: s for s in discovery.scan_services(ADDRESS, raw=False, fragile=False)}
    version_scan = [a for a in asked if "-sV" in a]
    assert len(version_scan) == 1 and "--versiondb " in version_scan[0]
    assert version_scan[0].split("-p T:")[1].split(",") == sorted(map(str, (daemons["ssh"], daemons["tls"])))

    telnet = ours[23]
    assert (telnet.name, telnet.source) == ("telnet", "probe")
    assert telnet.extrainfo == "banner: " + repr(TELNET_NEGOTIATION.decode("latin-1"))

    nmap = real(ADDRESS, f"-sT -sV --version-light -Pn -n -p T:{daemons['ssh']},{daemons['tls']}")
    for port in (daemons["ssh"], daemons["tls"]):
        theirs = nmap["tcp"][port]
        mine = ours[port]
        assert (mine.name, mine.product, mine.version, mine.extrainfo, mine.tunnel) == (
            theirs["name"], theirs["product"], theirs["version"], theirs["extrainfo"], theirs.get("tunnel", ""))
    assert ours[daemons["ssh"]].product == "OpenSSH" and ours[daemons["tls"]].tunnel == "ssl"
