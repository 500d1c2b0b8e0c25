"""Clause citations come from baselines/frameworks/*.yaml (clause -> rule ids), not from the rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from scanner.assess.baseline import DEFAULT_PROFILE, load_profile
from scanner.assess.frameworks import FRAMEWORKS_DIR, load_framework, load_frameworks
from scanner.core.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
PROFILE = load_profile(DEFAULT_PROFILE)
FRAMEWORKS = load_frameworks(sorted(FRAMEWORKS_DIR.glob("*.yaml")))
BY_KEY = {fw.key: fw for fw in FRAMEWORKS}


def test_every_builtin_rule_is_mapped_and_rule_files_carry_no_clauses():
    mapped = {rid for fw in FRAMEWORKS for c in fw.clauses for rid in c.rules}
    assert sorted({r.id for r in PROFILE.rules} - mapped) == []
    for f in sorted((ROOT / "baselines" / "profiles" / "tcm-2024-l3" / "rules").glob("*.yaml")):
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        assert [r["id"] for r in doc["rules"] if "clauses" in r] == [], f.name


def test_every_rule_sits_in_exactly_one_area_of_the_2024_spec():
    areas = [c for c in BY_KEY["tcm2024"].clauses if c.id.startswith(("ch7.", "ch4."))]
    assert {c.id: c.title["zh"] for c in areas} == {
        "ch7.platform": "网络安全工作管理平台", "ch7.data": "数据安全", "ch7.personnel": "人员安全",
        "ch7.crypto": "密码应用", "ch7.medical": "医疗设备信息安全", "ch7.risk": "风险评估与预防",
        "ch4.dr": "容灾备份"}
    where: dict[str, list[str]] = {}
    for c in areas:
        for rid in c.rules:
            where.setdefault(rid, []).append(c.id)
    assert {rid: ids for rid, ids in where.items() if len(ids) != 1} == {}
    assert sorted(where) == sorted(r.id for r in PROFILE.rules)
    assert PROFILE.rule("hardening.vulnerable-version").clauses["tcm2024"].startswith("第7章 安全防护 · 风险评估与预防；")
    assert PROFILE.rule("audit.no-remote-log").clauses["tcm2024"].startswith("第7章 安全防护 · 网络安全工作管理平台；")
    assert PROFILE.rule("backup.missing").clauses["tcm2024"].startswith("第4章 基础设施 · 容灾备份；")


def test_old_area_names_are_gone_from_the_data():
    texts = [f.read_text(encoding="utf-8") for f in (ROOT / "baselines").rglob("*.yaml")]
    assert [t for t in texts if "风险评估与防范" in t or "网络安全管理平台" in t] == []


def test_corrected_citations():
    c = {r.id: r.clauses for r in PROFILE.rules}
    ports = "8.1.4.4 b 入侵防范：应关闭不需要的系统服务、默认共享和高危端口"
    assert c["hardening.risky-port"]["gbt22239"] == ports
    assert c["medical.device.cleartext-service"]["gbt22239"] == ports
    assert c["backup.exposed-rsync"]["gbt22239"].startswith(ports + "；")
    assert c["backup.nfs-open"]["gbt22239"].endswith("；" + ports)
    assert c["network.mgmt-interface-exposed"]["gbt22239"] == (
        "8.1.5.4 a 集中管控：应划分出特定的管理区域，对分布在网络中的安全设备或安全组件进行管控（编号为重构）")
    assert c["accounts.md5-password-hash"]["gbt39786"] == (
        "8.4 e 应用和数据安全：应采用密码技术保证信息系统应用的重要数据在存储过程中的机密性")
    assert c["backup.writable-store"]["gbt22239"] == "8.1.4.9 a 数据备份恢复：应提供重要数据的本地数据备份与恢复功能"
    # "高危端口" is 8.1.4.4 b everywhere; 8.1.4.9 c (hot redundancy) backs no rule
    assert [rid for rid, cl in c.items() if "8.1.4.4 c" in cl.get("gbt22239", "") and "高危端口" in
            cl["gbt22239"].split("8.1.4.4 c", 1)[1].split("；")[0]] == []
    assert next(x for x in BY_KEY["gbt22239"].clauses if x.id == "8.1.4.9 c").rules == ()


def test_clause_keys_and_shape_stay_what_reports_read():
    for r in PROFILE.rules:
        assert set(r.clauses) <= {"tcm2024", "gbt22239", "gbt39786", "gbt20984", "nmpa2022", "iec80001", "law", "other"}
        assert r.clauses["tcm2024"] and all(isinstance(v, str) and v for v in r.clauses.values()), r.id
    assert PROFILE.rule("crypto.cleartext.ftp").clauses["gbt22239"] == (
        "8.1.4.1 c 身份鉴别：当进行远程管理时，应采取必要措施防止鉴别信息在网络传输过程中被窃听")


def test_medical_capability_matches_its_iec_clause():
    iec = {rid: c.id for c in BY_KEY["iec80001"].clauses for rid in c.rules}
    nmpa = {rid: c.id for c in BY_KEY["nmpa2022"].clauses for rid in c.rules}
    medical = {r.id: r.capability for r in PROFILE.rules if r.id.startswith("medical.")}
    assert iec == medical and nmpa == medical


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


FW = """
    id: site-fw
    key: other
    title: {zh: 院内制度}
    source: 院内信息安全管理制度 2025
    clauses:
      "3.2":
        title: {zh: 远程维护}
        text: {zh: 厂商远程维护须经审批}
        basis: seen
        rules: [RULES]
"""
RULE = """\
  - id: hardening.vendor-vpn
    title: {zh: 厂商VPN, en: vendor VPN}
    basis: {kind: proposed}
    check: ports.open
    key: service
    when: "obs.port == 1194"
    severity: medium
    remediation: {zh: 关闭, en: close it}
"""


def site(tmp_path: Path, rules: str, *, frameworks: str = "", inherits: bool = True) -> Path:
    head = "id: site\nversion: '1'\ntitle: {zh: 某院, en: site}\n" + ("inherits: tcm-2024-l3\n" if inherits else "")
    head += f"frameworks: [{frameworks}]\n" if frameworks else ""
    p = tmp_path / "site.yaml"
    p.write_text(head + "rules:\n" + rules, encoding="utf-8")
    return p


def test_site_rule_with_inline_clauses_still_loads(tmp_path):
    p = load_profile(str(site(tmp_path, RULE + "    clauses: {gbt22239: '8.1.4.4 b', other: 院内制度 3.2}\n")))
    assert p.rule("hardening.vendor-vpn").clauses == {"gbt22239": "8.1.4.4 b", "other": "院内制度 3.2"}
    assert p.rule("hardening.risky-port").clauses == PROFILE.rule("hardening.risky-port").clauses


def test_site_rule_mapped_by_the_site_framework(tmp_path):
    write(tmp_path, "fw.yaml", FW.replace("RULES", "hardening.vendor-vpn, hardening.risky-port"))
    p = load_profile(str(site(tmp_path, RULE, frameworks="fw.yaml")))
    assert p.rule("hardening.vendor-vpn").clauses == {"other": "3.2 远程维护：厂商远程维护须经审批"}
    assert p.rule("hardening.risky-port").clauses == {**PROFILE.rule("hardening.risky-port").clauses,
                                                      "other": "3.2 远程维护：厂商远程维护须经审批"}


def test_inline_clause_wins_over_the_framework_for_its_key(tmp_path):
    write(tmp_path, "fw.yaml", FW.replace("RULES", "hardening.vendor-vpn"))
    p = load_profile(str(site(tmp_path, RULE + "    clauses: {other: 院内制度 3.2（2025修订）}\n",
                              frameworks="fw.yaml")))
    assert p.rule("hardening.vendor-vpn").clauses == {"other": "院内制度 3.2（2025修订）"}


def test_a_site_rule_replacing_a_builtin_keeps_its_citations(tmp_path):
    body = RULE.replace("hardening.vendor-vpn", "hardening.risky-port")
    p = load_profile(str(site(tmp_path, body)))
    assert p.rule("hardening.risky-port").when == "obs.port == 1194"
    assert p.rule("hardening.risky-port").clauses == PROFILE.rule("hardening.risky-port").clauses


@pytest.mark.parametrize("fw,rules,msg", [
    (FW.replace("RULES", "hardening.nope"), RULE, r"invalid framework .*fw.yaml: clause 3.2 maps unknown rule hardening.nope"),
    (FW.replace("RULES", ""), RULE, r"invalid baseline .*site.yaml: rule hardening.vendor-vpn cites no clause"),
    (FW.replace("RULES", "hardening.vendor-vpn").replace("basis: seen", "basis: maybe"), RULE,
     r"invalid framework .*fw.yaml: at clauses/3.2/basis"),
    (FW.replace("RULES", "hardening.vendor-vpn").replace("key: other", "key: gbt22239"), RULE,
     r"invalid framework .*gbt.yaml: id 'gbt22239-2019-l3' / key 'gbt22239' already used by .*fw.yaml"),
    (FW.replace("RULES", "hardening.vendor-vpn") + "        cite: '{id} {nope}'\n", RULE,
     r"invalid framework .*fw.yaml: clause 3.2: bad cite format"),
])
def test_bad_frameworks_fail_with_one_line(tmp_path, fw, rules, msg):
    write(tmp_path, "fw.yaml", fw)
    # a second file filling the same Rule.clauses key
    (tmp_path / "gbt.yaml").write_text((FRAMEWORKS_DIR / "gbt22239-2019-l3.yaml").read_text(encoding="utf-8"),
                                       encoding="utf-8")
    frameworks = "fw.yaml, gbt.yaml" if "already used" in msg else "fw.yaml"
    with pytest.raises(UsageError, match=msg) as e:
        load_profile(str(site(tmp_path, rules, frameworks=frameworks, inherits=False)))
    assert "\n" not in str(e.value)


def test_frameworks_pattern_that_matches_nothing(tmp_path):
    with pytest.raises(UsageError, match=r"frameworks pattern 'none/\*.yaml' matches nothing"):
        load_profile(str(site(tmp_path, RULE, frameworks="'none/*.yaml'")))


def test_citation_says_when_a_sub_number_is_ours():
    fw = load_framework(FRAMEWORKS_DIR / "gbt22239-2019-l3.yaml")
    by_id = {c.id: c for c in fw.clauses}
    assert fw.citation(by_id["8.1.4.1 c"]).endswith("被窃听")
    assert fw.citation(by_id["8.1.2.2 b"]) == "8.1.2.2 b 通信传输：应采用密码技术保证通信过程中数据的保密性（编号为重构）"
