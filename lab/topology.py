"""Load and validate lab/topology.yaml, the single description of the fake hospital."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scanner.core.vocab import ZONES

LAB_DIR = Path(__file__).resolve().parent
TOPOLOGY_FILE = LAB_DIR / "topology.yaml"
HOSTS_DIR = LAB_DIR / "hosts"

CLASSES = {"network-device", "server", "medical-device", "workstation", "unknown"}
FIREWALLS = {"", "nftables"}


class TopologyError(ValueError):
    """The topology file is malformed; the message names the offending entry."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    proto: str = "tcp"
    probe: str = "tcp"
    behaviour: str = ""      # hostile hosts only: how lab/hosts/_hostile/hostile_services.py misbehaves here

    def label(self) -> str:
        """`ssh/22`, or `snmp/161udp` for UDP services (the `lab status` format)."""
        return f"{self.name}/{self.port}" + ("udp" if self.proto == "udp" else "")


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    role: str
    klass: str
    zone: str
    owner: str
    criticality: int
    services: tuple[Service, ...]
    layers: tuple[str, ...] = ()
    absent_packages: tuple[str, ...] = ()
    backup_required: bool = False
    # plant id -> what was planted; lab/expected-findings.yaml names these ids
    plants: dict[str, str] = field(default_factory=dict)
    firewall: str = ""           # "nftables": the host's layer has etc/nftables.conf, loaded at start
    # A fault-injection host (docs/lab.md "Hostile hosts"): outside the hospital's ground truth; what the scan
    # must record of it is `hostile_attempts` in lab/expected-findings.yaml.
    hostile: bool = False
    flap: dict[str, float] = field(default_factory=dict)   # {first_up, up, down} s: its address comes and goes
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fragile(self) -> bool:
        # Medical devices get the scanner's safe mode.
        return self.klass == "medical-device"

    @property
    def netns(self) -> str:
        return f"lab-{self.name}"

    @property
    def veth(self) -> str:
        return f"vh-{self.name}"


@dataclass(frozen=True)
class Topology:
    subnet: str
    bridge: str
    gateway: str
    state_dir: Path
    data_dir: Path
    cache_dir: Path
    mirror: str
    packages: tuple[str, ...]
    pip_packages: tuple[str, ...]
    credentials: dict[str, Any]
    ca_file: str
    hosts: tuple[Host, ...]

    @property
    def hospital(self) -> tuple[Host, ...]:
        """The fake hospital: every host but the hostile (fault-injection) ones."""
        return tuple(h for h in self.hosts if not h.hostile)

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


_HOST_KEYS = {"name", "address", "role", "class", "zone", "owner", "criticality", "services",
              "layers", "absent_packages", "backup_required", "plants", "firewall", "fragile", "hostile", "flap"}
FLAP_KEYS = ("first_up", "up", "down")


def _plants(host: str, raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise TopologyError(f"host {host}: plants must be a mapping of plant id to description")
    for pid, text in raw.items():
        if not isinstance(pid, str) or not pid or not all(c.isalnum() or c == "-" for c in pid) \
                or not isinstance(text, str) or not text.strip():
            raise TopologyError(f"host {host}: bad plant {pid!r} (an id of [a-z0-9-] and a description)")
    return dict(raw)


def _flap(host: str, raw: Any) -> dict[str, float]:
    if not raw:
        return {}
    try:
        flap = {k: float(raw[k]) for k in FLAP_KEYS}
    except (KeyError, TypeError, ValueError):
        raise TopologyError(f"host {host}: flap needs {', '.join(FLAP_KEYS)} in seconds") from None
    if set(raw) != set(FLAP_KEYS) or not all(v > 0 for v in flap.values()):
        raise TopologyError(f"host {host}: flap needs exactly {', '.join(FLAP_KEYS)}, each > 0 s")
    return flap


def _service(host: str, raw: dict[str, Any]) -> Service:
    try:
        svc = Service(name=str(raw["name"]), port=int(raw["port"]), proto=str(raw.get("proto", "tcp")),
                      probe=str(raw.get("probe", "tcp")), behaviour=str(raw.get("behaviour") or ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise TopologyError(f"host {host}: bad service entry {raw!r}") from exc
    if svc.proto not in {"tcp", "udp"} or not 0 < svc.port < 65536:
        raise TopologyError(f"host {host}: bad service {raw!r}")
    return svc


def _host(raw: dict[str, Any], net: ipaddress.IPv4Network, gateway: str) -> Host:
    name = str(raw.get("name", ""))
    # veth names are limited to 15 bytes by the kernel: "vh-" + name.
    if not name or len(name) > 12 or not all(c.isalnum() or c == "-" for c in name):
        raise TopologyError(f"bad host name {name!r} (1-12 chars, [a-z0-9-])")
    try:
        addr = ipaddress.IPv4Address(raw["address"])
    except (KeyError, ValueError) as exc:
        raise TopologyError(f"host {name}: bad address") from exc
    if addr not in net or str(addr) == gateway or addr in (net.network_address, net.broadcast_address):
        raise TopologyError(f"host {name}: address {addr} not usable in {net}")
    klass = raw.get("class")
    if klass not in CLASSES:
        raise TopologyError(f"host {name}: class {klass!r} not one of {sorted(CLASSES)}")
    zone = raw.get("zone")
    if zone not in ZONES:
        raise TopologyError(f"host {name}: zone {zone!r} not one of {', '.join(ZONES)}")
    crit = int(raw.get("criticality", 3))
    if not 1 <= crit <= 5:
        raise TopologyError(f"host {name}: criticality {crit} not in 1-5")
    services = tuple(_service(name, s) for s in raw.get("services") or [])
    if not any(s.name == "ssh" and s.port == 22 for s in services):
        raise TopologyError(f"host {name}: every host runs sshd on 22")
    firewall = str(raw.get("firewall") or "")
    if firewall not in FIREWALLS:
        raise TopologyError(f"host {name}: firewall {firewall!r} not one of {sorted(FIREWALLS)}")
    hostile = raw.get("hostile", False) is True
    if not hostile and (raw.get("flap") or any(s.behaviour for s in services)):
        raise TopologyError(f"host {name}: a behaviour or flap on a host without `hostile: true`")
    flap = _flap(name, raw.get("flap"))
    return Host(
        name=name, address=str(addr), role=str(raw.get("role", "")), klass=klass, zone=zone,
        owner=str(raw.get("owner", "")), criticality=crit, services=services,
        layers=tuple(raw.get("layers") or ()), absent_packages=tuple(raw.get("absent_packages") or ()),
        backup_required=bool(raw.get("backup_required", False)),
        plants=_plants(name, raw.get("plants")), firewall=firewall, hostile=hostile, flap=flap,
        extra={k: v for k, v in raw.items() if k not in _HOST_KEYS},
    )


def parse(data: dict[str, Any]) -> Topology:
    try:
        net = ipaddress.IPv4Network(data["subnet"])
        gateway = str(ipaddress.IPv4Address(data["gateway"]))
    except (KeyError, ValueError) as exc:
        raise TopologyError("subnet/gateway missing or malformed") from exc
    hosts = tuple(_host(h, net, gateway) for h in data.get("hosts") or [])
    for attr in ("name", "address"):
        seen = [getattr(h, attr) for h in hosts]
        dup = {v for v in seen if seen.count(v) > 1}
        if dup:
            raise TopologyError(f"duplicate host {attr}: {sorted(dup)}")
    bridge = str(data.get("bridge", ""))
    if not bridge or len(bridge) > 15:
        raise TopologyError("bridge name missing or longer than 15 chars")
    return Topology(
        subnet=str(net), bridge=bridge, gateway=gateway,
        state_dir=Path(data["state_dir"]), data_dir=Path(data["data_dir"]),
        cache_dir=Path(data["cache_dir"]), mirror=str(data["mirror"]),
        packages=tuple(data.get("packages") or ()), pip_packages=tuple(data.get("pip_packages") or ()),
        credentials=dict(data.get("credentials") or {}), ca_file=str(data.get("ca_file", "")),
        hosts=hosts,
    )


def load(path: Path = TOPOLOGY_FILE) -> Topology:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TopologyError(f"cannot read topology {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise TopologyError(f"topology {path} is not a mapping")
    return parse(data)
