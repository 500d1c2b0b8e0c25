"""http.consoles and the web-console rules against a real Apache Tomcat 10 from Debian on 127.16.0.30 (manager and
host-manager with a default-style account, TRACE allowed, directory listing) and its locked twin on 127.16.0.31
(Tomcat's defaults, a ROOT page), through the real CLI with creds.default beside them (which logs into the
manager with the Tomcat list); every fact equals what curl sees."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.checks.tomcat_servers import ADMIN_APPS, CATALINA_HOME, start_tomcat
from tests.helpers import observations, scan
from tests.loopback import pick_port, stop_process

OPEN, LOCKED = "127.16.0.30", "127.16.0.31"


@pytest.fixture(scope="module")
def tomcat(tmp_path_factory):
    if not (CATALINA_HOME / "bin" / "catalina.sh").exists() or not (ADMIN_APPS / "manager").exists():
        pytest.skip("needs tomcat10 and tomcat10-admin (Debian packages)")
    port = pick_port([OPEN, LOCKED], 8080)
    p = start_tomcat(tmp_path_factory.mktemp("tomcat"), OPEN, LOCKED, port)
    try:
        yield port
    finally:
        stop_process(p)


@pytest.fixture(scope="module")
def web_scan(tomcat, tmp_path_factory):
    db = tmp_path_factory.mktemp("webscan") / "scan.db"
    scan_id, found = scan([OPEN, LOCKED], scope=["127.16.0.0/24"], db=db, checks=["http", "creds.default"],
                          extra=["--no-ping", "--ports", str(tomcat)])
    obs = {(o["address"], o["key"]): o["data"] for o in observations(db, scan_id)
           if o["check_id"] in ("http.consoles", "creds.default") and o["port"] == tomcat}
    return tomcat, [f for f in found if f["port"] == tomcat], obs


def test_findings_exact(web_scan):
    port, found, _ = web_scan
    assert {(f["address"], f["rule_id"], f["severity"]) for f in found} == {
        (OPEN, "hardening.web-console-exposed", "medium"),
        (OPEN, "hardening.http-directory-listing", "medium"),
        (OPEN, "hardening.http-trace-enabled", "low"),
        (OPEN, "accounts.default-credentials", "critical"),     # tomcat/tomcat on /manager/html
    }
    ev = {f["rule_id"]: f["evidence"] for f in found}
    assert ev["hardening.web-console-exposed"] == {"consoles": [
        "tomcat-manager /manager/html (Basic)", "tomcat-manager-text /manager/text/list (Basic)",
        "tomcat-host-manager /host-manager/html (Basic)"]}
    assert ev["hardening.http-directory-listing"] == {"url": f"http://{OPEN}:{port}/",
                                                      "title": "Directory Listing For [&#47;]"}
    assert ev["accounts.default-credentials"] == {"service": "http-basic", "user": "tomcat",
                                                  "entry": "tomcat-tomcat-tomcat", "tried": 2}


def test_default_login_on_the_manager_equals_curl(web_scan):
    """creds.default: / has no login, so the Tomcat manager's Basic challenge is used; the first pair of the
    list (tomcat/s3cret) is refused and the second (tomcat/tomcat) accepted, as curl sees them. The locked twin
    has no manager: not applicable."""
    port, _, obs = web_scan
    d = dict(obs[(OPEN, "default-login")])
    assert d.pop("decision") == ""
    assert d == {"service": "http-basic", "accepted": True, "user": "tomcat", "entry": "tomcat-tomcat-tomcat",
                 "tried": 2, "detail": "HTTP 200", "page": "/manager/html"}
    assert (LOCKED, "default-login") not in obs
    codes = [_curl("-o", "/dev/null", "-w", "%{http_code}", "-u", pair, f"http://{OPEN}:{port}/manager/html")
             for pair in ("tomcat:s3cret", "tomcat:tomcat")]
    assert codes == ["401", "200"]


def test_observations(web_scan):
    port, _, obs = web_scan
    basic = {"status": 401, "login": "Basic", "open": False}
    assert obs[(OPEN, "consoles")] == {"tried": 22, "not_found_status": 404, "complete": True, "found": [
        {"id": "tomcat-manager", "product": "Apache Tomcat", "kind": "admin", "path": "/manager/html", **basic},
        {"id": "tomcat-manager-text", "product": "Apache Tomcat", "kind": "admin", "path": "/manager/text/list",
         **basic},
        {"id": "tomcat-host-manager", "product": "Apache Tomcat", "kind": "admin", "path": "/host-manager/html",
         **basic},
        {"id": "tomcat-status", "product": "Apache Tomcat", "kind": "diagnostic", "path": "/manager/status",
         **basic}]}
    assert obs[(LOCKED, "consoles")] == {"tried": 22, "not_found_status": 404, "complete": True, "found": []}
    surface = {"server": "", "password_form": False, "frame_protection": False, "csp": False, "cookies": [],
               "status": 200}
    assert obs[(OPEN, "web-surface")] == {**surface, "url": f"http://{OPEN}:{port}/",
                                          "title": "Directory Listing For [&#47;]", "directory_listing": True,
                                          "trace_enabled": True, "trace_status": 200}
    assert obs[(LOCKED, "web-surface")] == {**surface, "url": f"http://{LOCKED}:{port}/", "title": "LIS",
                                            "directory_listing": False, "trace_enabled": False, "trace_status": 405}


def _curl(*args: str) -> str:
    return subprocess.run(["curl", "-s", "--max-time", "10", *args], capture_output=True, text=True, timeout=30,
                          check=True).stdout


def test_facts_equal_curl(web_scan):
    """Each console path: curl's status and WWW-Authenticate scheme equal ours, and a path we did not report
    answers curl 404; TRACE: curl's status and echo; the listing: curl's page title."""
    port, _, obs = web_scan
    from scanner.core.knowledge import knowledge
    for address in (OPEN, LOCKED):
        found = {c["path"]: c for c in obs[(address, "consoles")]["found"]}
        for entry in knowledge()["web_consoles"]["consoles"]:
            method = ["-I"] if entry.get("method") == "HEAD" else []   # curl -X HEAD would wait for a body
            head = _curl("-o", "/dev/null", "-D", "-", *method, f"http://{address}:{port}{entry['path']}")
            status = int(head.split()[1])
            scheme = re.search(r"(?im)^www-authenticate:\s*(\S+)", head)
            if entry["path"] in found:
                assert (status, scheme.group(1) if scheme else "") == \
                    (found[entry["path"]]["status"], found[entry["path"]]["login"]), entry["path"]
            else:
                assert status == 404, (address, entry["path"])
        surface = obs[(address, "web-surface")]
        token = "curl-trace-check"
        trace = _curl("-i", "-X", "TRACE", "-H", f"X-Tcmscan-Trace: {token}", f"http://{address}:{port}/")
        assert (int(trace.split()[1]) == 200 and token in trace) == surface["trace_enabled"]
        assert int(trace.split()[1]) == surface["trace_status"]
        title = re.search(r"<title>(.*?)</title>", _curl(f"http://{address}:{port}/"), re.S)
        assert title and title.group(1).strip() == surface["title"]
