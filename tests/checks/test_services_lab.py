"""services.*, creds.default and snmp.communities against the namespace lab: exact (host, rule, port) sets.

The lab's inventory carries `default_credentials_allowed: true` for the pump (the device owner's opt-in);
a default login on that medical device is the device rule medical.device.default-login.
"""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import observations, scan, triples

pytestmark = pytest.mark.lab

MINE = ("hardening.unauthenticated-service", "hardening.anonymous-ftp", "hardening.vulnerable-version",
        "accounts.default-credentials", "accounts.snmp-write-community", "crypto.cleartext.snmp-v1v2c",
        "medical.device.default-login")
HOSTS = ("core-switch", "his", "emr-db", "pump", "hardened")
EXPECTED = {
    ("his", "hardening.unauthenticated-service", 6379),     # redis, no requirepass, protected-mode off
    ("emr-db", "accounts.default-credentials", 3306),       # MariaDB admin/admin
    ("core-switch", "crypto.cleartext.snmp-v1v2c", 161),    # v1/v2c public + private
    ("core-switch", "accounts.snmp-write-community", 161),  # private is read-write
    ("pump", "hardening.anonymous-ftp", 21),                # vsftpd anonymous_enable=YES
    ("pump", "medical.device.default-login", 80),           # nginx Basic admin/admin on the device console
    # planted: his runs an old upstream Redis 6.2.14 (lab/topology.yaml: redis-old-build); CVE-2025-49844
    # was fixed in 6.2.20; a banner match, so the finding says confidence low
    ("his", "hardening.vulnerable-version", 6379),
}


@pytest.fixture(scope="module")
def lab_result(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svc-lab")
    inv = yaml.safe_load(open(lab["inventory"], encoding="utf-8"))
    assert [a.get("default_credentials_allowed") for a in inv["assets"] if a["name"] == "pump"] == [True]
    inv_path = tmp / "inventory.yaml"     # a copy: the lab rewrites its own at every restart
    inv_path.write_text(yaml.safe_dump(inv, allow_unicode=True), encoding="utf-8")
    by_name = {h["name"]: h["address"] for h in lab["hosts"]}
    db = tmp / "lab.db"
    scan_id, found = scan([by_name[h] for h in HOSTS], scope=[lab["subnet"]], db=db, inventory=str(inv_path),
                          checks=["services", "creds", "snmp"])
    return {"findings": found, "obs": observations(db, scan_id), "addr": by_name}


def test_lab_findings_exact(lab, lab_result):
    got = {t for t in triples(lab_result["findings"], lab) if t[1] in MINE}
    assert got == EXPECTED


def test_lab_observations(lab_result):
    a = lab_result["addr"]
    obs = {(o["address"], o["check_id"], o["port"]): o["data"] for o in lab_result["obs"]}
    snmp = obs[(a["core-switch"], "snmp.communities", 161)]
    assert [(c["name"], c["access"]) for c in snmp["communities"]] == [("private", "rw"), ("public", "ro")]
    assert snmp["sys_descr"] == "TCM-Lab CoreSwitch S5700-LAB (fake), firmware V200R005"
    assert snmp["sys_name"] == "core-switch"
    emr = obs[(a["emr-db"], "creds.default", 3306)]
    assert (emr["accepted"], emr["user"], emr["entry"], emr["tried"]) == (True, "admin", "mysql-admin-admin", 2)
    mysql = obs[(a["emr-db"], "services.unauth", 3306)]
    assert mysql["product"] == "mariadb" and mysql["version"].startswith("10.11.") and mysql["requires_auth"] is None
    redis = obs[(a["his"], "services.unauth", 6379)]
    assert redis["requires_auth"] is False and redis["version"] == "6.2.14"
    pump = obs[(a["pump"], "creds.default", 80)]
    assert (pump["accepted"], pump["entry"]) == (True, "http-admin-admin")
    assert obs[(a["pump"], "services.ftp-anonymous", 21)]["code"] == 230
    # nothing of ours fires on the hardened host, and its OpenSSH carries Debian's regreSSHion fix
    hardened_ssh = obs[(a["hardened"], "services.versions", 22)]
    assert (hardened_ssh["product_key"], hardened_ssh["matches"], [m["cve"] for m in hardened_ssh["suppressed"]]) \
        == ("openssh", [], ["CVE-2024-6387"])
