"""One vocabulary (scanner/core/vocab.py), one label file (scanner/core/labels.yaml): every schema enum, CLI
choice, job validation and label is generated from them or pinned to them here."""

from __future__ import annotations

import ast
import copy
import json
import pickle
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from scanner.core import vocab
from scanner.core.labels import KINDS, LABELS_FILE, label, labels_of
from scanner.core.models import Asset, AttemptSpec
from scanner.sdk.errors import CheckError
from tests.helpers import ROOT

# -- JSON-schema enums ---------------------------------------------------------------------------------------
SCHEMAS = sorted((ROOT / "reports" / "schema").glob("report*.json")) + sorted(
    (ROOT / "baselines" / "schema").glob("*.json"))
# Enums that are not vocabulary words, by property name: what each one is, and where it is decided.
NOT_VOCABULARY = {
    "grade": ("A", "B", "C", "D", "E"),                                       # posture grade: grading.py
    "key": ("tcm2024", "gbt22239", "gbt39786", "gbt20984", "nmpa2022", "iec80001", "law", "other"),  # frameworks
    "propertyNames": ("tcm2024", "gbt22239", "gbt39786", "gbt20984", "nmpa2022", "iec80001", "law", "other"),
    "basis": ("seen", "reconstructed", "summary"),                            # a framework clause's basis
    "kind": ("seen", "proposed", "reconstructed"),                            # a rule's basis
}


def _enums(node: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list[str]]]:
    found = []
    if isinstance(node, dict):
        if "enum" in node:
            found.append((path, node["enum"]))
        for k, v in node.items():
            found += _enums(v, (*path, k))
    elif isinstance(node, list):
        for v in node:
            found += _enums(v, path)
    return found


def _vocabulary_for(path: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """The vocabulary tuple an enum at `path` must equal (True) or be part of (False)."""
    names = [p for p in path if p not in ("properties", "items", "$defs", "additionalProperties")]
    prop = names[-1]
    if prop in ("severity",):
        return vocab.SEVERITIES, True
    if prop in ("vantage", "zone", "zones"):
        return vocab.ZONES, True
    if prop in ("classes", "class"):
        return vocab.ASSET_CLASSES, True
    if prop == "status" and "attempts" in names:
        return vocab.ATTEMPT_STATUSES, False          # the attempts a report lists as not completed
    if prop == "status" and "finding" in names:
        return vocab.FINDING_STATUSES, True
    if prop in ("verdict", "verdicts", "counts"):
        return vocab.VERDICTS, True
    if prop in NOT_VOCABULARY:
        return NOT_VOCABULARY[prop], True
    raise AssertionError(f"enum at {'/'.join(path)}: map it to a vocabulary tuple (or NOT_VOCABULARY) here")


def test_schemas_are_found():
    assert [p.relative_to(ROOT).as_posix() for p in SCHEMAS] == [
        "reports/schema/report.schema.json", "baselines/schema/framework.schema.json",
        "baselines/schema/profile.schema.json", "baselines/schema/rule.schema.json"]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_every_schema_enum_is_the_vocabulary(schema):
    for path, enum in _enums(json.loads(schema.read_text(encoding="utf-8"))):
        words, exact = _vocabulary_for(path)
        values = [v for v in enum if v != ""]        # "" = not set (a rule row without a severity)
        if exact:
            assert values == list(words), ("/".join(path), enum)
        else:
            assert values and set(values) <= set(words), ("/".join(path), enum)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_rule_id_patterns_list_the_areas(schema):
    text = schema.read_text(encoding="utf-8")
    for group in re.findall(r'\^\(([a-z|]+)\)\\\\\.', text):
        assert tuple(group.split("|")) == vocab.AREAS


# -- labels ----------------------------------------------------------------------------------------------------
def test_labels_file_labels_every_word_in_both_languages_and_nothing_else():
    doc = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))
    assert sorted(doc) == sorted(KINDS)
    for kind, words in KINDS.items():
        assert list(doc[kind]) == list(words), kind
        for word in words:
            assert set(doc[kind][word]) == set(vocab.LANGS), (kind, word)
            assert all(isinstance(v, str) and v.strip() for v in doc[kind][word].values()), (kind, word)


def test_label_lookup():
    assert label("severity", "high", "zh") == "高危"
    assert label("severity", "high", "en") == "high"
    assert label("zone", "dmz", "zh") == "隔离区（DMZ）"
    assert labels_of("verdict", "not_assessed") == {"zh": "未评估", "en": "Not assessed"}
    assert label("zone", "moon", "zh") == "moon"                  # a word an old scan stored: shown as it is
    with pytest.raises(ValueError, match="unknown label kind 'colour'"):
        label("colour", "red", "zh")
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        label("severity", "high", "fr")


def test_report_and_notifications_say_the_same_severity_words():
    from reports.i18n import t
    from scanner.schedule.notify import SEVERITY_ZH

    assert {s: t(f"sev_{s}", "zh") for s in vocab.SEVERITIES} == SEVERITY_ZH == {
        "info": "信息", "low": "低危", "medium": "中危", "high": "高危", "critical": "严重"}
    assert [t(v, "en") for v in vocab.VERDICTS] == ["Passed", "Failed", "Waived", "Not assessed", "N/A"]
    assert [t(f"st_{s}", "zh") for s in vocab.FINDING_STATUSES] == ["未处置", "已豁免"]


def test_area_names_come_from_the_labels():
    from scanner.assess.grading import AREA_NAMES

    assert list(AREA_NAMES) == list(vocab.AREAS)
    assert AREA_NAMES["crypto"] == {"zh": "密码应用", "en": "Cryptography"}


# -- one place for each list -------------------------------------------------------------------------------
SOURCES = sorted(p for d in ("scanner", "reports") for p in (ROOT / d).rglob("*.py"))


def _literal_lists(path: Path) -> list[tuple[int, set[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            out.append((node.lineno, {e.value for e in node.elts}))
    return out


@pytest.mark.parametrize("name", [
    "AREAS", "ZONES", "VERDICTS", "ATTEMPT_STATUSES", "ATTEMPT_REASONS", "ASSET_CLASSES", "SEVERITIES",
])
def test_each_list_is_written_once_in_vocab(name):
    """A literal holding every word of a vocabulary tuple anywhere but vocab.py is a copy that will drift
    (a subset, such as the statuses of attempts that did not complete, is a choice, not a copy)."""
    words = set(getattr(vocab, name))
    where = [f"{p.relative_to(ROOT)}:{line}" for p in SOURCES for line, found in _literal_lists(p)
             if words <= found]
    assert where == [f"scanner/core/vocab.py:{_line_of(name)}"]


def _line_of(name: str) -> int:
    text = (ROOT / "scanner" / "core" / "vocab.py").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(text, 1) if line.startswith(f"{name} = "))


def test_exit_codes_are_defined_only_in_vocab():
    defined = []
    for p in SOURCES:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and any(
                    isinstance(t, ast.Name) and t.id.startswith("EXIT_") for t in node.targets):
                defined.append(f"{p.relative_to(ROOT)}:{node.targets[0].id}")
    assert defined == ["scanner/core/vocab.py:EXIT_OK", "scanner/core/vocab.py:EXIT_FINDINGS",
                       "scanner/core/vocab.py:EXIT_USAGE", "scanner/core/vocab.py:EXIT_SCAN_FAILED",
                       "scanner/core/vocab.py:EXIT_DELIVERY"]
    from reports.cli import EXIT_VERIFY_FAILED
    from scanner.schedule.run import EXIT_DELIVERY

    assert (EXIT_VERIFY_FAILED, EXIT_DELIVERY) == (vocab.EXIT_FINDINGS, 4)


def test_chart_verdicts_and_colours():
    from reports.charts import CHART_VERDICTS, VERDICT_COLOURS

    assert CHART_VERDICTS == ("passed", "failed", "waived", "not_assessed")
    assert list(VERDICT_COLOURS) == list(CHART_VERDICTS)


# -- choices and validation built from the vocabulary ------------------------------------------------------
def _choices(parser, *path: str) -> dict[str, tuple | list | None]:
    import argparse

    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return {a.dest: a.choices for a in parser._actions if a.option_strings}


def test_cli_choices_are_the_vocabulary():
    from scanner.cli.main import build_parser

    p = build_parser()
    scan = _choices(p, "scan")
    assert (tuple(scan["vantage"]), tuple(scan["fail_on"])) == (vocab.ZONES, vocab.SEVERITIES)
    assert tuple(_choices(p, "findings")["min_severity"]) == vocab.SEVERITIES
    assert tuple(_choices(p, "findings")["lang"]) == vocab.LANGS
    assert tuple(_choices(p, "attempts")["status"]) == vocab.ATTEMPT_STATUSES


def test_inventory_and_job_accept_every_zone(tmp_path):
    from scanner.engine.inventory import load_inventory
    from scanner.schedule.jobs import load_config

    inv = tmp_path / "inv.yaml"
    inv.write_text("assets:\n" + "".join(f"  - {{address: 10.0.0.{i}, zone: {z}}}\n"
                                         for i, z in enumerate(vocab.ZONES, 1)))
    assert [e.zone for e in load_inventory(str(inv)).entries.values()] == list(vocab.ZONES)
    cfg = tmp_path / "jobs.toml"
    cfg.write_text("".join(f'[[job]]\nname = "{z}"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24"]\n'
                           f'vantage = "{z}"\n' for z in vocab.ZONES))
    assert [j.vantage for j in load_config(cfg).jobs.values()] == list(vocab.ZONES)
    cfg.write_text('[[job]]\nname = "n"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24"]\nvantage = "moon"\n')
    with pytest.raises(Exception, match="field 'vantage': must be one of internet, dmz, user, server, "
                                        "management, clinical$"):
        load_config(cfg)


# -- CheckError reasons ----------------------------------------------------------------------------------------
def test_check_error_takes_every_reason_and_survives_copy_and_pickle():
    for reason in vocab.ATTEMPT_REASONS:
        e = CheckError(reason, "why")
        assert (e.reason, e.detail, str(e)) == (reason, "why", f"{reason}: why")
        for again in (copy.copy(e), pickle.loads(pickle.dumps(e))):
            assert (again.reason, again.detail, str(again)) == (reason, "why", f"{reason}: why")
    assert str(CheckError("timeout")) == "timeout"


def test_check_error_with_an_unknown_reason_is_a_bug_named_where_it_was_raised():
    here = sys._getframe().f_lineno
    with pytest.raises(ValueError) as e:
        CheckError("refused", "port closed")
    assert str(e.value) == ("CheckError reason 'refused' is not one of " + ", ".join(vocab.ATTEMPT_REASONS)
                            + f" (raised at test_vocab.py:{here + 2})")


def test_runner_records_an_unknown_reason_as_bug():
    from scanner.engine.plugins import Check, Registry
    from scanner.engine.runner import execute_attempt
    from scanner.sdk.context import RunEnv
    from scanner.sdk.meta import CheckMeta

    def run(ctx):
        raise CheckError("port-closed", "nothing listens")

    meta = CheckMeta(id="t.unknown", version="1", title_zh="t", title_en="t", granularity="host")
    registry = Registry(checks={"t.unknown": Check(meta, SimpleNamespace(run=run), "tests")})
    spec = AttemptSpec(scan_id="s", check_id="t.unknown", asset=Asset(address="127.0.0.1").to_dict())
    result = execute_attempt(spec, RunEnv(scope=["127.0.0.1/32"]), registry)
    assert (result.status, result.reason) == ("error", "bug")
    assert result.detail.startswith("ValueError: CheckError reason 'port-closed' is not one of connectivity, ")
    assert "(raised at test_vocab.py:" in result.detail
