"""The 数据安全 (data) area of the default profile has rules (issue 17: the report showed "no rules in this
baseline"), and each issue-17 rule cites the clauses it answers."""

from __future__ import annotations

from scanner.assess.baseline import DEFAULT_PROFILE, load_profile
from scanner.assess.grading import area_compliance
from scanner.core.models import RuleResult

PROFILE = load_profile(DEFAULT_PROFILE)
CLAUSES = {   # rule -> {framework key: clause ids in the cited text}
    "data.mqtt.anonymous-access": {"gbt22239": ["8.1.4.2 a", "8.1.4.11 b"], "law": ["第五十一条"],
                                   "tcm2024": ["第7章 安全防护 · 数据安全"]},
    "data.tftp.config-exposed": {"gbt22239": ["8.1.4.2 a", "8.1.4.8 b"], "tcm2024": ["第7章 安全防护 · 数据安全"]},
    "data.orthanc.unauthenticated-api": {"gbt22239": ["8.1.4.2 a", "8.1.4.11 b"], "law": ["第二十八条", "第五十一条"],
                                         "tcm2024": ["第7章 安全防护 · 数据安全"]},
    "data.dicomweb.unauthenticated-qido": {"gbt22239": ["8.1.4.2 a", "8.1.4.11 b"], "law": ["第二十八条", "第五十一条"],
                                           "tcm2024": ["第7章 安全防护 · 数据安全"]},
    "data.fhir.unauthenticated-patient-search": {"gbt22239": ["8.1.4.2 a", "8.1.4.11 b"],
                                                 "law": ["第二十八条", "第五十一条"], "tcm2024": ["第7章 安全防护 · 数据安全"]},
    "data.search.unauthenticated-index": {"gbt22239": ["8.1.4.2 a", "8.1.4.11 b"], "law": ["第五十一条"],
                                          "tcm2024": ["第7章 安全防护 · 数据安全"]},
    "data.search.kibana-without-login": {"gbt22239": ["8.1.4.2 a"], "tcm2024": ["第7章 安全防护 · 数据安全"]},
    "crypto.cleartext.mqtt": {"gbt22239": ["8.1.4.8 a"], "gbt39786": ["8.4 d"], "tcm2024": ["第7章 安全防护 · 密码应用"]},
    "crypto.cleartext.database": {"gbt22239": ["8.1.4.8 a"], "gbt39786": ["8.4 d"],
                                  "tcm2024": ["第7章 安全防护 · 密码应用"]},
    "crypto.cleartext.database-tls-optional": {"gbt22239": ["8.1.4.8 a"], "gbt39786": ["8.4 d"],
                                               "tcm2024": ["第7章 安全防护 · 密码应用"]},
}


def test_issue17_rules_cite_their_clauses() -> None:
    for rid, want in CLAUSES.items():
        cited = PROFILE.rule(rid).clauses
        assert sorted(cited) == sorted(want), rid
        for key, ids in want.items():
            assert [i for i in ids if i not in cited[key]] == [], (rid, key, cited[key])

def test_the_data_area_has_rules_and_verdicts() -> None:
    data_rules = sorted(r.id for r in PROFILE.rules if r.id.startswith("data."))
    assert data_rules == ["data.dicomweb.unauthenticated-qido", "data.fhir.unauthenticated-patient-search",
                          "data.ldap.anonymous-read",                                  # issue 15
                          "data.mqtt.anonymous-access", "data.orthanc.unauthenticated-api",
                          "data.search.kibana-without-login", "data.search.unauthenticated-index",
                          "data.smb.anonymous-share-list", "data.smb.guest-share-readable",  # issue 15
                          "data.tftp.config-exposed"]
    results = [RuleResult(rid, "10.0.0.1", "passed", "") for rid in data_rules]
    [area] = [a for a in area_compliance(results) if a.area == "data"]
    assert (area.name_zh, area.assessed, area.compliance) == ("数据安全", 10, 1.0)
