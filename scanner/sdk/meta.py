"""A check's metadata: what it applies to, how intrusive it is, what it needs."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from scanner.core.vocab import ASSET_CLASSES, GRANULARITIES

CHECK_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$")


@dataclass(frozen=True)
class CheckMeta:
    id: str
    version: str
    title_zh: str
    title_en: str
    granularity: str = "service"            # "service": one attempt per matching port; "host": one per asset
    classes: tuple[str, ...] = ()           # asset classes it applies to; () = all
    services: tuple[str, ...] = ()          # service names (nmap/probe), e.g. ("ssh",); () with no ports = all
    ports: tuple[int, ...] = ()             # ports it applies to whatever the service name
    tls: bool = False                       # applies to any port nmap saw wrapped in TLS
    proto: str = "tcp"                      # "tcp", "udp" or "any"
    intrusive: bool = False                 # logs in, sends more than a handshake: never in safe mode
    # ... unless the asset's inventory entry sets this field to true (e.g. "default_credentials_allowed"):
    # the hospital's explicit permission to run this intrusive check on that fragile/medical asset.
    safe_mode_opt_in: str = ""
    needs_credentials: str = ""             # credential type it needs ("ssh"), "" for none
    capabilities: tuple[str, ...] = ()      # IEC TR 80001-2-2 capabilities it tests (TXCF, AUTH, ...)
    timeout: float = 30.0
    description: str = ""

    def __post_init__(self) -> None:
        if not CHECK_ID.match(self.id):
            raise ValueError(f"check id {self.id!r} must be dotted lower-case, e.g. 'tls.protocols'")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"check {self.id}: granularity must be one of {', '.join(GRANULARITIES)}")
        bad = set(self.classes) - set(ASSET_CLASSES)
        if bad:
            raise ValueError(f"check {self.id}: unknown asset classes {sorted(bad)}")

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["family"] = self.family
        return d
