"""Compliance frameworks as data: one file per standard under baselines/frameworks/, listing clause id ->
{title, text, rules: [rule ids]} (as prowler keeps its compliance mappings), so a clause's wording lives in one
place instead of being copied into every rule that cites it. The profile loader turns them into each
Rule.clauses entry ({framework key: "clause id title：text"; several clauses joined with "；"})."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from scanner.core.errors import UsageError
from scanner.core.knowledge import BASELINES_DIR, read_yaml

FRAMEWORKS_DIR = BASELINES_DIR / "frameworks"
DEFAULT_CITE = "{id} {title}：{text}"
DEFAULT_CITE_NO_TEXT = "{id} {title}"
RECONSTRUCTED = "（编号为重构）"     # said in every citation whose sub-number is ours, not the standard's
JOIN = "；"


@dataclass(frozen=True)
class Clause:
    id: str
    title: dict[str, str]
    text: dict[str, str]
    basis: str
    rules: tuple[str, ...]
    cite: str


@dataclass(frozen=True)
class Framework:
    id: str
    key: str
    title: dict[str, str]
    source: str
    clauses: tuple[Clause, ...]
    path: str

    def citation(self, clause: Clause) -> str:
        """The clause as Rule.clauses shows it, e.g. "8.1.4.1 a 身份鉴别：应对登录的用户进行身份标识和鉴别…"."""
        fields = {"id": clause.id, "title": clause.title["zh"], "text": clause.text.get("zh", ""),
                  "title_en": clause.title.get("en", clause.title["zh"]),
                  "text_en": clause.text.get("en", clause.text.get("zh", ""))}
        out = clause.cite.format(**fields)
        return out + RECONSTRUCTED if clause.basis == "reconstructed" else out


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads((BASELINES_DIR / "schema" / "framework.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def load_framework(path: Path) -> Framework:
    doc = read_yaml(path, "framework file")
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        loc = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise UsageError(f"invalid framework {path}: at {loc}: {errors[0].message[:200]}")
    clauses = []
    for cid, c in doc["clauses"].items():
        cite = c.get("cite") or doc.get("cite") or (DEFAULT_CITE if c.get("text") else DEFAULT_CITE_NO_TEXT)
        try:
            cite.format(id="", title="", text="", title_en="", text_en="")
        except (KeyError, IndexError, ValueError) as e:
            raise UsageError(f"invalid framework {path}: clause {cid}: bad cite format {cite!r} ({e})") from None
        clauses.append(Clause(id=str(cid), title=c["title"], text=c.get("text", {}), basis=c["basis"],
                              rules=tuple(c["rules"]), cite=cite))
    return Framework(id=doc["id"], key=doc["key"], title=doc["title"], source=doc["source"],
                     clauses=tuple(clauses), path=str(path))


def load_frameworks(paths: list[Path]) -> list[Framework]:
    out: list[Framework] = []
    for p in paths:
        fw = load_framework(p)
        clash = next((f for f in out if f.key == fw.key or f.id == fw.id), None)
        if clash is not None:
            # two files filling one Rule.clauses key would make the citation depend on file order
            raise UsageError(f"invalid framework {p}: id {fw.id!r} / key {fw.key!r} already used by {clash.path}")
        out.append(fw)
    return out


def citations(frameworks: list[Framework]) -> dict[str, dict[str, str]]:
    """{rule id: {framework key: citation}}; a rule under several clauses of one framework gets them all,
    in the framework file's order."""
    out: dict[str, dict[str, list[str]]] = {}
    for fw in frameworks:
        for c in fw.clauses:
            for rid in c.rules:
                out.setdefault(rid, {}).setdefault(fw.key, []).append(fw.citation(c))
    return {rid: {k: JOIN.join(v) for k, v in by_key.items()} for rid, by_key in out.items()}


def unknown_rules(frameworks: list[Framework], rule_ids: set[str]) -> list[tuple[str, str, str]]:
    """(framework file, clause id, rule id) for every mapped rule id that is not a rule of the profile."""
    return [(fw.path, c.id, rid) for fw in frameworks for c in fw.clauses for rid in c.rules if rid not in rule_ids]


def framework_summary(fw: Framework) -> dict[str, Any]:
    """Plain data for `baseline show --json` style consumers and tests."""
    return {"id": fw.id, "key": fw.key, "title": fw.title, "source": fw.source,
            "clauses": {c.id: {"citation": fw.citation(c), "rules": list(c.rules)} for c in fw.clauses}}
