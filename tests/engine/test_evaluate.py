from scanner.assess.baseline import Waiver, load_profile
from scanner.assess.evaluate import diff_findings, evaluate_scan, fingerprint
from scanner.core.models import Asset, Observation, Service

NOW = "2026-11-21T00:00:00+00:00"


def asset(address="10.0.0.5", cls="server", **kw):
    return Asset(address=address, cls=cls, services=[Service(23, name="telnet"), Service(8080, name="http")], **kw)


def svc_obs(host, port, name):
    return Observation("ports.open", host, port, "service", {"port": port, "proto": "tcp", "name": name,
                                                           "banner": "", "product": "", "version": "", "tunnel": ""})


def attempt(host, port, status="completed", reason="", detail=""):
    return {"check_id": "ports.open", "address": host, "port": port, "status": status, "reason": reason,
            "detail": detail}


def verdicts(results, host):
    return {r.rule_id: r.status for r in results if r.address == host}


def test_observations_become_exact_findings_with_stable_fingerprints():
    p = load_profile()
    a = asset()
    findings, results = evaluate_scan(p, [a], [attempt(a.address, 23), attempt(a.address, 8080)],
                                      [svc_obs(a.address, 23, "telnet"), svc_obs(a.address, 8080, "http")], now=NOW)
    assert {(f.rule_id, f.port, f.severity) for f in findings} == {
        ("crypto.cleartext.telnet", 23, "high"), ("hardening.risky-port", 23, "medium")}
    f = next(f for f in findings if f.rule_id == "hardening.risky-port")
    assert f.fingerprint == fingerprint("hardening.risky-port", "10.0.0.5", 23, "")
    assert f.evidence == {"port": 23, "service": "telnet", "detected": "telnet"}
    assert f.clauses["gbt22239"].startswith("8.1.4.4")
    v = verdicts(results, a.address)
    assert v["crypto.cleartext.telnet"] == "failed"
    assert v["crypto.cleartext.ftp"] == "passed"
    assert v["network.mgmt-interface-exposed"] == "not_applicable"    # a server, not a network device


def test_an_error_is_never_a_pass():
    p = load_profile()
    a = asset()
    _, results = evaluate_scan(p, [a], [attempt(a.address, 23, "error", "timeout", "no answer"),
                                        attempt(a.address, 8080)], [svc_obs(a.address, 8080, "http")], now=NOW)
    v = {r.rule_id: (r.status, r.reason) for r in results}
    assert v["crypto.cleartext.telnet"] == ("not_assessed", "timeout: no answer")
    assert v["hardening.risky-port"] == ("not_assessed", "timeout: no answer")


def test_waivers_mute_until_expiry():
    p = load_profile()
    a = asset()
    obs = [svc_obs(a.address, 23, "telnet")]
    live = Waiver("crypto.cleartext.*", "10.0.0.0/24", "设备科", "vendor patch pending", "2026-12-31")
    expired = Waiver("hardening.risky-port", "*", "x", "y", "2026-11-20")
    findings, results = evaluate_scan(p, [a], [attempt(a.address, 23)], obs, waivers=[live, expired], now=NOW)
    status = {f.rule_id: f.status for f in findings}
    assert status == {"crypto.cleartext.telnet": "waived", "hardening.risky-port": "open"}
    assert next(f.waiver for f in findings if f.status == "waived") == {
        "owner": "设备科", "reason": "vendor patch pending", "expires": "2026-12-31"}
    assert verdicts(results, a.address)["crypto.cleartext.telnet"] == "waived"


def test_reevaluation_against_another_profile_needs_no_scan(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("id: strict\nversion: '1'\ntitle: {zh: 严, en: strict}\ninherits: tcm-2024-l3\n"
                    "overrides: {hardening.risky-port: {severity: critical}}\n", encoding="utf-8")
    a = asset()
    findings, _ = evaluate_scan(load_profile(str(site)), [a], [attempt(a.address, 23)],
                                [svc_obs(a.address, 23, "telnet")], now=NOW)
    assert {(f.rule_id, f.severity) for f in findings} == {("crypto.cleartext.telnet", "high"),
                                                           ("hardening.risky-port", "critical")}


def test_diff_new_fixed_persisting_waived_and_not_reassessed():
    p = load_profile()
    a, b = asset("10.0.0.5"), asset("10.0.0.6")
    old, _ = evaluate_scan(p, [a, b], [attempt(a.address, 23), attempt(b.address, 23)],
                           [svc_obs(a.address, 23, "telnet"), svc_obs(b.address, 23, "telnet")], now=NOW)
    # a: telnet gone (port closed) -> fixed; b: could not be reached -> not re-assessed; c: new
    c = asset("10.0.0.7")
    new, results = evaluate_scan(
        p, [a, b, c], [attempt(a.address, 8080), attempt(b.address, 23, "error", "connectivity", "refused"),
                       attempt(c.address, 23)],
        [svc_obs(a.address, 8080, "http"), svc_obs(c.address, 23, "telnet")],
        waivers=[Waiver("hardening.risky-port", "10.0.0.7", "o", "r", "2099-01-01")], now=NOW)
    d = diff_findings(old, new, results)
    got = {k: sorted((f.address, f.rule_id) for f in v) for k, v in d.items()}
    assert got == {
        "new": [("10.0.0.7", "crypto.cleartext.telnet")],
        "waived": [("10.0.0.7", "hardening.risky-port")],
        "persisting": [],
        "fixed": [("10.0.0.5", "crypto.cleartext.telnet"), ("10.0.0.5", "hardening.risky-port")],
        "not_reassessed": [("10.0.0.6", "crypto.cleartext.telnet"), ("10.0.0.6", "hardening.risky-port")],
    }


def test_a_check_that_did_not_run_leaves_its_rules_not_assessed():
    p = load_profile()
    a = asset()
    _, results = evaluate_scan(p, [a], [attempt(a.address, 23)], [svc_obs(a.address, 23, "telnet")], now=NOW)
    v = {r.rule_id: (r.status, r.reason) for r in results}
    assert v["crypto.tls.legacy-protocol"] == ("not_assessed", "check tls.scan did not run in this scan")


def test_severity_by_grades_each_finding_from_its_evidence(tmp_path):
    site = tmp_path / "cvss.yaml"
    site.write_text(
        "id: cvss\nversion: '1'\ntitle: {zh: 按CVSS, en: by CVSS}\nrules:\n"
        " - id: hardening.cvss-demo\n   title: {zh: 演示, en: demo}\n   clauses: {gbt22239: '8.1.4.4 e'}\n"
        "   basis: {kind: proposed}\n   check: ports.open\n   key: service\n   when: 'data.port in (23, 8080)'\n"
        "   severity_by:\n    - {when: 'data.port == 23', severity: critical}\n"
        "   severity: high\n   remediation: {zh: 修, en: fix}\n", encoding="utf-8")
    a = asset()
    findings, _ = evaluate_scan(load_profile(str(site)), [a], [attempt(a.address, 23), attempt(a.address, 8080)],
                                [svc_obs(a.address, 23, "telnet"), svc_obs(a.address, 8080, "http")], now=NOW)
    assert sorted((f.port, f.severity) for f in findings) == [(23, "critical"), (8080, "high")]


def test_each_finding_carries_its_risk_graded_from_asset_and_vantage():
    p = load_profile()
    srv = Asset(address="10.0.0.9", cls="server", zone="clinical", services=[Service(23, name="telnet")])
    args = (p, [srv], [attempt(srv.address, 23)], [svc_obs(srv.address, 23, "telnet")])
    seen = {}
    for vantage in ("clinical", "user"):
        findings, _ = evaluate_scan(*args, vantage=vantage, now=NOW)
        seen[vantage] = {f.rule_id: (f.risk["A"], f.risk["T"], f.risk["V"], f.risk["L"], f.risk["F"], f.risk["R"],
                                     f.risk["level_en"], f.risk["cell"], f.risk["inputs"]["T"]) for f in findings}
    # server A=3; T = the larger of zone and vantage; telnet high V=4, risky port medium V=3
    # (R = V·√(A·T): 4·√6 = 9.80, 4·√12 = 13.86, 3·√12 = 10.39)
    assert seen == {
        "clinical": {"crypto.cleartext.telnet": (3, 2, 4, 2.83, 3.46, 9.8, "low", [3, 3],
                                                 "max(zone clinical 2, vantage clinical 2) = 2")},
        "user": {"crypto.cleartext.telnet": (3, 4, 4, 4.0, 3.46, 13.86, "medium", [4, 3],
                                             "max(zone clinical 2, vantage user 4) = 4"),
                 "hardening.risky-port": (3, 4, 3, 3.46, 3.0, 10.39, "medium", [3, 3],
                                          "max(zone clinical 2, vantage user 4) = 4")}}
