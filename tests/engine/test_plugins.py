"""Checks register through the tcmscan.checks entry-point group: built-ins and a hospital's own alike."""

import json
import textwrap

from tests.helpers import tcmscan
from tests.loopback import Listener

HOSPITAL_CHECK = '''
from scanner.sdk import CheckMeta

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


HOSPITAL_COMMAND = """
def register(sub):
    s = sub.add_parser("hello", help="the hospital's own sub-command")
    s.add_argument("--name", default="world")
    s.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)
"""


def make_command_plugin(tmp_path, body: str) -> dict[str, str]:
    pkg = tmp_path / "hospital_cmds"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    dist = tmp_path / "hospital_cmds-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hospital-cmds\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tcmscan.commands]\nhello = hospital_cmds:register\n")
    return {"PYTHONPATH": str(tmp_path)}


def test_sub_commands_register_through_the_commands_entry_point_group(tmp_path):
    """report, lab and schedule are plug-ins of the tcmscan.commands group, and so is a hospital's own command."""
    env = make_command_plugin(tmp_path, HOSPITAL_COMMAND)
    p = tcmscan("hello", "--name", "中医院", db=tmp_path / "a.db", env=env)
    assert (p.returncode, p.stdout, p.stderr) == (0, "hello 中医院\n", "")
    helptext = tcmscan("--help", db=tmp_path / "a.db", env=env).stdout
    for command in ("report", "keys", "verify", "lab", "schedule", "run", "hello"):
        assert f"    {command} " in helptext or f"    {command}\n" in helptext, command


def test_a_broken_command_plugin_is_named_and_the_others_still_work(tmp_path):
    env = make_command_plugin(tmp_path, "raise ImportError('no module named vendor_sdk')\n")
    p = tcmscan("checks", "list", db=tmp_path / "a.db", env=env)
    assert p.returncode == 0 and "ports.open" in p.stdout
    assert p.stderr == ("tcmscan: warning: command plug-in hello (hospital_cmds:register) failed to load: "
                        "ImportError: no module named vendor_sdk\n")
