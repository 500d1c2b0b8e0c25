"""Safe mode around clinical devices, proven on the wire.

Unit level (loopback): a device that slows down gets half the rate, one that stops answering is left alone
for the rest of the scan and the reason is recorded; the do-not-touch lists hold.

Lab level (`-m lab`): tcpdump on the lab bridge during a full scan (every installed check) of the medical
hosts with the lab inventory, then the capture is checked:

- "packet" = a TCP segment FROM the scanner TO the device that opens a connection (SYN) or carries
  application payload. Those are what the scanner decides to send; pure ACKs, FINs and RSTs are the
  kernel's bookkeeping of those connections (measured and printed too, not bounded).
- at most 10 such packets in any 1-second sliding window per device, and no two of them closer
  than 100 ms (a strict minimum spacing);
- at most 1 TCP connection open per device at any instant (open = from our SYN to the first FIN/RST);
- no UDP at all from the scanner to a medical device;
- no write operation: no C-STORE/C-GET/C-MOVE/N-SET/N-CREATE/N-DELETE/N-ACTION request in any DICOM
  P-DATA-TF, and no HL7 message other than our ACK (so no ORM/ORU/ADT/...).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from scanner.core.scope import in_scope
from scanner.engine.targets import build_target_set
from scanner.sdk.context import RunEnv
from tests.checks.test_hl7_mllp import MllpPeer, attempt
from tests.helpers import expected, scan, tcmscan, triples

MEDICAL = {"pacs": "10.77.0.20", "modality": "10.77.0.21", "hl7": "10.77.0.22", "pump": "10.77.0.23"}
SCANNER = "10.77.0.1"
RATE = 10
WRITE_COMMANDS = {0x0001: "C-STORE-RQ", 0x0010: "C-GET-RQ", 0x0021: "C-MOVE-RQ", 0x0120: "N-SET-RQ",
                  0x0140: "N-CREATE-RQ", 0x0150: "N-DELETE-RQ", 0x0130: "N-ACTION-RQ"}


# ------------------------------------------------------------------------------------------------ unit level

def test_backoff_then_stop_on_loopback() -> None:
    """An HL7 device answers fast, then slowly (rate halved), then not at all (stopped, reason kept)."""
    address = "127.77.7.40"
    peer = MllpPeer(address, 2575, "slow", delays=[0.01, 0.01, 0.4])
    env = RunEnv(scope=[f"{address}/32"])
    try:
        for _ in range(3):
            r, _ = attempt(address, timeout=5, env=env)
            assert r.status == "completed", r.detail
        g = env.guards[address]
        assert g.interval == pytest.approx(0.2)           # 10/s halved to 5/s
        assert len(g.events) == 1 and g.events[0].startswith("hl7 response time ")
        assert g.events[0].endswith("rate halved to 5.00/s")
        peer.mode = "silent"                              # the device stops answering
        for _ in range(3):
            r, _ = attempt(address, timeout=2, env=env)
            assert (r.status, r.observations[0].data["answered"]) == ("completed", False)
        assert g.stopped_reason == ("stopped answering after 3 failed exchanges (last: MLLP listener did not "
                                    "answer): not probed further")
        seen = len(peer.received)
        r, _ = attempt(address, timeout=2, env=env)       # later attempts never touch the device
        assert (r.status, r.reason, r.detail) == ("error", "device-stopped", g.stopped_reason)
        assert len(peer.received) == seen
        assert g.events[-1] == g.stopped_reason
    finally:
        peer.close()


def test_paced_sends_on_fragile_device() -> None:
    """Safe mode paces every payload send, not only connects: 6 exchanges take >= 0.5 s at 10/s."""
    address = "127.77.7.41"
    peer = MllpPeer(address, 2575, "ack")
    env = RunEnv(scope=[f"{address}/32"])
    try:
        start = time.monotonic()
        for _ in range(3):    # 3 x (connect + one send) = 6 paced packets
            r, _ = attempt(address, timeout=5, env=env)
            assert r.status == "completed", r.detail
        assert time.monotonic() - start >= 0.5
    finally:
        peer.close()


def test_paced_packets_keep_a_strict_minimum_spacing(tmp_path: Path) -> None:
    """On the wire (tcpdump on lo): SYNs, TLS handshake flights (OpenSSL writes them itself) and payload sends
    to a fragile device are never closer than 1/RATE, over two TLS connections and five sends each."""
    if not shutil.which("tcpdump") or os.geteuid() != 0:
        pytest.skip("needs root and tcpdump")
    import ssl

    from scanner.core.models import Asset, Service
    from scanner.sdk.context import CheckContext
    from scanner.sdk.paced_tls import PacedTLSSocket
    from tests.loopback import start_tls, stop_process

    address = "127.77.9.10"
    server = start_tls(tmp_path, address, 8443)
    pcap = tmp_path / "paced.pcap"
    dump = capture("lo", [address], pcap)
    try:
        asset = Asset(address=address, cls="medical-device", fragile=True, services=[Service(8443, name="https")])
        env = RunEnv(scope=["127.77.9.0/24"])
        tctx = ssl.create_default_context()
        tctx.check_hostname, tctx.verify_mode = False, ssl.CERT_NONE
        for _ in range(2):
            ctx = CheckContext(asset=asset, service=asset.services[0], check_id="t.t", env=env, timeout=30,
                               safe_mode=True)
            tls = ctx.wrap_tls(ctx.connect(), tctx)
            assert isinstance(tls, PacedTLSSocket)
            for _ in range(5):
                tls.sendall(b"X-Probe: 1\r\n")
            ctx.close_all()
    finally:
        stop_capture(dump)
        stop_process(server)
    report = analyse(pcap, "127.0.0.1", {"device": address})["devices"]["device"]
    # per connection: SYN, ClientHello, client Finished (TLS 1.3), five sends
    assert report["scanner_packets"] == 16, report
    assert report["min_gap_s"] >= 1 / RATE, report


def test_concurrent_sends_keep_the_spacing() -> None:
    """Four threads sending to one device: each send starts at least 1/RATE after the previous one ended (a
    send is stamped when it starts and when it ends, inside the paced call)."""
    import threading

    from scanner.sdk.context import HostGuard

    guard = HostGuard("127.77.9.12", RATE)
    spans: list[tuple[float, float]] = []

    def send() -> None:
        start = time.monotonic()
        time.sleep(0.003)                      # a send takes a moment
        spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=lambda: [guard.paced(send) for _ in range(4)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans.sort()
    assert len(spans) == 16
    assert min(b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)) >= 1 / RATE


def test_do_not_touch_addresses() -> None:
    ts = build_target_set(["127.77.7.0/29"], ["127.77.7.0/24"], ["127.77.7.3", "127.77.7.4/31"])
    assert ts.excluded == ["127.77.7.3", "127.77.7.4", "127.77.7.5"]
    assert "127.77.7.3" not in ts.addresses and "127.77.7.2" in ts.addresses
    assert not in_scope("127.77.7.4", ["127.77.7.0/24"], ["127.77.7.4/31"])


def test_do_not_touch_cli_no_packet(tmp_path: Path) -> None:
    """An excluded device is never connected to, even when it is the only target left."""
    peer = MllpPeer("127.77.7.42", 2575, "ack")
    try:
        p = tcmscan("scan", "127.77.7.42", "127.77.7.43", "--scope", "127.77.7.0/24", "--exclude", "127.77.7.42",
                    "--checks", "hl7", "--quiet", db=tmp_path / "s.db", check=True)
        assert p.returncode == 0     # nothing left to scan answers: no finding
    finally:
        peer.close()
    assert peer.received == []


# ------------------------------------------------------------------------------------------------ lab level

def _segments(pcap: Path):
    from scapy.all import IP, TCP, UDP, PcapReader  # noqa: PLC0415

    with PcapReader(str(pcap)) as r:
        for pkt in r:
            if IP not in pkt:
                continue
            ip = pkt[IP]
            if TCP in pkt:
                t = pkt[TCP]
                yield float(pkt.time), ip.src, ip.dst, "tcp", t.sport, t.dport, str(t.flags), bytes(t.payload)
            elif UDP in pkt:
                yield float(pkt.time), ip.src, ip.dst, "udp", pkt[UDP].sport, pkt[UDP].dport, "", b""


def _dicom_commands(stream: bytes) -> list[int]:
    """CommandField values of every DIMSE command sent in a scanner->device DICOM byte stream."""
    out, i = [], 0
    while i + 6 <= len(stream):
        kind, _, n = struct.unpack(">BBI", stream[i:i + 6])
        body = stream[i + 6:i + 6 + n]
        i += 6 + n
        if kind != 4:
            continue
        j = 0
        while j + 6 <= len(body):
            (ln,) = struct.unpack(">I", body[j:j + 4])
            pdv, j = body[j + 4:j + 4 + ln], j + 4 + ln
            if len(pdv) < 2 or not pdv[1] & 1:        # not a command fragment
                continue
            k = 2
            while k + 8 <= len(pdv):
                group, elem, vl = struct.unpack("<HHI", pdv[k:k + 8])
                if (group, elem) == (0x0000, 0x0100):
                    out.append(struct.unpack("<H", pdv[k + 8:k + 10])[0])
                k += 8 + vl
    return out


def capture(iface: str, hosts: list[str], pcap: Path) -> subprocess.Popen:
    flt = " or ".join(f"host {a}" for a in hosts)
    p = subprocess.Popen(["tcpdump", "-i", iface, "-U", "-n", "-s", "0", "-w", str(pcap), flt],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return p


def stop_capture(p: subprocess.Popen) -> None:
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=10)


def analyse(pcap: Path, scanner: str, devices: dict[str, str]) -> dict:
    """Per device: worst 1-s window of scanner packets, all segments, max simultaneous connections;
    plus UDP seen, DICOM write commands and HL7 (message type, processing id) pairs sent."""
    addrs = set(devices.values())
    per_dev: dict[str, list[float]] = defaultdict(list)          # times of SYN/payload segments
    all_out: dict[str, int] = defaultdict(int)
    open_conns: dict[str, set[int]] = defaultdict(set)
    max_open: dict[str, int] = defaultdict(int)
    streams: dict[tuple[str, int, int], bytearray] = defaultdict(bytearray)
    udp: list[tuple[str, int]] = []
    for t, src, dst, proto, sport, dport, flags, payload in _segments(pcap):
        if src == scanner and dst in addrs:
            all_out[dst] += 1
            if proto == "udp":
                udp.append((dst, dport))
                continue
            if "S" in flags and "A" not in flags:
                per_dev[dst].append(t)
                open_conns[dst].add(sport)
                max_open[dst] = max(max_open[dst], len(open_conns[dst]))
            elif payload:
                per_dev[dst].append(t)
                streams[(dst, dport, sport)] += payload
            if "F" in flags or "R" in flags:
                open_conns[dst].discard(sport)
        elif dst == scanner and src in addrs and proto == "tcp" and ("F" in flags or "R" in flags):
            open_conns[src].discard(dport)

    def worst_window(times: list[float]) -> int:
        times, best, j = sorted(times), 0, 0
        for i in range(len(times)):
            while times[i] - times[j] >= 1.0:
                j += 1
            best = max(best, i - j + 1)
        return best

    writes: list[str] = []
    hl7: set[tuple[str, str]] = set()
    for (_dst, dport, _sport), data in streams.items():
        if dport in (104, 11112, 4242):
            writes += [WRITE_COMMANDS[c] for c in _dicom_commands(bytes(data)) if c in WRITE_COMMANDS]
        if dport == 2575:
            for frame in bytes(data).split(b"\x1c\x0d"):
                if b"MSH" in frame:
                    msh = frame[frame.index(b"MSH"):].split(b"\r")[0].split(b"|")
                    hl7.add((msh[8].decode(), msh[10].decode()))
    def min_gap(times: list[float]) -> float:
        times = sorted(times)
        return min((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))

    return {"devices": {name: {"scanner_packets_worst_1s": worst_window(per_dev[a]), "scanner_packets": len(per_dev[a]),
                               "min_gap_s": round(min_gap(per_dev[a]), 4),
                               "all_segments": all_out[a], "max_open": max_open[a]} for name, a in devices.items()},
            "udp": udp, "writes": writes, "hl7": hl7}


def assert_safe(report: dict, devices: dict[str, str]) -> None:
    d = report["devices"]
    print("safe-mode capture:", report)
    assert all(r["scanner_packets"] > 0 for r in d.values()), f"no traffic seen to some device: {d}"
    assert {n: r["scanner_packets_worst_1s"] <= RATE for n, r in d.items()} == {n: True for n in devices}, d
    # a strict minimum spacing, not only a ceiling per second: no two of our packets closer than 1/RATE
    assert {n: r["min_gap_s"] >= 1 / RATE for n, r in d.items()} == {n: True for n in devices}, d
    assert {n: r["max_open"] for n, r in d.items()} == {n: 1 for n in devices}, d
    assert report["udp"] == []
    assert report["writes"] == []
    assert report["hl7"] <= {("ACK", "T")}


@pytest.mark.slow
def test_full_scan_of_loopback_devices_is_safe(tmp_path: Path) -> None:
    """The same proof without the lab: real DICOM/MLLP servers on loopback, every installed check."""
    if not shutil.which("tcpdump") or os.geteuid() != 0:
        pytest.skip("needs root and tcpdump")
    from tests.checks.test_dicom_association import start_scp

    devices = {"pacs": "127.77.7.50", "modality": "127.77.7.51", "hl7": "127.77.7.52"}
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": a, "name": n, "role": {"pacs": "PACS", "modality": "modality", "hl7": "HL7-engine"}[n],
         "class": "medical-device", "zone": "clinical", "fragile": True} for n, a in devices.items()]}))
    servers = [start_scp(devices["pacs"], 104), start_scp(devices["modality"], 11112, old_identity=True)]
    peer = MllpPeer(devices["hl7"], 2575, "ack")
    pcap = tmp_path / "lo.pcap"
    dump = capture("lo", list(devices.values()), pcap)
    try:
        _sid, found = scan(list(devices.values()), scope=["127.77.7.0/24"], db=tmp_path / "s.db",
                           inventory=str(inv))
    finally:
        stop_capture(dump)
        for s in servers:
            s.shutdown()
        peer.close()
    assert_safe(analyse(pcap, "127.0.0.1", devices), devices)
    got = {(f["address"], f["rule_id"], f["port"]) for f in found if f["rule_id"].startswith("medical.")}
    assert got == {
        ("127.77.7.50", "medical.dicom.any-ae-title", 104), ("127.77.7.50", "medical.dicom.cfind-phi", 104),
        ("127.77.7.50", "medical.dicom.plaintext", 104),
        ("127.77.7.51", "medical.dicom.any-ae-title", 11112), ("127.77.7.51", "medical.dicom.cfind-phi", 11112),
        ("127.77.7.51", "medical.dicom.plaintext", 11112), ("127.77.7.51", "medical.dicom.vulnerable-version", 11112),
        ("127.77.7.52", "medical.hl7.unauthenticated-ack", 2575), ("127.77.7.52", "medical.hl7.plaintext", 2575),
    }


@pytest.mark.lab
@pytest.mark.slow
def test_full_scan_of_medical_hosts_is_safe(lab, tmp_path: Path) -> None:
    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump missing (apt-get install -y tcpdump)")
    pcap = tmp_path / "medical.pcap"
    dump = capture(lab["bridge"], list(MEDICAL.values()), pcap)
    try:
        _sid, found = scan(list(MEDICAL.values()), scope=[lab["subnet"]], db=tmp_path / "s.db",
                           inventory=lab["inventory"], credentials=lab["credentials"])
    finally:
        stop_capture(dump)
    assert_safe(analyse(pcap, SCANNER, MEDICAL), MEDICAL)
    # and the medical findings are the lab's ground truth. creds.default is intrusive: safe mode runs it on
    # the pump only because the lab's inventory opts in (default_credentials_allowed), so the default login
    # on its console is found.
    inv = yaml.safe_load(Path(lab["inventory"]).read_text(encoding="utf-8"))
    assert [a.get("default_credentials_allowed") for a in inv["assets"] if a.get("name") == "pump"] == [True]
    want = expected(("medical.",), hosts=tuple(MEDICAL))
    assert {x for x in triples(found, lab) if x[1].startswith("medical.")} == want


def test_tls_sends_stay_paced_on_a_fragile_device(tmp_path):
    """Wrapping a paced connection in TLS must not shed the pacing (http.probe, creds, hl7 over TLS)."""
    import ssl
    import time as _time

    from scanner.core.models import Asset, Service
    from scanner.sdk.context import CheckContext, RunEnv
    from scanner.sdk.paced_tls import PacedTLSSocket
    from tests.loopback import start_tls

    server = start_tls(tmp_path, "127.77.9.9", 8443)
    try:
        asset = Asset(address="127.77.9.9", cls="medical-device", fragile=True,
                      services=[Service(8443, name="https")])
        ctx = CheckContext(asset=asset, service=asset.services[0], check_id="t.t", env=RunEnv(scope=["127.0.0.0/8"]),
                           timeout=30, safe_mode=True)
        tctx = ssl.create_default_context()
        tctx.check_hostname, tctx.verify_mode = False, ssl.CERT_NONE
        tls = ctx.wrap_tls(ctx.connect(), tctx)
        assert isinstance(tls, PacedTLSSocket) and tls.guard is ctx.guard
        start = _time.monotonic()
        for _ in range(5):
            tls.sendall(b"GET / HTTP/1.0\r\n")
        assert _time.monotonic() - start >= 0.4          # 5 paced sends at 10/s
        ctx.close_all()
        assert tls.fileno() == -1
    finally:
        server.kill()
        server.wait()
