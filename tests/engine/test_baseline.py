import textwrap
from pathlib import Path

import pytest

from scanner.assess.baseline import DEFAULT_PROFILE, load_profile
from scanner.core.errors import UsageError


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_default_profile_loads_and_validates():
    p = load_profile(DEFAULT_PROFILE)
    assert p.id == "tcm-2024-l3" and p.chain == ["tcm-2024-l3"]
    ids = [r.id for r in p.rules]
    assert ids == sorted(set(ids))
    assert {"hardening.risky-port", "crypto.cleartext.telnet", "network.mgmt-interface-exposed"} <= set(ids)
    for r in p.rules:
        assert r.title["zh"] and r.title["en"] and r.remediation["zh"] and r.remediation["en"]
        assert r.basis["kind"] in ("seen", "proposed", "reconstructed")
        assert r.area in ("crypto", "hardening", "accounts", "audit", "backup", "medical", "data", "network")


def test_site_profile_inherits_and_overrides_thresholds(tmp_path):
    site = write(tmp_path, "site.yaml", """
        id: site-hospital-a
        version: "1"
        title: {zh: 某中医院, en: Hospital A}
        inherits: tcm-2024-l3
        overrides:
          hardening.risky-port: {severity: high, params: {exposed_vantages: [internet]}}
          crypto.cleartext.rlogin: {enabled: false}
        waivers:
          - {rule: crypto.cleartext.telnet, host: 10.0.0.5, owner: 信息科, reason: legacy PLC, expires: "2099-01-01"}
    """)
    base = load_profile(DEFAULT_PROFILE)
    p = load_profile(str(site))
    assert p.chain == ["site-hospital-a", "tcm-2024-l3"]
    r = p.rule("hardening.risky-port")
    assert r.severity == "high" and r.params["exposed_vantages"] == ["internet"]
    assert base.rule("hardening.risky-port").severity == "medium"   # the parent is untouched
    assert not p.rule("crypto.cleartext.rlogin").enabled
    assert [w.owner for w in p.waivers] == ["信息科"]
    assert p.sha256 != base.sha256


@pytest.mark.parametrize("body,msg", [
    ("id: x\nversion: '1'\ntitle: {zh: a, en: b}\nrules: [{id: crypto.x}]\n", "required property"),
    ("id: x\nversion: '1'\ntitle: {zh: a, en: b}\nrules:\n - {id: crypto.x, title: {zh: a, en: b}, clauses: {gbt22239: x},"
     " basis: {kind: seen}, check: a.b, when: 'data.x ==', severity: high, remediation: {zh: a, en: b}}\n",
     "syntax error"),
    ("id: x\nversion: '1'\ntitle: {zh: a, en: b}\nrules:\n - {id: bogus.x, title: {zh: a, en: b}, clauses: {gbt22239: x},"
     " basis: {kind: seen}, check: a.b, when: 'True', severity: high, remediation: {zh: a, en: b}}\n",
     "does not match"),
    ("id: x\nversion: '1'\ntitle: {zh: a, en: b}\ninherits: tcm-2024-l3\noverrides: {nope.rule: {severity: low}}\n",
     "override for unknown rule nope.rule"),
    ("id: x\nversion: '1'\ntitle: {zh: a, en: b}\ninherits: x.yaml\n", "inherits itself"),
    ("{{{", "not valid YAML"),
])
def test_invalid_profiles_fail_with_one_line(tmp_path, body, msg):
    p = write(tmp_path, "x.yaml", body)
    with pytest.raises(UsageError, match=msg) as e:
        load_profile(str(p))
    assert "\n" not in str(e.value)


def test_unknown_profile_names_the_builtins():
    with pytest.raises(UsageError, match=r"unknown baseline profile 'nope' \(built-in: tcm-2024-l3"):
        load_profile("nope")
