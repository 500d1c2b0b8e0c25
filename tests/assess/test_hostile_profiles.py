"""A baseline or site profile is input from another department (issue 13): it must not hang the tool.

Each attack is a real site profile on disk that extends the built-in one, run through the real command:
`tcmscan baseline validate` and `tcmscan evaluate` against a scan stored in a real SQLite file (no network).
What can be seen in the text is refused at load, by both; what depends on the observation is stopped by the
evaluation budget. Either way: exit 2 and one line naming the rule and the file, never a hang and never a
silent "not assessed". The subprocess timeout is a guard against a hang, not the assertion of speed."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from scanner.assess.baseline import load_profile
from scanner.assess.expr import EVAL_BUDGET, ExprError, ExprRefused, evaluate
from scanner.core.knowledge import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES
from scanner.core.models import Asset, AttemptResult, Observation, Service, attempt_id
from scanner.engine.scan import evaluate_stored
from scanner.store import Store
from tests.helpers import tcmscan

GUARD = 30                   # seconds
SCAN = "s20261121-000000-beef"
ADDRESS = "10.0.0.5"
CREATED = "2026-11-21T00:00:00+00:00"
BANNER = "a" * 2000 + "!"    # what a device may answer: the input a backtracking regex chokes on


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A finished scan of one server with telnet open, as the engine stores it, judged by the built-in profile."""
    path = tmp_path / "t.db"
    store = Store(path)
    store.create_scan({
        "id": SCAN, "created": CREATED, "started": CREATED, "finished": CREATED, "status": "done", "phase": "done",
        "targets": [ADDRESS], "scope": [f"{ADDRESS}/32"], "exclude": [], "settings": {"vantage": "user"},
        "inventory": {}, "profile_id": "tcm-2024-l3", "profile_version": "x", "profile_sha256": "x",
        "tool_version": "test", "check_versions": {"ports.open": "1.0"}, "error": None})
    store.save_assets(SCAN, [Asset(ADDRESS, name="his", role="HIS", zone="server", criticality=5, cls="server",
                                   services=[Service(23, name="telnet")])])
    aid = attempt_id(SCAN, "ports.open", ADDRESS, 23)
    store.add_pending(SCAN, [(aid, "ports.open", "1.0", ADDRESS, 23)])
    data = {"port": 23, "proto": "tcp", "name": "telnet", "banner": BANNER, "product": "", "version": "",
            "tunnel": ""}
    store.record_attempt(SCAN, AttemptResult(aid, "ports.open", ADDRESS, 23, "completed", observations=[
        Observation("ports.open", ADDRESS, 23, "service", data)]), "1.0", CREATED)
    evaluate_stored(SCAN, store, load_profile(), now=CREATED)
    store.close()
    return path


def site_profile(tmp_path: Path, when: str, *, params: dict | None = None, top: str = "") -> Path:
    """A site profile inheriting the built-in one, with one rule of its own reading ports.open."""
    path = tmp_path / "site.yaml"
    # JSON strings and mappings are YAML flow scalars and mappings
    path.write_text(f"""id: hostile
version: "1"
title: {{zh: 敌意, en: hostile}}
inherits: tcm-2024-l3
{top}
rules:
  - id: hardening.hostile
    title: {{zh: 敌意, en: hostile}}
    basis: {{kind: proposed}}
    clauses: {{other: "a test"}}
    check: ports.open
    key: service
    when: {json.dumps(when)}
    params: {json.dumps(params or {})}
    severity: low
    remediation: {{zh: 无, en: none}}
""", encoding="utf-8")
    return path


def run(*args: str, db: Path | None = None) -> subprocess.CompletedProcess:
    return tcmscan(*args, db=db, timeout=GUARD)


def refused(p: subprocess.CompletedProcess, line: str) -> None:
    assert (p.returncode, p.stderr, p.stdout) == (2, f"tcmscan: {line}\n", "")


def verdicts(db: Path) -> list[tuple[str, str]]:
    store = Store(db)
    try:
        return sorted((r.rule_id, r.status) for r in store.rule_results(SCAN))
    finally:
        store.close()


# -- refused at load: `baseline validate` says so without a scan, and `evaluate` before judging anything ---------
LOAD = [
    pytest.param("matches('(a+)+$', data.banner)", {},
                 "regular expression '(a+)+$' repeats a part that itself repeats or alternates (catastrophic "
                 "backtracking); use a possessive repeat (a++) or an atomic group (?>...)", id="regex-nested-repeat"),
    pytest.param("matches(params.banner_re, data.banner)", {"banner_re": "^(a|aa)*$"},
                 "params.banner_re: regular expression '^(a|aa)*$' repeats a part that itself repeats or alternates "
                 "(catastrophic backtracking); use a possessive repeat (a++) or an atomic group (?>...)",
                 id="regex-from-params"),
    pytest.param("any(matches(p, data.banner) for p in params.banner_res)", {"banner_res": ["^ok", r"(\w+\s?)+$"]},
                 r"params.banner_res: regular expression '(\\w+\\s?)+$' repeats a part that itself repeats or "
                 "alternates (catastrophic backtracking); use a possessive repeat (a++) or an atomic group (?>...)",
                 id="regex-list-from-params"),
    pytest.param("matches('(?:(?:(?:a{100}){100}){100}){100}', data.banner)", {},
                 "regular expression '(?:(?:(?:a{100}){100}){100}){100}' stands for more than 10000 items once its "
                 "repeats are counted", id="regex-written-out"),
    pytest.param("len([[1 for a in 'x' * 5000] for b in 'x' * 5000]) > data.port", {},
                 f"over the evaluation budget of {EVAL_BUDGET} steps", id="nested-comprehensions-constant"),
    pytest.param("'%0999999999d' % 1 == data.banner", {},
                 "a '%' field width or precision over 100 (or '*') in '%0999999999d'", id="percent-format-width"),
    pytest.param("'%.999999999f' % 1.5 == data.banner", {},
                 "a '%' field width or precision over 100 (or '*') in '%.999999999f'", id="percent-format-precision"),
    pytest.param("'x' * 1000000000 == data.banner", {},
                 f"over the evaluation budget of {EVAL_BUDGET} steps", id="string-repetition-constant"),
    pytest.param("2 ** 10 ** 10 > data.port", {},
                 "Pow is not allowed in rule expressions: '2 ** 10 ** 10 > data.port'", id="power"),
    pytest.param("len(range(1000000000)) > data.port", {},
                 "unknown function 'range' in 'len(range(1000000000)) > data.port'", id="range"),
    pytest.param("int('9' * 4000) * int('9' * 4000) > data.port", {},
                 "a product of more than 128 bits", id="big-int-constant"),
    pytest.param("-" * 45 + "data.port > 0", {},
                 f"expression nests deeper than 40 levels: {'-' * 40!r}", id="deep-expression"),
]


@pytest.mark.parametrize("when,params,reason", LOAD)
def test_refused_at_load(tmp_path: Path, db: Path, when: str, params: dict, reason: str) -> None:
    site = site_profile(tmp_path, when, params=params)
    line = f"invalid baseline {site}: rule hardening.hostile: {reason}"
    before = verdicts(db)
    refused(run("baseline", "validate", str(site)), line)
    refused(run("evaluate", SCAN, "--profile", str(site), db=db), line)
    assert verdicts(db) == before


# -- stopped while evaluating: the cost depends on the observation; validate cannot know, evaluate stops -------
RUNTIME = [
    pytest.param("len([[[1 for a in data.banner] for b in data.banner] for c in data.banner]) > 0",
                 f"over the evaluation budget of {EVAL_BUDGET} steps", id="nested-comprehensions"),
    pytest.param("data.banner * 100000000 == ''", f"over the evaluation budget of {EVAL_BUDGET} steps",
                 id="string-repetition"),
    pytest.param("len([data.banner] * 100000000) > 0", f"over the evaluation budget of {EVAL_BUDGET} steps",
                 id="list-repetition"),
    pytest.param("len(str([data.banner for a in data.banner])) > 0",
                 f"over the evaluation budget of {EVAL_BUDGET} steps", id="str-of-shared-list"),
    pytest.param("'%*d' % (data.port * 1000000, 1) == ''",
                 "a '%' field width or precision over 100 (or '*') in '%*d'", id="percent-format-star"),
    pytest.param("data.port * 99999999999999999999999999999999999999999 > 0", "a product of more than 128 bits",
                 id="big-int"),
    # passes the load-time check (each repeat is bounded) yet backtracks 16^16 ways: the match's time limit
    pytest.param("matches('((a|aa){1,16}){1,16}$', data.banner)",
                 "regular expression '((a|aa){1,16}){1,16}$' ran longer than 0.5 s", id="regex-timeout"),
]


@pytest.mark.parametrize("when,reason", RUNTIME)
def test_stopped_by_the_budget_not_called_not_assessed(tmp_path: Path, db: Path, when: str, reason: str) -> None:
    site = site_profile(tmp_path, when)
    p = run("baseline", "validate", str(site))
    assert (p.returncode, p.stdout.split(":")[0]) == (0, "hostile 1"), p.stderr
    before = verdicts(db)
    refused(run("evaluate", SCAN, "--profile", str(site), db=db),
            f"rule hardening.hostile ({site}): {reason}: {when[:60]!r}")
    assert verdicts(db) == before         # nothing stored: no "not assessed" verdict, the last judgement stands


def test_bytes_from_a_yaml_binary_param_are_bounded_as_strings(tmp_path: Path, db: Path) -> None:
    """YAML's !!binary makes bytes, which format and repeat as strings do."""
    fmt = base64.b64encode(b"%0999999999d").decode()
    for when, reason in (("params.fmt % 1 == data.banner",
                          "a '%' field width or precision over 100 (or '*') in '%0999999999d'"),
                         ("params.fmt * 100000000 == data.banner", f"over the evaluation budget of {EVAL_BUDGET} steps")):
        site = site_profile(tmp_path, when, top=f"params:\n  fmt: !!binary {fmt}")
        refused(run("evaluate", SCAN, "--profile", str(site), db=db),
                f"rule hardening.hostile ({site}): {reason}: {when!r}")


def test_the_same_rule_on_a_short_banner_is_judged(tmp_path: Path, db: Path) -> None:
    """The budget stops a cost, not a pattern of expression: the nested comprehension on a short field runs."""
    site = site_profile(tmp_path, "sum([len([1 for a in data.name]) for b in data.name]) == 36")
    p = run("evaluate", SCAN, "--profile", str(site), db=db)
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert ("hardening.hostile", "failed") in verdicts(db)


# -- YAML: alias bombs, self-reference, deep nesting, size: refused before anything walks the document -------------
def laughs(levels: int) -> str:
    lines = ["  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "params:\n" + "\n".join(lines)


YAML = [
    pytest.param(laughs(9), f"its aliases expand to more than {MAX_YAML_NODES} nodes", ": ", id="billion-laughs"),
    pytest.param("params:\n  loop: &loop [1, *loop]", "an alias refers to a node that contains it", ": ",
                 id="recursive-alias"),
    pytest.param("params:\n  deep: " + "[" * 500 + "]" * 500,   # libyaml accepts it; walking it overflowed the stack
                 f"nests deeper than {MAX_YAML_DEPTH} levels", " ", id="deep-nesting"),
    pytest.param("# " + "x" * MAX_YAML_BYTES, f"is larger than {MAX_YAML_BYTES // 2**20} MiB", " ", id="too-large"),
]


@pytest.mark.parametrize("top,reason,sep", YAML)
def test_yaml_refused_before_it_is_built(tmp_path: Path, db: Path, top: str, reason: str, sep: str) -> None:
    site = site_profile(tmp_path, "data.port == 23", top=top)
    line = f"baseline profile {site}{sep}{reason}"
    refused(run("baseline", "validate", str(site)), line)
    refused(run("evaluate", SCAN, "--profile", str(site), db=db), line)
    # a scan validates its profile before any packet leaves (nothing is sent: the profile stops it first)
    refused(run("scan", "127.0.0.1", "--scope", "127.0.0.1/32", "--profile", str(site), "--quiet",
                db=tmp_path / "scan.db"), line)


def test_an_inventory_alias_bomb_is_refused(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(laughs(9) + "\nassets: []\n", encoding="utf-8")
    refused(run("scan", "127.0.0.1", "--scope", "127.0.0.1/32", "--inventory", str(inv), "--quiet",
                db=tmp_path / "scan.db"),
            f"inventory {inv}: its aliases expand to more than {MAX_YAML_NODES} nodes")


def test_a_built_in_size_of_aliases_still_loads(tmp_path: Path) -> None:
    """Aliases as such are fine: a site profile sharing a list between params expands within the cap."""
    site = site_profile(tmp_path, "data.port in params.ports", params={"ports": [23, 2323]},
                        top="params:\n  common: &common [a, b]\n  again: *common")
    p = run("baseline", "validate", str(site))
    assert (p.returncode, p.stdout.split(":")[0], p.stderr) == (0, "hostile 1", "")


# -- the evaluator's own accounting, for what the command-line cases above do not reach ---------------------------
@pytest.mark.parametrize("text", [
    "len(sorted([big for _ in big])) > 0",             # sorting 2,000 references to one 2,000-item list
    "max([big for _ in big]) == big",
    "len([len(str(big)) for _ in big]) > 0",            # printing a long list again and again
])
def test_work_hidden_inside_a_function_is_counted(text: str) -> None:
    with pytest.raises(ExprRefused, match=f"over the evaluation budget of {EVAL_BUDGET} steps"):
        evaluate(text, {"big": list(range(2000))})


def test_sum_adds_numbers_only() -> None:
    """sum(lists, []) copies quadratically; with one argument it adds numbers and nothing else."""
    assert evaluate("sum([1, 2, 3])", {}) == 6
    with pytest.raises(ExprError, match="TypeError"):
        evaluate("sum([[1], [2]], [])", {})
