"""Reports of real stored scans (tests/reports/conftest.py): content, schemas, hostile input in every format,
the HTML in headless Chromium and the PDF through poppler."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from reports.formats import validate_report, validate_sarif
from scanner.core.models import AttemptResult, Finding
from scanner.engine.scan import evaluate_stored
from scanner.store import Store
from tests.helpers import tcmscan
from tests.reports.conftest import HOSTILE_NAME, STORED_BANNER, copy_db

ALL = "html,pdf,json,csv,sarif"


@pytest.fixture(scope="module")
def bundles(hostile_scans, tmp_path_factory):
    db, address, s1, s2 = hostile_scans
    out = tmp_path_factory.mktemp("bundles")
    p = tcmscan("report", s2, "--format", ALL, "--out", str(out / "zh"), db=db)     # Chinese is the default
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(out / "zh" / n) for n in
                                ("report.html", "report.pdf", "report.json", "findings.csv", "report.sarif")]
    p = tcmscan("report", s2, "--format", "html,json", "--lang", "en", "--out", str(out / "en"), db=db)
    assert p.returncode == 0, p.stderr
    return out


def load(bundles: Path, lang: str = "zh") -> dict:
    return json.loads((bundles / lang / "report.json").read_text(encoding="utf-8"))


def test_json_content_is_exact_and_valid(bundles, hostile_scans):
    db, address, s1, s2 = hostile_scans
    doc = load(bundles)
    assert validate_report(doc) == []
    assert {(f["rule_id"], f["port"], f["status"]) for f in doc["findings"]} == {
        ("crypto.cleartext.ftp", 21, "open"), ("hardening.risky-port", 21, "open"),
        ("hardening.risky-port", 23, "open"), ("crypto.cleartext.telnet", 23, "waived")}
    risk = {(f["rule_id"], f["port"]): f["risk"] for f in doc["findings"]}
    # HIS (criticality 5) in the server zone seen from the user network: A=5, T=4; high V=4, medium V=3
    assert {k: (r["A"], r["T"], r["V"], r["R"], r["level_en"]) for k, r in risk.items()} == {
        ("crypto.cleartext.ftp", 21): (5, 4, 4, 17.89, "high"),
        ("crypto.cleartext.telnet", 23): (5, 4, 4, 17.89, "high"),
        ("hardening.risky-port", 21): (5, 4, 3, 13.42, "medium"),
        ("hardening.risky-port", 23): (5, 4, 3, 13.42, "medium")}
    assert risk[("crypto.cleartext.ftp", 21)]["inputs"] == {
        "A": "role HIS → criticality 5", "T": "max(zone server 3, vantage user 4) = 4", "V": "severity high → 4"}
    assert doc["summary"]["open_by_level"] == {"5": 0, "4": 1, "3": 2, "2": 0, "1": 0}
    crypto = next(a for a in doc["areas"] if a["area"] == "crypto")
    # ftp failed, telnet waived, rlogin passed on the one host
    assert (crypto["counts"]["passed"], crypto["counts"]["failed"], crypto["counts"]["waived"],
            crypto["compliance"]) == (1, 1, 1, 0.33)
    ours = ("crypto.cleartext.ftp", "crypto.cleartext.rlogin", "crypto.cleartext.telnet")   # others: other checks
    assert {r["rule_id"]: r["clauses"].get("gbt22239", "")[:9] for r in crypto["rules"] if r["rule_id"] in ours} == {
        "crypto.cleartext.ftp": "8.1.4.1 c", "crypto.cleartext.rlogin": "8.1.4.1 c",
        "crypto.cleartext.telnet": "8.1.4.1 c"}
    d = doc["diff"]
    assert d["previous_scan_id"] == s1
    assert {(f["rule_id"], f["port"]) for f in d["new"]} == {("crypto.cleartext.ftp", 21), ("hardening.risky-port", 21)}
    assert {(f["rule_id"], f["port"]) for f in d["fixed"]} == {("crypto.cleartext.rlogin", 513),
                                                             ("hardening.risky-port", 513)}
    assert {(f["rule_id"], f["port"]) for f in d["persisting"]} == {("hardening.risky-port", 23)}
    assert {(f["rule_id"], f["port"]) for f in d["waived"]} == {("crypto.cleartext.telnet", 23)}
    assert [t["scan_id"] for t in doc["trend"]] == [s1, s2]
    waived = next(f for f in doc["findings"] if f["status"] == "waived")
    assert waived["waiver"] == {"owner": "信息科 张工<b>", "expires": "2099-12-31",
                                "reason": "legacy PACS gateway, replacement ordered <script>alert(5)</script>"}
    assert doc["scan"]["check_versions"] == {"ports.open": "1.0"}
    assert re.fullmatch("[0-9a-f]{64}", doc["scan"]["profile"]["sha256"])
    # the JSON keeps untrusted values whole; only the human formats clip them
    assert waived["evidence"] == {"banner": STORED_BANNER, "port": 23}
    assert len(doc["hosts"][0]["owner"]) == 100_025


def test_sarif_is_valid_sarif_2_1_0(bundles):
    log = json.loads((bundles / "zh" / "report.sarif").read_text(encoding="utf-8"))
    assert validate_sarif(log) == []
    run = log["runs"][0]
    assert {(r["ruleId"], r["properties"]["port"], r["level"]) for r in run["results"]} == {
        ("crypto.cleartext.ftp", 21, "error"), ("hardening.risky-port", 21, "warning"),
        ("hardening.risky-port", 23, "warning"), ("crypto.cleartext.telnet", 23, "error")}
    waived = [r for r in run["results"] if "suppressions" in r]
    assert [r["ruleId"] for r in waived] == ["crypto.cleartext.telnet"]
    assert waived[0]["suppressions"][0]["status"] == "accepted"
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert all(ids[r["ruleIndex"]] == r["ruleId"] for r in run["results"])
    # a broken log is caught by the same validator (the schema is really applied)
    bad = json.loads(json.dumps(log))
    bad["runs"][0]["results"][0]["level"] = "fatal"
    assert validate_sarif(bad)


def test_csv_neutralises_formulas_and_keeps_cells_bounded(bundles):
    raw = (bundles / "zh" / "findings.csv").read_text(encoding="utf-8")
    assert raw.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(raw.lstrip("\ufeff"))))
    assert {(r["rule_id"], r["port"], r["status"], r["risk_R"]) for r in rows} == {
        ("crypto.cleartext.ftp", "21", "open", "17.89"), ("hardening.risky-port", "21", "open", "13.42"),
        ("hardening.risky-port", "23", "open", "13.42"), ("crypto.cleartext.telnet", "23", "waived", "17.89")}
    for r in rows:
        for k, v in r.items():
            assert not v.startswith(("=", "+", "-", "@", "\t", "\r")), (k, v[:40])
        assert r["host_name"] == "'" + HOSTILE_NAME.replace("\u202e", "\\u202e")   # shown, not obeyed, as in HTML
    telnet = next(r for r in rows if r["rule_id"] == "crypto.cleartext.telnet")
    assert json.loads(telnet["evidence"])["banner"] == STORED_BANNER
    assert (telnet["waiver_owner"], telnet["waiver_expires"]) == ("信息科 张工<b>", "2099-12-31")


def test_html_is_self_contained_and_escapes_everything_the_host_said(bundles):
    for lang in ("zh", "en"):
        html = (bundles / lang / "report.html").read_text(encoding="utf-8")
        assert "<script" not in html.lower()
        assert "<img" not in html and "&lt;img src=x onerror=alert" in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "\u202e" not in html and "\\u202e" in html  # the bidi override is shown, not obeyed
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
        assert "@import" not in html and "url(" not in html
        assert "default-src 'none'" in html
        assert "A" * 1000 not in html                      # 100 KB owner clipped in HTML
        assert len(html) < 200_000
    zh = (bundles / "zh" / "report.html").read_text(encoding="utf-8")
    for text in ("一、执行摘要", "二、第7章各领域合规情况", "风险矩阵", "密码应用", "R=L·F=17.89",
                 "五、与上次评估对比", "六、已豁免", "信息科 张工&lt;b&gt;", "2099-12-31", "八、评估方法"):
        assert text in zh, text
    en = (bundles / "en" / "report.html").read_text(encoding="utf-8")
    for text in ("1. Executive summary", "2. Compliance by chapter-7 area", "Cryptography", "Risk matrix"):
        assert text in en, text


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    if not exe:
        pytest.skip("Debian's chromium is not installed")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=120)


def not_blank(png: Path) -> int:
    from PIL import Image

    im = Image.open(png).convert("RGB").resize((200, 300))
    return len(set(im.tobytes()[i:i + 3] for i in range(0, 200 * 300 * 3, 3)))


@pytest.mark.parametrize("lang,summary,area_head,area_row", [
    ("zh", "一、执行摘要", "合规率", "密码应用"), ("en", "1. Executive summary", "Compliance", "Cryptography")])
def test_html_in_headless_chromium(bundles, lang, summary, area_head, area_row, tmp_path):
    url = (bundles / lang / "report.html").as_uri()
    p = chromium("--dump-dom", url)
    assert p.returncode == 0, p.stderr[-500:]
    dom = p.stdout
    assert summary in dom and 'class="area-table"' in dom
    table = dom[dom.index('class="area-table"'):]
    table = table[:table.index("</table>")]
    assert area_head in table and area_row in table and "33%" in table
    assert "<script" not in dom.lower() and "<img" not in dom.lower()   # nothing the host sent became markup
    shot = tmp_path / f"{lang}.png"
    p = chromium(f"--screenshot={shot}", "--window-size=1200,2000", url)
    assert shot.is_file(), p.stderr[-500:]
    assert shot.stat().st_size > 50_000
    assert not_blank(shot) > 30          # a blank page has one colour; the report has charts and badges


def test_pdf_keeps_chinese_text_and_renders(bundles, tmp_path):
    if not (shutil.which("pdftotext") and shutil.which("pdftoppm")):
        pytest.skip("poppler-utils not installed")
    pdf = bundles / "zh" / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    for s in ("网络安全风险评估报告", "执行摘要", "密码应用", "明文Telnet", "整改建议", "风险矩阵"):
        assert s in text, s
    assert "<script>alert(1)</script>" in text      # shown as text, never run (a PDF from HTML runs no script)
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "2", str(pdf), str(tmp_path / "pg")],
                   check=True)
    pages = sorted(tmp_path.glob("pg-*.png"))
    assert len(pages) == 2 and all(not_blank(p) > 10 for p in pages)


def test_not_assessed_and_overlong_evidence(hostile_scans, tmp_path):
    """An attempt that failed (as a check raising CheckError leaves it) and a 100 KB evidence value put in a
    copy of the real store: the rules turn 'not assessed', the report says why, every format stays sane."""
    db, address, s1, s2 = hostile_scans
    db2 = copy_db(db, tmp_path)
    store = Store(db2)
    store.record_attempt(s2, AttemptResult(f"{s2}|tls.scan|{address}|443/tcp", "tls.scan", address, 443, "error",
                                           "timeout", "peer said <script>alert(6)</script>"), "1.0",
                         "2026-01-01T00:00:00+00:00")
    big = "=" + "B" * 100_000 + "<script>alert(7)</script>"
    findings = store.findings(s2)
    results = store.rule_results(s2)
    f0 = findings[0]
    # stored without risk, as a finding from before schema 3: the report grades it on read (CVSS in evidence)
    findings.append(Finding(**{**f0.to_dict(), "fingerprint": "f" * 24, "evidence_key": "big",
                               "evidence": {"banner": big, "cvss": 9.8}, "risk": None}))
    store.save_verdicts(s2, findings, results)
    out = tmp_path / "b"
    p = tcmscan("report", s2, "--format", "html,json,csv,sarif", "--out", str(out), db=db2)
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert validate_report(doc) == []
    assert doc["not_assessed"]["attempts"] == [{"check_id": "tls.scan", "address": address, "port": 443,
                                                "status": "error", "reason": "timeout",
                                                "detail": "peer said <script>alert(6)</script>"}]
    big_f = next(f for f in doc["findings"] if f["fingerprint"] == "f" * 24)
    assert (big_f["risk"]["V"], big_f["risk"]["inputs"]["V"]) == (5, "CVSS 9.8 → 5")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(6)&lt;/script&gt;" in html and "<script" not in html.lower()
    assert "B" * 1000 not in html and "100026" in html          # clipped, with the full length said
    rows = list(csv.reader(io.StringIO((out / "findings.csv").read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert max(len(c) for r in rows for c in r) < 32_768
    assert validate_sarif(json.loads((out / "report.sarif").read_text(encoding="utf-8"))) == []
    # re-evaluation turns a rule reading the failed check into 'not assessed', never 'passed'
    store.db["attempts"].update(f"{s2}|ports.open|{address}|21/tcp", {"status": "error", "reason": "timeout"})
    store.db.execute("DELETE FROM observations WHERE attempt_id = ?", [f"{s2}|ports.open|{address}|21/tcp"])
    from scanner.assess.baseline import load_profile

    evaluate_stored(s2, store, load_profile())
    verdicts = {(r.rule_id, r.status) for r in store.rule_results(s2)}
    assert ("crypto.cleartext.rlogin", "not_assessed") in verdicts
    assert ("crypto.cleartext.rlogin", "passed") not in verdicts


def test_report_errors_are_one_line(hostile_scans, tmp_path):
    db, *_ = hostile_scans
    p = tcmscan("report", "no-such-scan", "--out", str(tmp_path / "x"), db=db)
    assert (p.returncode, p.stderr.strip().count("\n")) == (2, 0) and "no scan 'no-such-scan'" in p.stderr
    p = tcmscan("report", "--format", "html,docx", "--out", str(tmp_path / "x"), db=db)
    assert p.returncode == 2 and "unknown format docx" in p.stderr.replace("'", "")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("x")
    p = tcmscan("report", "--out", str(tmp_path / "full"), db=db)
    assert p.returncode == 2 and "is not empty" in p.stderr
