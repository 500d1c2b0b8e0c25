"""The data-exposure checks on the lab state the same facts as independent clients run from the same vantage point
(10.77.0.1): phi.orthanc (and creds.default's Orthanc login) on pacs-web / pacs-web-sec = curl; phi.fhir,
phi.elasticsearch and phi.kibana on research (plain HTTP, open) / research-sec (HTTPS with the lab CA, locked) =
curl; mqtt.broker on ward-broker / broker-sec = mosquitto_sub; tftp.configs on netcfg = curl tftp://;
services.db-tls on pg-his / db-sec = psql / the mariadb client.  Discovery's UDP services of netcfg, bmc and
core-switch (scanner.engine.discovery.scan_services) = nmap -sU on the same ports, but for TFTP (see below).
The clients run as the loopback tests run them (tests/checks/test_phi_*.py, test_mqtt_broker.py,
test_tftp_configs.py, test_services_db_tls.py).  Targets: lab addresses only."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from checks.creds._forms import choose
from checks.tftp.configs import credential_kinds
from scanner.core.knowledge import knowledge
from scanner.core.models import Service
from scanner.engine.discovery import scan_services
from scanner.sdk.credentials import load_credentials
from tests.checks.test_mqtt_broker import _mosquitto_sub
from tests.checks.test_services_db_tls import _psql
from tests.checks.test_services_db_tls_required import _client as mariadb_login
from tests.checks.test_tftp_configs import NAMES as TFTP_NAMES
from tests.checks.test_tftp_configs import _patterns as tftp_patterns
from tests.lab.test_peers_windows import address_of, facts

pytestmark = pytest.mark.lab

LAB_HOSTS = Path(__file__).resolve().parents[2] / "lab" / "hosts"
UDP_HOSTS = ("netcfg", "bmc", "core-switch")


@pytest.fixture(scope="module", autouse=True)
def discovered(lab):
    """Per UDP host: discovery's services, then nmap -sU's port states. Started with the module, one thread a host:
    nmap -sV spends ≈ 46 s on core-switch's telnet port, so discovery runs while the other comparisons do, and
    each host's nmap -sU follows its own discovery (never two scans of one host at once); the last test reads them."""
    ports = knowledge()["hospital_ports"]["udp"]

    def both(address: str) -> tuple[list[Service], dict[int, str]]:
        return scan_services(address, raw=True, fragile=False), nmap_udp(address, ports)

    with ThreadPoolExecutor(len(UDP_HOSTS)) as pool:
        yield {name: pool.submit(both, address_of(lab, name)) for name in UDP_HOSTS}


def nmap_udp(address: str, ports: list[int]) -> dict[int, str]:
    out = subprocess.run(["nmap", "-sU", "-Pn", "-n", "-p", ",".join(map(str, ports)), "-oX", "-", address],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return {int(p.get("portid")): p.find("state").get("state") for p in ET.fromstring(out).iter("port")}


def curl_json(lab, url: str, *extra: str) -> tuple[int, object]:
    """curl's status (0: no HTTP answer) and JSON body (None when there is none); HTTPS verified with the lab CA."""
    p = subprocess.run(["curl", "-s", "--max-time", "10", "--cacert", lab["ca"], "-w", "\n%{http_code}", *extra, url],
                       capture_output=True, timeout=20)
    body, _, code = p.stdout.rpartition(b"\n")
    try:
        return int(code), json.loads(body)
    except ValueError:
        return int(code), None


def curl_code(lab, url: str, *extra: str) -> str:
    return subprocess.run(["curl", "-s", "--max-time", "10", "--cacert", lab["ca"], "-o", "/dev/null", "-w",
                           "%{http_code}", *extra, url], capture_output=True, text=True, timeout=20).stdout


# ------------------------------------------------------------------------------------------------ phi.orthanc

PACS = Service(8042, name="http")        # discovery names 8042 http (knowledge hospital_ports)


def orthanc_account(name: str) -> str:
    [(user, password)] = json.loads((LAB_HOSTS / name / "etc/orthanc/lab.json").read_text())["RegisteredUsers"].items()
    return f"{user}:{password}"


@pytest.mark.parametrize("name", ["pacs-web", "pacs-web-sec"])
def test_orthanc_equals_curl(lab, name):
    """Both Orthancs ask for a login (pacs-web's account is the default-style one): curl gets 401 with Orthanc's
    Basic challenge on the REST API and on DICOMweb, over plain HTTP, as we recorded; with the host's own account
    curl reads the same API (so the 401 is the login, not a broken server) and one planted study."""
    base = f"http://{address_of(lab, name)}:8042"
    ours = facts(lab, name, "phi.orthanc", PACS)["orthanc"]
    theirs = {path: curl_json(lab, base + path, "-H", "Accept: application/dicom+json")[0]
              for path in ("/system", "/statistics", "/dicom-web/studies")}
    assert (theirs == dict.fromkeys(theirs, 401)) == ours["auth_required"]
    assert ours["tls"] == base.startswith("https")
    assert ours == {"tls": False, "auth_required": True, "version": "", "api_version": None, "patients_total": None,
                    "studies_total": None, "instances_total": None, "patients_listed": None, "dicomweb": None}
    code, stats = curl_json(lab, base + "/statistics", "-u", orthanc_account(name))
    assert (code, stats["CountStudies"]) == (200, 1)


def test_orthanc_default_login_equals_curl(lab):
    """creds.default tries the entries chosen for Orthanc's realm on /: curl with each pair it tried gets the status
    it recorded -- accepted orthanc/orthanc on pacs-web (plant orthanc-default-account), nothing on the twin."""
    table = knowledge()["default_credentials"]
    got = {}
    for name in ("pacs-web", "pacs-web-sec"):
        base = f"http://{address_of(lab, name)}:8042/"
        login = facts(lab, name, "creds.default", PACS)["default-login"]
        realm = re.search(r'realm="([^"]*)"', subprocess.run(["curl", "-s", "-o", "/dev/null", "-D", "-", base],
                                                               capture_output=True, text=True, timeout=20).stdout)
        tried = choose(table["services"]["http-basic"], realm.group(1), table["max_per_service"])[:login["tried"]]
        codes = [curl_code(lab, base, "-u", f"{e['user']}:{e['password']}") for e in tried]
        assert codes[-1] == login["detail"].removeprefix("HTTP "), name
        assert codes[:-1] == ["401"] * (len(tried) - 1) and (codes[-1] != "401") == login["accepted"], (name, codes)
        got[name] = (login["accepted"], login["entry"])
    assert got == {"pacs-web": (True, "http-orthanc-orthanc"), "pacs-web-sec": (False, "")}


# ------------------------------------------------------------------------------------------------ phi.fhir / search

# the services as nmap -sV --version-light names them (measured on the lab); research-sec's inside TLS
FHIR, ES, KIBANA = Service(8080, name="http-proxy"), Service(9200, name="wap-wsp"), Service(5601, name="esmagent")
RESEARCH = {"research": ("http", ""), "research-sec": ("https", "ssl")}


def research(lab, name: str, check_id: str, service: Service) -> tuple[dict, str, bool]:
    """Our facts, the URL base curl uses, and whether curl finds TLS there (HTTPS answers, plain HTTP does not)."""
    scheme, tunnel = RESEARCH[name]
    service = Service(service.port, name=service.name, tunnel=tunnel)
    [d] = facts(lab, name, check_id, service).values()
    host = f"{address_of(lab, name)}:{service.port}"
    tls = curl_code(lab, f"https://{host}/") != "000" and curl_code(lab, f"http://{host}/") == "000"
    return d, f"{scheme}://{host}", tls


@pytest.mark.parametrize("name", RESEARCH)
def test_fhir_equals_curl(lab, name):
    d, base, tls = research(lab, name, "phi.fhir", FHIR)
    code, cap = curl_json(lab, base + d["base"] + "/metadata")
    security = [c["code"] for rest in cap["rest"] for s in rest.get("security", {}).get("service", [])
                for c in s.get("coding", [])]
    search, bundle = curl_json(lab, base + d["base"] + "/Patient?_summary=count")
    assert {"tls": tls, "status": code, "fhir_version": cap["fhirVersion"], "software": cap["software"]["name"],
            "security_services": security,
            "patient_search": {"status": search, "total": bundle.get("total") if search == 200 else None}} == {
        "tls": d["tls"], "status": 200, **{k: d[k] for k in ("fhir_version", "software", "security_services",
                                                             "patient_search")}}
    # plant fhir-open (two FAKE patients without a token) and the locked twin's SMART-on-FHIR 401
    assert (d["tls"], d["patient_search"]) == ((False, {"status": 200, "total": 2}) if name == "research" else
                                               (True, {"status": 401, "total": None}))


@pytest.mark.parametrize("name", RESEARCH)
def test_elasticsearch_equals_curl(lab, name):
    d, base, tls = research(lab, name, "phi.elasticsearch", ES)
    code, root = curl_json(lab, base + "/")
    listed, rows = curl_json(lab, base + "/_cat/indices?format=json&h=index,docs.count")
    theirs = {"tls": tls, "auth_required": code == 401 and listed == 401,
              "version": root["version"]["number"] if code == 200 else ""}
    if listed == 200:
        patterns = knowledge()["clinical_index_names"]["patterns"]
        names = [r["index"] for r in rows]
        theirs.update(indices=sum(not n.startswith(".") for n in names), system_indices=sum(n.startswith(".")
                                                                                          for n in names),
                      documents=sum(int(r["docs.count"]) for r in rows),
                      clinical_indices=sorted(n for n in names if not n.startswith(".")
                                              and any(re.search(p, n, re.I) for p in patterns)))
    assert theirs == {k: d[k] for k in theirs}
    assert (d["auth_required"], d["clinical_indices"]) == ((False, ["his-orders-2024", "患者主索引"])
                                                           if name == "research" else (True, []))   # plant search-open


@pytest.mark.parametrize("name", RESEARCH)
def test_kibana_equals_curl(lab, name):
    d, base, tls = research(lab, name, "phi.kibana", KIBANA)
    code, status = curl_json(lab, base + "/api/status")
    assert {"tls": tls, "auth_required": code == 401, "version": status["version"]["number"] if code == 200 else "",
            "name": status["name"] if code == 200 else ""} == d
    assert d["auth_required"] is (name == "research-sec")                                     # plant search-open


# ------------------------------------------------------------------------------------------------ mqtt.broker

def test_mqtt_brokers_equal_mosquitto_sub(lab):
    """ward-broker: mosquitto_sub (anonymous, '#') is accepted, subscribes and, waiting 3 s, gets the topics we
    got; with --retained-only it gets them too (all retained). broker-sec: its TLS handshake verifies with the lab
    CA, then the anonymous CONNECT is refused, as ours was."""
    ours = facts(lab, "ward-broker", "mqtt.broker", Service(1883, name="mqtt"))["mqtt"]
    address = address_of(lab, "ward-broker")
    rc, topics, _err = _mosquitto_sub(address, 1883)
    rc_retained, retained, _err = _mosquitto_sub(address, 1883, "--retained-only")
    assert (rc == 27, rc_retained, len(topics), sorted(topics), len(retained)) == (
        ours["accepted"] and ours["subscribed"], 27, ours["messages"], ours["topics"], ours["retained"])
    assert (ours["tls"], ours["messages"], ours["retained"]) == (False, 3, 3)        # plant mqtt-anonymous
    locked = facts(lab, "broker-sec", "mqtt.broker", Service(8883, name="secure-mqtt"))["mqtt"]
    rc, topics, err = _mosquitto_sub(address_of(lab, "broker-sec"), 8883, "--cafile", lab["ca"])
    assert (rc != 0, topics, "not authorised" in err.lower()) == (True, [], True), err
    assert (locked["tls"], locked["accepted"], locked["connack"], locked["messages"]) == (True, False,
                                                                                         "Not authorized", 0)


# ------------------------------------------------------------------------------------------------ tftp.configs

def curl_tftp(address: str, name: str) -> bytes | None:
    """The file as curl's TFTP client reads it; None where the server says it has no such file (curl exit 68)."""
    p = subprocess.run(["curl", "-s", "--max-time", "10", "-o", "-", f"tftp://{address}/{name}"], capture_output=True,
                       timeout=20)
    assert p.returncode in (0, 68), (name, p.returncode)
    return p.stdout if p.returncode == 0 else None


def test_tftp_configs_equal_curl(lab):
    """Every name of our list: curl reads exactly the files we found, with our sizes, and the credential kinds of
    its copy are those we recorded; every other name is 'not found' to curl as to us."""
    address = address_of(lab, "netcfg")
    d = facts(lab, "netcfg", "tftp.configs", Service(69, proto="udp", name="tftp"))["tftp"]
    theirs = {name: curl_tftp(address, name) for name in TFTP_NAMES}
    _names, patterns, _max = tftp_patterns()
    assert [{"name": n, "size": len(b), "credentials": bool(credential_kinds(b, patterns)),
             "credential_kinds": credential_kinds(b, patterns)} for n, b in theirs.items() if b is not None] == d["found"]
    assert (sum(b is None for b in theirs.values()), len(theirs), d["denied"]) == (d["not_found"], d["tried"], 0)
    assert [(f["name"], f["credential_kinds"]) for f in d["found"]] == [          # plant tftp-switch-config
        ("network-confg", ["enable-secret", "snmp-community", "user-password"])]


# ------------------------------------------------------------------------------------------------ services.db-tls

def test_postgresql_equals_psql(lab):
    """pg-his: psql asking for TLS is told the server has none (tls_offered false); in clear it logs in as postgres
    without a password (trust: plaintext not refused) and reads the server_version we read."""
    address = address_of(lab, "pg-his")
    d = facts(lab, "pg-his", "services.db-tls", Service(5432, name="postgresql"))["tls"]
    require, disable = _psql(address, "require"), _psql(address, "disable")
    version = subprocess.run(["psql", f"host={address} port=5432 user=postgres dbname=postgres sslmode=disable "
                                      "connect_timeout=5", "-w", "-Atc", "show server_version"],
                             capture_output=True, text=True, timeout=20)
    assert {"tls_offered": "server does not support SSL" not in require, "plaintext_refused": disable != "off",
            "version": version.stdout.strip()} == {k: d[k] for k in ("tls_offered", "plaintext_refused", "version")}
    assert (d["tls_offered"], d["plaintext_refused"]) == (False, False)                       # plant pg-trust


def test_mariadb_twin_equals_the_mariadb_client(lab):
    """db-sec with the lab's login-only db credential: the mariadb client logging in with it is refused in clear
    (1045: require_secure_transport) and accepted over TLS (verified with the lab CA) at the TLS version we
    recorded -- our tls_offered, plaintext_refused and tls_version."""
    address = address_of(lab, "db-sec")
    d = facts(lab, "db-sec", "services.db-tls", Service(3306, name="mysql"))["tls"]
    cred = load_credentials(lab["credentials"]).find(address, "db")
    plain = mariadb_login(address, cred.user, cred.password, "--ssl=0")
    tls = mariadb_login(address, cred.user, cred.password, "--ssl", f"--ssl-ca={lab['ca']}")
    denied = f"ERROR 1045 (28000): Access denied for user '{cred.user}'@'10.77.0.1' (using password: YES)"
    theirs = {"tls_offered": tls.returncode == 0, "plaintext_refused": plain.stderr.strip() == denied,
              "tls_version": tls.stdout.split()[1] if tls.returncode == 0 else ""}
    assert (plain.returncode, theirs) == (1, {k: d[k] for k in theirs}), (plain.stderr, tls.stderr)
    assert d["detail"] == (f"CLIENT_SSL in the greeting; db credential '{cred.user}' refused in cleartext "
                           "(error 1045) and accepted over TLS")
    assert (d["tls_offered"], d["plaintext_refused"]) == (True, True)       # the twin's "good": TLS required


# ------------------------------------------------------------------------------------------------ discovery (UDP)

def test_udp_discovery_equals_nmap(lab, discovered):
    """Discovery's UDP services are nmap's open UDP ports (161 on core-switch, 623 on bmc), plus TFTP on netcfg:
    nmap -sU leaves 69 open|filtered there, since tftpd answers from a new port of its own (RFC 1350 transfer ids)
    and nmap matches answers by port; our read request for a name no server holds gets tftpd's ERROR and confirms
    it (source "probe"), and curl's TFTP client does read a file there."""
    assert knowledge()["hospital_ports"]["udp"] == [69, 123, 161, 623, 1900, 5353]
    ours, theirs = {}, {}
    for name in UDP_HOSTS:
        services, theirs[name] = discovered[name].result()
        ours[name] = {s.port: (s.name, s.source) for s in services if s.proto == "udp"}
        assert set(theirs[name]) == {69, 123, 161, 623, 1900, 5353}, name
    assert {name: {p for p, state in t.items() if state == "open"} | ({69} if name == "netcfg" else set())
            for name, t in theirs.items()} == {name: set(o) for name, o in ours.items()}
    assert ours == {"netcfg": {69: ("tftp", "probe")}, "bmc": {623: ("asf-rmcp", "nmap")},
                    "core-switch": {161: ("snmp", "nmap")}}
    assert (theirs["netcfg"][69], theirs["bmc"][623], theirs["core-switch"][161]) == ("open|filtered", "open", "open")
    assert curl_tftp(address_of(lab, "netcfg"), "network-confg")
