"""Live hosts (scapy ARP / ICMP / TCP ping, or TCP connect without raw sockets), then ports and services
(nmap via python-nmap). Fragile assets only ever get TCP connects to known ports at a low rate."""

from __future__ import annotations

import atexit
import functools
import ipaddress
import shutil
import socket
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from scanner.core.errors import ScanFailed
from scanner.core.knowledge import knowledge
from scanner.core.models import Service
from scanner.sdk.probes import Identified, identify, identify_banner, tftp_answers

NMAP_SERVICES = Path("/usr/share/nmap/nmap-services")
NMAP_SERVICE_PROBES = Path("/usr/share/nmap/nmap-service-probes")
# How long nmap -sV waits for an answer to each of its probes. Its own table says 5-11 s per probe, sized for
# the internet; a service that stays silent then costs that for every probe in turn (a telnet server or an
# MLLP listener took 46 s). On a hospital LAN an answer comes in milliseconds or not at all.
VERSION_PROBE_WAIT_MS = 1000
PING_PORTS = (22, 80, 443, 445, 3389, 104, 2575)


@dataclass
class HostFacts:
    address: str
    alive: bool
    how: str = ""                    # arp | icmp | tcp-syn | tcp-connect | loopback | inventory
    mac: str = ""
    services: list[Service] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def privileged() -> bool:
    """Raw sockets need CAP_NET_RAW (root has it unless dropped); without them we fall back to connect scans."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        return True
    except OSError:
        return False


def nmap_binary() -> str:
    path = shutil.which("nmap")
    if not path:
        raise ScanFailed("nmap is not installed (apt-get install nmap)")
    return path


@functools.cache
def top_tcp_ports(n: int = 1000) -> list[int]:
    """nmap's own top-N TCP ports, read from its frequency table (what --top-ports uses)."""
    ranked: list[tuple[float, int]] = []
    try:
        for line in NMAP_SERVICES.read_text(encoding="latin-1").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1].endswith("/tcp") and not line.startswith("#"):
                ranked.append((float(parts[2]), int(parts[1].split("/")[0])))
    except OSError:
        return []
    return [p for _, p in sorted(ranked, reverse=True)[:n]]


def hospital_ports() -> dict[str, list[int]]:
    k = knowledge()["hospital_ports"]
    return {"tcp": list(k["tcp"]), "udp": list(k["udp"]), "no_version_probe": list(k["no_version_probe"])}


def _is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def _connect_ping(address: str, timeout: float = 1.0) -> bool:
    for port in PING_PORTS:
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return True
        except ConnectionRefusedError:
            return True          # a RST is an answer: the host is there
        except OSError:
            continue
    return False


def find_live_hosts(addresses: list[str], *, raw: bool, timeout: float = 2.0,
                    log: Callable[[str], None] = lambda _m: None) -> dict[str, HostFacts]:
    facts = {a: HostFacts(a, False) for a in addresses}
    for a in addresses:
        if _is_loopback(a):
            facts[a].alive, facts[a].how = True, "loopback"
    rest = [a for a in addresses if not facts[a].alive]
    if not rest:
        return facts
    if raw:
        try:
            _scapy_sweep(rest, facts, timeout, log)
        except OSError as e:
            log(f"raw-socket sweep failed ({e}): falling back to TCP connect ping")
            raw = False
    if not raw:
        rest = [a for a in rest if not facts[a].alive]
        with ThreadPoolExecutor(max_workers=16) as pool:
            for a, alive in zip(rest, pool.map(_connect_ping, rest), strict=True):
                if alive:
                    facts[a].alive, facts[a].how = True, "tcp-connect"
        # The kernel learnt on-link MACs during those connects: the do-not-touch MAC list needs them.
        macs = neighbour_macs()
        for a in rest:
            if facts[a].alive and not facts[a].mac:
                facts[a].mac = macs.get(a, "")
    return facts


def neighbour_macs(path: str = "/proc/net/arp") -> dict[str, str]:
    """IPv4 address -> MAC from the kernel's neighbour table (no packet sent)."""
    out: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[3] != "00:00:00:00:00:00":
            out[parts[0]] = parts[3].lower()
    return out


def _scapy_sweep(addresses: list[str], facts: dict[str, HostFacts], timeout: float,
                 log: Callable[[str], None]) -> None:
    v4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
    routes = on_link_routes()
    # (MAC, IPv4) of each attached interface that can ARP, read once: tun devices have no MAC
    own = {i: (interface_mac(i), interface_ipv4(i)) for i in {i for _net, i in routes}}
    local: dict[str, list[str]] = {}
    for a in v4:
        iface = next((i for net, i in routes if ipaddress.ip_address(a) in net), None)
        if iface and own[iface][0].strip("0:") and own[iface][1]:
            local.setdefault(iface, []).append(a)
    for iface, addrs in local.items():
        for address, mac in arp_sweep(iface, *own[iface], addrs).items():
            facts[address].alive, facts[address].how, facts[address].mac = True, "arp", mac
    # On a local segment ARP is authoritative (ICMP would need ARP too, one slow resolution per dead
    # address); ICMP echo and TCP SYN ping go only to routed addresses.
    on_segment = {a for addrs in local.values() for a in addrs}
    others = [a for a in v4 if not facts[a].alive and a not in on_segment]
    if others:
        import logging  # noqa: PLC0415

        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
        # scapy only here: importing it costs ≈ 2 s, more than the whole sweep of a local segment
        from scapy.all import ICMP, IP, TCP, conf, sr  # noqa: PLC0415

        conf.verb = 0
        answered, _ = sr(IP(dst=others) / ICMP(), timeout=timeout, retry=0)
        answered2, _ = sr(IP(dst=others) / TCP(dport=[22, 80, 443], flags="S"), timeout=timeout, retry=0)
        for _snd, rcv in [*answered, *answered2]:
            f = facts.get(rcv.src)
            if f and not f.alive:
                f.alive, f.how = True, "icmp" if rcv.haslayer(ICMP) else "tcp-syn"
    for a in addresses:
        if ipaddress.ip_address(a).version == 6 and not facts[a].alive and _connect_ping(a):
            facts[a].alive, facts[a].how = True, "tcp-connect"


# ARP sweep of a segment: every address asked at once, the silent ones asked again; an answer comes in
# milliseconds on a LAN (lab: < 1 ms), so three rounds of ARP_ROUND_WAIT make a dead /24 cost 1.5 s (nmap -sn:
# 1.7 s on the lab /24), and the sweep ends as soon as every address answered.
ARP_ROUNDS = 3
ARP_ROUND_WAIT = 0.5
ETH_P_ARP = 0x0806


def on_link_routes(path: str = "/proc/net/route") -> list[tuple[ipaddress.IPv4Network, str]]:
    """The kernel's IPv4 routes without a gateway (directly attached segments), most specific first."""
    routes = []
    try:
        lines = Path(path).read_text().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        f = line.split()
        if len(f) >= 8 and int(f[2], 16) == 0:           # Iface Destination Gateway Flags ... Mask
            dest, mask = (socket.inet_ntoa(int(x, 16).to_bytes(4, "little")) for x in (f[1], f[7]))
            routes.append((ipaddress.IPv4Network(f"{dest}/{mask}", strict=False), f[0]))
    return sorted(routes, key=lambda r: -r[0].prefixlen)


def interface_ipv4(iface: str) -> str:
    """The interface's (first) IPv4 address, "" when it has none (SIOCGIFADDR)."""
    import fcntl  # noqa: PLC0415
    import struct  # noqa: PLC0415

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))
        except OSError:
            return ""
    return socket.inet_ntoa(raw[20:24])


def interface_mac(iface: str) -> str:
    try:
        return Path(f"/sys/class/net/{iface}/address").read_text().strip()
    except OSError:
        return ""


def arp_sweep(iface: str, mac: str, ip: str, addresses: list[str]) -> dict[str, str]:
    """IPv4 address -> MAC of those on `iface`'s segment that answer an ARP request (RFC 826). A packet socket
    bound to ARP only: the kernel hands us ARP frames, nothing else; needs CAP_NET_RAW."""
    import select  # noqa: PLC0415
    import struct  # noqa: PLC0415
    import time  # noqa: PLC0415

    own = bytes.fromhex(mac.replace(":", ""))
    wanted = {socket.inet_aton(a): a for a in addresses}
    found: dict[str, str] = {}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((iface, ETH_P_ARP))
        for _round in range(ARP_ROUNDS):
            for packed, address in wanted.items():
                if address not in found:
                    sock.send(b"\xff" * 6 + own + struct.pack("!HHHBBH", ETH_P_ARP, 1, 0x0800, 6, 4, 1) + own
                              + socket.inet_aton(ip) + bytes(6) + packed)
            deadline = time.monotonic() + ARP_ROUND_WAIT
            while len(found) < len(wanted) and (left := deadline - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                frame = sock.recv(128)
                # Ethernet (14) + ARP: htype 1, ptype IPv4, opcode 2 (reply); sender MAC at 22, sender IP at 28
                if len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02":
                    address = wanted.get(frame[28:32])
                    if address and address not in found:
                        found[address] = frame[22:28].hex(":")
            if len(found) == len(wanted):
                break
    return found


def _nmap_scan(address: str, args: str) -> dict:
    import nmap  # python-nmap

    scanner = nmap.PortScanner(nmap_search_path=(nmap_binary(),))
    try:
        result = scanner.scan(hosts=address, arguments=args, sudo=False)
    except nmap.PortScannerError as e:
        raise ScanFailed(f"nmap failed on {address}: {str(e).strip().splitlines()[-1][:200]}") from None
    host = result.get("scan", {}).get(address, {})
    # python-nmap drops the service's tunnel attribute ("ssl"): read it from nmap's XML
    for proto, port, tunnel in _tunnels(scanner.get_nmap_last_output()):
        if port in host.get(proto, {}):
            host[proto][port]["tunnel"] = tunnel
    return host


def _tunnels(xml: str | bytes) -> list[tuple[str, int, str]]:
    import xml.etree.ElementTree as ET  # noqa: N817 - nmap's own, trusted output

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    out = []
    for port in root.iter("port"):
        svc = port.find("service")
        if svc is not None and svc.get("tunnel"):
            out.append((port.get("protocol", "tcp"), int(port.get("portid", "0")), svc.get("tunnel", "")))
    return out


def _services_from(host: dict, names: dict[int, str]) -> list[Service]:
    out = []
    for proto in ("tcp", "udp"):
        for port, p in sorted(host.get(proto, {}).items()):
            if p.get("state") not in ("open", "open|filtered") or (proto == "tcp" and p["state"] != "open"):
                continue
            if proto == "udp" and p["state"] != "open":
                continue
            name = p.get("name", "") or names.get(int(port), "")
            if int(port) in names and name in ("", "unknown", "tcpwrapped") or (
                    int(port) in names and p.get("product", "") == ""):
                name = names.get(int(port), name)
            out.append(Service(port=int(port), proto=proto, name=name, product=p.get("product", ""),
                               version=p.get("version", ""), extrainfo=p.get("extrainfo", ""),
                               tunnel=p.get("tunnel", ""), source="nmap"))
    return out


def _confirmed_udp(address: str, host: dict) -> list[Service]:
    """UDP ports nmap leaves open|filtered that our own probe can confirm: TFTP answers from a new port, which
    nmap does not match to its probe."""
    unsure = {int(p) for p, d in host.get("udp", {}).items() if d.get("state") == "open|filtered"}
    if 69 in unsure and tftp_answers(address, 69):
        return [Service(port=69, proto="udp", name="tftp", source="probe")]
    return []


def scan_services(address: str, *, raw: bool, fragile: bool, extra_tcp: list[int] | None = None,
                  hl7_ports: list[int] | None = None) -> list[Service]:
    """Open ports and services of one host. Two passes: find open ports fast, then -sV on those that
    are not DICOM/HL7 (nmap's probes take minutes there; our own checks identify them).
    `hl7_ports`: the inventory's `hl7: {ports: [...]}` for this host (fragile assets only: see declare_hl7)."""
    hp = hospital_ports()
    names = {int(k): v for k, v in knowledge()["hospital_ports"].get("names", {}).items()}
    if fragile:
        # Safe mode: connect scans only, one probe at a time at <= 10 packets/s, known ports only, no -sV.
        # --scan-delay 110ms, not 100: nmap's timer runs a few ms early (measured 98 ms spacing).
        ports = ",".join(map(str, sorted(set(hp["tcp"]) | set(extra_tcp or []) | set(hl7_ports or []))))
        host = _nmap_scan(address, f"-sT -Pn -n --max-rate 10 --max-parallelism 1 --scan-delay 110ms "
                                   f"--max-retries 1 -p T:{ports}")
        return declare_hl7(_services_from(host, names), hl7_ports or [])
    tcp = sorted(set(top_tcp_ports()) | set(hp["tcp"]) | set(extra_tcp or []))
    udp = None
    if raw and ipaddress.ip_address(address).version == 4 and not _is_loopback(address):
        # UDP beside the TCP work, not before it: nmap -sU waits out silent ports (≈ 1.3 s), TCP needs 0.2 s
        pool = ThreadPoolExecutor(max_workers=1)
        udp = pool.submit(_udp_services, address, hp["udp"], names)
        pool.shutdown(wait=False)
    host = _nmap_scan(address, f"{'-sS' if raw else '-sT'} -Pn -n -T4 --max-retries 1 --host-timeout 300s "
                               f"-p T:{','.join(map(str, tcp))}")
    services = _services_from(host, names)
    candidates = [s for s in services if s.proto == "tcp" and s.port not in hp["no_version_probe"]]
    greetings = read_greetings(address, [s.port for s in candidates])
    settled = settle_by_greeting(candidates, greetings)
    probe = [s.port for s in candidates if s.port not in settled]
    if probe:
        v = _nmap_scan(address, f"-sT -sV --version-light {versiondb_option()}-Pn -n -T4 --host-timeout 300s "
                                f"-p T:{','.join(map(str, probe))}")
        by_port = {(s.port, s.proto): s for s in _services_from(v, names)}
        services = [by_port.get((s.port, s.proto), s) for s in services]
    services = identify_medical(address, services, hp["no_version_probe"], greetings)
    return services + (udp.result() if udp else [])


def _udp_services(address: str, ports: list[int], names: dict[int, str]) -> list[Service]:
    host = _nmap_scan(address, f"-sU -Pn -n -T4 --max-retries 1 --host-timeout 300s "
                               f"-p U:{','.join(map(str, ports))}")
    return _services_from(host, names) + _confirmed_udp(address, host)


def read_greetings(address: str, ports: list[int]) -> dict[int, Identified | None]:
    """Our own probe first: what each server says on connect, named by banner_signatures.yaml (all ports at
    once, one connection each, nothing sent, at most probes.BANNER_WAIT)."""
    signatures = knowledge().get("banner_signatures", {}).get("signatures", [])
    if not ports:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(ports), MAX_GREETED_PORTS)) as pool:
        return dict(zip(ports, pool.map(lambda p: identify_banner(address, p, signatures), ports), strict=True))


def settle_by_greeting(services: list[Service], greetings: dict[int, Identified | None]) -> set[int]:
    """Name the services whose greeting settles them (banner_signatures.yaml `settles`: nmap -sV could add
    nothing the checks use, only wait out its other probes, as after a telnet negotiation); nmap -sV is not
    asked for those ports. Returns them."""
    settling = {sig["name"] for sig in knowledge().get("banner_signatures", {}).get("signatures", [])
                if sig.get("settles")}
    settled = set()
    for s in services:
        found = greetings.get(s.port)
        if s.proto == "tcp" and found and found.name in settling:
            s.name, s.product, s.version, s.extrainfo, s.source = (found.name, found.product, found.version,
                                                                    found.extrainfo, "probe")
            settled.add(s.port)
    return settled


MAX_GREETED_PORTS = 32     # threads per host for the greeting read (each waits at most probes.BANNER_WAIT)


@functools.cache
def versiondb_option() -> str:
    """`--versiondb FILE `: nmap's own probe table with every probe's wait set to VERSION_PROBE_WAIT_MS, written
    once per process into a private directory (removed at exit). Same probes, same matches, bounded waits."""
    try:
        table = NMAP_SERVICE_PROBES.read_text(encoding="latin-1")
    except OSError:
        return ""            # nmap finds its own table; only the waits stay nmap's
    lines = []
    for line in table.splitlines():
        if line.startswith(("totalwaitms ", "tcpwrappedms ")):
            continue
        lines.append(line)
        if line.startswith("Probe "):
            lines.append(f"totalwaitms {VERSION_PROBE_WAIT_MS}")
            if line.startswith("Probe TCP NULL "):
                lines.append(f"tcpwrappedms {VERSION_PROBE_WAIT_MS}")
    folder = tempfile.mkdtemp(prefix="tcmscan-nmap-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "nmap-service-probes"
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return f"--versiondb {path} "


UNIDENTIFIED = ("", "unknown", "tcpwrapped")


def declare_hl7(services: list[Service], hl7_ports: list[int]) -> list[Service]:
    """Fragile assets: no discovery probe is sent to them (their checks speak once), so a listener nmap cannot
    name (no -sV here) is tried as MLLP only where the inventory declares one: an open declared port is named
    hl7-mllp (source "inventory"), and hl7.mllp sends it its one harmless message. A name nmap's table gives a
    declared port (6665-6669 are "irc") gives way to the hospital's word."""
    for s in services:
        if s.proto == "tcp" and s.port in hl7_ports and s.name != "hl7-mllp":
            s.name, s.product, s.version, s.extrainfo, s.source = "hl7-mllp", "", "", "declared in the inventory", \
                "inventory"
    return services
MAX_PROBED_PORTS = 8       # each costs up to two short connections


def identify_medical(address: str, services: list[Service], no_version_probe: list[int],
                     greetings: dict[int, Identified | None] | None = None) -> list[Service]:
    """Our own DICOM/MLLP probes (scanner/sdk/probes.py) where nmap was not asked or could not tell, all ports
    of the host at once. `greetings`: what read_greetings already read (read here where it is missing).
    Not for fragile assets: their checks speak to them once, that is enough traffic."""
    todo = [s for s in services if s.proto == "tcp" and (s.port in no_version_probe or s.name in UNIDENTIFIED
                                                          or (s.source == "nmap" and not s.product))]
    todo = todo[:MAX_PROBED_PORTS]
    known = greetings or {}
    missing = [s.port for s in todo if s.port not in no_version_probe and s.port not in known]
    known = {**known, **read_greetings(address, missing)}
    if todo:
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            list(pool.map(lambda s: _identify_one(address, s, no_version_probe, known.get(s.port)), todo))
    return services


def _identify_one(address: str, s: Service, no_version_probe: list[int], greeting: Identified | None) -> None:
    found = None
    if s.port not in no_version_probe and (s.name in UNIDENTIFIED or not s.product):
        # a server that talks first names itself (nmap -sV can miss a slow one)
        found = greeting
        if found is None and s.name not in UNIDENTIFIED:
            return      # nmap's name stands; DICOM/MLLP probes only where nothing is known
    found = found or identify(address, s.port, expected=s.name)
    if found:
        s.name, s.product, s.version, s.extrainfo, s.source = (found.name, found.product, found.version,
                                                                found.extrainfo, "probe")
