"""Plain data passed between the stages of a scan. Facts only; no behaviour beyond (de)serialising."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from scanner.core.vocab import ASSET_CLASSES, ATTEMPT_REASONS, ATTEMPT_STATUSES, SEVERITIES, severity_rank  # noqa: F401  (re-exported)


@dataclass
class Service:
    port: int
    proto: str = "tcp"
    name: str = ""          # nmap/our probe name: ssh, https, telnet, dicom, hl7-mllp, ...
    product: str = ""
    version: str = ""
    extrainfo: str = ""
    tunnel: str = ""        # "ssl" when nmap saw TLS
    source: str = "nmap"    # nmap | probe | connect | inventory

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Service:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Asset:
    address: str
    name: str = ""
    mac: str = ""
    cls: str = "unknown"
    class_evidence: list[str] = field(default_factory=list)
    role: str = ""
    zone: str = "user"
    criticality: int = 0     # 1-5 asset value; 0 = not declared (grading derives it from role)
    owner: str = ""
    fragile: bool = False    # safe mode: medical class or declared fragile
    internet_facing: bool = False
    services: list[Service] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)   # inventory fields we pass through (mds2, ...)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class"] = d.pop("cls")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Asset:
        d = dict(d)
        d["cls"] = d.pop("class", d.get("cls", "unknown"))
        d["services"] = [Service.from_dict(s) for s in d.get("services", [])]
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def service(self, port: int, proto: str = "tcp") -> Service | None:
        return next((s for s in self.services if s.port == port and s.proto == proto), None)


@dataclass
class Observation:
    """A fact a check saw. `key` names the kind of fact (a check may report several kinds)."""

    check_id: str
    address: str
    port: int | None
    key: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AttemptSpec:
    """One (check, asset, port) attempt: plain and serialisable so any executor can run it."""

    scan_id: str
    check_id: str
    asset: dict[str, Any]
    port: int | None = None
    proto: str = "tcp"
    timeout: float = 30.0
    safe_mode: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def attempt_id(self) -> str:
        return attempt_id(self.scan_id, self.check_id, self.asset["address"], self.port, self.proto)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def attempt_id(scan_id: str, check_id: str, address: str, port: int | None, proto: str = "tcp") -> str:
    return f"{scan_id}|{check_id}|{address}|{'' if port is None else f'{port}/{proto}'}"


@dataclass
class AttemptResult:
    attempt_id: str
    check_id: str
    address: str
    port: int | None
    status: str                       # completed | error | skipped | not_applicable
    reason: str = ""                  # one of ATTEMPT_REASONS when not completed
    detail: str = ""
    duration: float = 0.0
    observations: list[Observation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Finding:
    fingerprint: str
    rule_id: str
    check_id: str
    address: str
    port: int | None
    severity: str
    area: str
    title_zh: str
    title_en: str
    clauses: dict[str, str]
    evidence: dict[str, Any]
    evidence_key: str
    remediation: dict[str, str]
    basis: str = ""
    capability: str = ""
    status: str = "open"              # open | waived
    waiver: dict[str, Any] | None = None
    # GB/T 20984 figures fixed at evaluation (scanner/assess/grading.Risk.to_dict: A, T, V, L, F, R, level,
    # level_zh, level_en, inputs, formula, cell) so every reader shows the same numbers; None only for a
    # finding stored before schema 3, which readers grade on read (grading.stored_findings).
    risk: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RuleResult:
    """Verdict of one rule on one asset: passed | failed | waived | not_assessed | not_applicable."""

    rule_id: str
    address: str
    status: str
    reason: str = ""
