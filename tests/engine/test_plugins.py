"""Checks register through the tcmscan.checks entry-point group: built-ins and a hospital's own alike."""

import json
import textwrap

from tests.helpers import tcmscan
from tests.loopback import Listener

HOSPITAL_CHECK = '''
from scanner.plugins import CheckMeta

META = CheckMeta(id="hospital.hello", version="0.1", title_zh="本院自定义检查", title_en="Hospital's own check",
                 granularity="service", ports=(7777,))


def run(ctx):
    sock = ctx.connect()
    greeting = sock.recv(64).decode(errors="replace").strip()
    sock.close()
    return [ctx.observation("greeting", {"text": greeting})]
'''


def make_plugin(tmp_path, body=HOSPITAL_CHECK, name="hospital.hello", module="hospital_checks.hello"):
    pkg = tmp_path / "hospital_checks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "hello.py").write_text(textwrap.dedent(body))
    dist = tmp_path / "hospital_checks-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hospital-checks\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[tcmscan.checks]\n{name} = {module}\n")
    return {"PYTHONPATH": str(tmp_path)}


def test_builtin_checks_are_listed_with_metadata(tmp_path):
    out = json.loads(tcmscan("checks", "list", "--json", db=tmp_path / "a.db", check=True).stdout)
    by_id = {c["id"]: c for c in out["checks"]}
    ports = by_id["ports.open"]
    assert ports["entry_point"] == "checks.ports.open" and ports["family"] == "ports"
    assert ports["title_zh"] == "开放端口与服务标识" and ports["intrusive"] is False
    for c in out["checks"]:
        assert c["entry_point"] == "checks." + c["id"].replace("-", "_"), "a check's module is found by its id"


def test_a_third_party_check_registers_and_runs_like_a_builtin(tmp_path):
    env = make_plugin(tmp_path)
    out = json.loads(tcmscan("checks", "list", "--json", db=tmp_path / "a.db", env=env, check=True).stdout)
    assert {c["id"]: c["entry_point"] for c in out["checks"]}["hospital.hello"] == "hospital_checks.hello"
    ln = Listener("127.0.0.77", 7777, b"HELLO from the lab\n")
    try:
        p = tcmscan("scan", "127.0.0.77", "--scope", "127.0.0.77/32", "--checks", "hospital", "--ports", "7777",
                    "-q", db=tmp_path / "a.db", env=env, check=True)
        obs = json.loads(tcmscan("observations", p.stdout.strip(), db=tmp_path / "a.db", env=env,
                                 check=True).stdout)
        assert [(o["check_id"], o["port"], o["key"], o["data"]) for o in obs] == [
            ("hospital.hello", 7777, "greeting", {"text": "HELLO from the lab"})]
    finally:
        ln.close()


def test_a_broken_plugin_is_reported_and_the_others_still_load(tmp_path):
    env = make_plugin(tmp_path, body="raise ImportError('vendor SDK missing')\n")
    p = tcmscan("checks", "list", "--json", db=tmp_path / "a.db", env=env, check=True)
    out = json.loads(p.stdout)
    assert out["errors"] == {"hospital.hello": "ImportError: vendor SDK missing"}
    assert "ports.open" in {c["id"] for c in out["checks"]}
    assert "tcmscan: warning: check plug-in hospital.hello failed to load: ImportError: vendor SDK missing" \
        in p.stderr
