"""Baseline profiles: data under baselines/, validated by a JSON Schema at load, with inheritance."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from scanner.assess.expr import ExprError, check_regex, compile_expr, regex_params
from scanner.assess.frameworks import citations, load_frameworks, unknown_rules
from scanner.core.errors import UsageError
from scanner.core.knowledge import BASELINES_DIR, read_yaml

PROFILES_DIR = BASELINES_DIR / "profiles"
DEFAULT_PROFILE = "tcm-2024-l3"


@dataclass
class Rule:
    id: str
    title: dict[str, str]
    basis: dict[str, str]
    check: str
    when: str
    severity: str
    remediation: dict[str, str]
    # {framework key: citation}: from the profile's framework files (baselines/frameworks/), or inline
    clauses: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    evidence: dict[str, str] = field(default_factory=dict)
    evidence_key: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    applies_to: dict[str, Any] = field(default_factory=dict)
    capability: str = ""
    severity_by: list[dict[str, str]] = field(default_factory=list)   # [{when, severity}], first true wins
    description: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    source: str = ""

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "source"}
        return d


@dataclass
class Waiver:
    rule: str
    host: str
    owner: str
    reason: str
    expires: str
    port: int | None = None


@dataclass
class Profile:
    id: str
    version: str
    title: dict[str, str]
    rules: list[Rule]
    params: dict[str, Any]
    waivers: list[Waiver]
    sha256: str
    chain: list[str]        # this profile and the ones it inherits, nearest first

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    @property
    def enabled_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]


@functools.cache
def _schema(name: str) -> dict[str, Any]:
    return json.loads((BASELINES_DIR / "schema" / name).read_text(encoding="utf-8"))


def _validator(name: str) -> jsonschema.protocols.Validator:
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (_schema(n)["$id"], Resource.from_contents(_schema(n))) for n in ("rule.schema.json", "profile.schema.json"))
    registry = registry.with_resources(
        (n, Resource.from_contents(_schema(n))) for n in ("rule.schema.json", "profile.schema.json"))
    schema = _schema(name)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _validate(doc: Any, schema: str, where: str) -> None:
    errors = sorted(_validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        loc = "/".join(str(p) for p in e.absolute_path) or "(top)"
        raise UsageError(f"invalid baseline {where}: at {loc}: {e.message[:200]}")


def _expressions(raw: dict[str, Any]) -> list[str]:
    return [t for t in (raw["when"], raw.get("evidence_key", ""), *raw.get("evidence", {}).values(),
                        (raw.get("applies_to") or {}).get("when", ""), *(b["when"] for b in raw.get("severity_by", [])))
            if t]


def _compile(text: str, rule_id: str, where: str) -> None:
    try:
        compile_expr(text)
    except ExprError as e:
        raise UsageError(f"invalid baseline {where}: rule {rule_id}: {e}") from None


def _compile_rule(raw: dict[str, Any], where: str) -> Rule:
    for text in _expressions(raw):
        _compile(text, raw["id"], where)
    return Rule(**{k: copy.deepcopy(v) for k, v in raw.items()}, source=where)


def _check_regex_params(rule: Rule, params: dict[str, Any]) -> None:
    """Once overrides are applied, a pattern the rule reads from its params is checked as a literal one is:
    `baseline validate` refuses a catastrophic regular expression wherever it is written."""
    merged = {**params, **rule.params}
    for text in _expressions(rule.__dict__):
        for name in regex_params(text):
            value = merged.get(name)
            for pattern in value if isinstance(value, list) else [value]:
                try:
                    check_regex(pattern)
                except ExprError as e:
                    raise UsageError(f"invalid baseline {rule.source}: rule {rule.id}: params.{name}: {e}") from None


def _apply_frameworks(path: Path, patterns: list[str], rules: dict[str, Rule],
                      inline: set[tuple[str, str]]) -> None:
    """Fill Rule.clauses from the profile's framework files; an inline `clauses:` entry of a rule of this
    profile wins for its key. Every rule must end up citing something, and every mapped id must be a rule."""
    files: list[Path] = []
    for pattern in patterns:
        found = sorted(path.parent.glob(pattern))
        if not found:
            raise UsageError(f"invalid baseline {path}: frameworks pattern {pattern!r} matches nothing")
        files += [f.resolve() for f in found if f.resolve() not in files]
    frameworks = load_frameworks(files)
    unknown = unknown_rules(frameworks, set(rules))
    if unknown:
        where, clause, rid = unknown[0]
        raise UsageError(f"invalid framework {where}: clause {clause} maps unknown rule {rid}")
    for rid, by_key in citations(frameworks).items():
        for key, text in by_key.items():
            if (rid, key) not in inline:
                rules[rid].clauses[key] = text
    bare = sorted(rid for rid, r in rules.items() if not r.clauses)
    if bare:
        raise UsageError(f"invalid baseline {path}: rule {bare[0]} cites no clause "
                         "(map it in a framework file or give it clauses:)")


def resolve_profile_path(ref: str) -> Path:
    p = Path(ref)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if p.is_dir():
            p = p / "profile.yaml"
        if not p.is_file():
            raise UsageError(f"baseline profile file not found: {ref}")
        return p
    builtin = PROFILES_DIR / ref / "profile.yaml"
    if not builtin.is_file():
        known = ", ".join(list_profiles()) or "none"
        raise UsageError(f"unknown baseline profile {ref!r} (built-in: {known})")
    return builtin


def list_profiles() -> list[str]:
    return sorted(p.parent.name for p in PROFILES_DIR.glob("*/profile.yaml"))


def load_profile(ref: str = DEFAULT_PROFILE, _seen: tuple[str, ...] = ()) -> Profile:
    path = resolve_profile_path(ref)
    key = str(path.resolve())
    if key in _seen:
        raise UsageError(f"baseline profile {ref} inherits itself")
    doc = read_yaml(path, "baseline profile")
    _validate(doc, "profile.schema.json", str(path))

    if doc.get("inherits"):
        parent_ref = doc["inherits"]
        rel = path.parent / parent_ref
        parent = load_profile(str(rel) if rel.suffix in (".yaml", ".yml") else parent_ref, (*_seen, key))
        rules = {r.id: copy.deepcopy(r) for r in parent.rules}
        params = copy.deepcopy(parent.params)
        waivers = list(parent.waivers)
        chain = [doc["id"], *parent.chain]
    else:
        rules, params, waivers, chain = {}, {}, [], [doc["id"]]

    inherited = {rid: dict(r.clauses) for rid, r in rules.items()}
    raw_rules: list[tuple[dict[str, Any], str]] = [(r, str(path)) for r in doc.get("rules", [])]
    inline: set[tuple[str, str]] = set()    # (rule id, framework key) stated in the rule itself
    for pattern in doc.get("rule_files", []):
        files = sorted(path.parent.glob(pattern))
        if not files:
            raise UsageError(f"invalid baseline {path}: rule_files pattern {pattern!r} matches nothing")
        for f in files:
            content = read_yaml(f, "rule file")
            if content is None:
                continue
            if not isinstance(content, dict) or not isinstance(content.get("rules"), list):
                raise UsageError(f"invalid baseline {f}: expected a mapping with a list 'rules'")
            raw_rules += [(r, str(f)) for r in content["rules"]]
    for raw, where in raw_rules:
        _validate(raw, "rule.schema.json", f"{where} (rule {raw.get('id', '?') if isinstance(raw, dict) else '?'})")
        if raw["id"] in rules and where.startswith(str(path.parent)) and rules[raw["id"]].source.startswith(
                str(path.parent)):
            raise UsageError(f"invalid baseline {where}: duplicate rule id {raw['id']}")
        rules[raw["id"]] = _compile_rule(raw, where)
        if "clauses" not in raw:
            # a site rule replacing an inherited one keeps its citations unless it states its own
            rules[raw["id"]].clauses = dict(inherited.get(raw["id"], {}))
        else:
            inline.update((raw["id"], k) for k in raw["clauses"])
    _apply_frameworks(path, doc.get("frameworks", []), rules, inline)

    params.update(doc.get("params", {}))
    for rule_id, ov in doc.get("overrides", {}).items():
        if rule_id not in rules:
            raise UsageError(f"invalid baseline {path}: override for unknown rule {rule_id}")
        r = rules[rule_id]
        r.severity = ov.get("severity", r.severity)
        r.enabled = ov.get("enabled", r.enabled)
        r.params = {**r.params, **ov.get("params", {})}
        if "applies_to" in ov:
            r.applies_to = ov["applies_to"]
            if r.applies_to.get("when"):
                _compile(r.applies_to["when"], rule_id, str(path))
    waivers += [Waiver(**w) for w in doc.get("waivers", [])]
    for r in rules.values():
        _check_regex_params(r, params)

    ordered = sorted(rules.values(), key=lambda r: r.id)
    # default=str: YAML also makes dates and (!!binary) bytes, which a profile's params may hold
    canonical = json.dumps({"id": doc["id"], "version": doc["version"], "params": params,
                            "rules": [r.to_dict() for r in ordered]}, sort_keys=True, ensure_ascii=False, default=str)
    return Profile(id=doc["id"], version=str(doc["version"]), title=doc["title"], rules=ordered, params=params,
                   waivers=waivers, sha256=hashlib.sha256(canonical.encode()).hexdigest(), chain=chain)
