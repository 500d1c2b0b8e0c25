"""One place for each piece of knowledge, and every piece findable by its id."""

from pathlib import Path

import yaml

from scanner.assess.baseline import load_profile
from scanner.core.knowledge import knowledge
from scanner.engine.plugins import load_registry

ROOT = Path(__file__).resolve().parents[2]


def test_every_rule_reads_an_installed_check():
    reg = load_registry()
    assert reg.errors == {}
    missing = sorted({(r.id, r.check) for r in load_profile().rules if r.check not in reg.checks})
    assert missing == []


def test_every_check_lives_where_its_id_says():
    for c in load_registry().checks.values():
        family, _, name = c.meta.id.partition(".")
        path = ROOT / "checks" / family / (name.replace("-", "_").replace(".", "/") + ".py")
        assert path.is_file(), f"{c.meta.id}: expected {path.relative_to(ROOT)}"


def test_knowledge_tables_cite_their_source():
    for name, table in knowledge().items():
        assert str(table["source"]).strip(), name


def test_ground_truth_names_only_rules_of_the_default_profile():
    doc = yaml.safe_load((ROOT / "lab" / "expected-findings.yaml").read_text(encoding="utf-8"))
    rules = {r.id for r in load_profile().rules}
    unknown = sorted({e["rule"] for e in doc["expected"]} - rules)
    assert unknown == []
