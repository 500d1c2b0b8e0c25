"""Key files and report bundles as an attacker on the scanning machine, or a swapped bundle, would meet them:
new passphrases of PASSPHRASE_MIN characters, keys of earlier versions still signing (with a warning), every
signature the manifest lists required, bundles pinned to a scan, scope and dates, modes 0700/0600, and no
write through a symbolic link planted at --out or inside it."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest

from reports.render import open_out, write_file
from reports.signing import ED_PRIVATE, ED_PUBLIC, SM2_PRIVATE, SM2_PUBLIC
from scanner.core.errors import UsageError
from tests.helpers import tcmscan
from tests.reports.conftest import PASSPHRASE

V1 = Path(__file__).resolve().parent / "data" / "v1"
OLD_WARNING = ("tcmscan: warning: signing key {key} is weakly protected ({how}; a passphrase under 15 characters): "
               "make a new key with 'tcmscan keys generate' (scrypt N=16384, r=8, p=5, a passphrase of 15+ "
               "characters)")


def verify(directory: Path, *args: str) -> tuple[int, list[str]]:
    p = tcmscan("verify", str(directory), *args)
    return p.returncode, (p.stdout + p.stderr).strip().splitlines()


@pytest.fixture(scope="module")
def bundles(hostile_scans, keypair, tmp_path_factory):
    """Bundles of both scans signed with Ed25519 and SM2; (dir, keys, scan 1, scan 2, database)."""
    db, _, s1, s2 = hostile_scans
    keys, pp = keypair
    out = tmp_path_factory.mktemp("pinned")
    for sid in (s1, s2):
        p = tcmscan("report", sid, "--format", "json", "--out", str(out / sid), "--sign", str(keys / ED_PRIVATE),
                    "--sign-sm2", str(keys / SM2_PRIVATE), "--passphrase-file", str(pp), db=db)
        assert p.returncode == 0, p.stderr
    return out, keys, s1, s2, db


def both(keys: Path) -> list[str]:
    return ["--pubkey", str(keys / ED_PUBLIC), "--pubkey", str(keys / SM2_PUBLIC)]


# -- keys -----------------------------------------------------------------------------------------------------
def test_a_new_key_needs_a_passphrase_of_15_characters(tmp_path):
    p = tcmscan("keys", "generate", "--out", str(tmp_path / "k"), env={"TCMSCAN_KEY_PASSPHRASE": "fourteen chars"})
    assert (p.returncode, p.stderr) == (2, "tcmscan: the key passphrase must have at least 15 characters "
                                           "(it has 14)\n")
    assert not (tmp_path / "k").exists()
    p = tcmscan("keys", "generate", "--out", str(tmp_path / "k"), env={"TCMSCAN_KEY_PASSPHRASE": "fifteen chars!!"})
    assert p.returncode == 0, p.stderr
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == "0o700"


def test_keys_of_earlier_versions_still_sign_and_are_called_weak(hostile_scans, tmp_path):
    db, _, _, s2 = hostile_scans
    old = tmp_path / "keys"
    shutil.copytree(V1 / "keys", old)
    p = tcmscan("report", s2, "--format", "json", "--out", str(tmp_path / "b"), "--sign", str(old / ED_PRIVATE),
                "--sign-sm2", str(old / SM2_PRIVATE), "--passphrase-file", str(V1 / "passphrase"), db=db)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines() == [
        OLD_WARNING.format(key=old / ED_PRIVATE, how="PBKDF2 at 2,048 iterations"),
        OLD_WARNING.format(key=old / SM2_PRIVATE, how="scrypt N=32768, r=8, p=1")]
    # the old SM2 public key (JSON) still verifies what the old key signs now, in the standard files
    code, lines = verify(tmp_path / "b", "--pubkey", str(old / ED_PUBLIC), "--pubkey", str(old / "tcmscan-sm2-key.pub.json"))
    assert code == 0 and lines[0].startswith("OK: 1 files intact, scan " + s2), lines


def test_a_bundle_of_format_1_still_verifies(tmp_path):
    old = V1 / "keys"
    code, lines = verify(V1 / "bundle", "--pubkey", str(old / ED_PUBLIC), "--pubkey", str(old / "tcmscan-sm2-key.pub.json"))
    assert (code, lines) == (0, ["OK: 1 files intact, scan 20240301T020000-old, signed by Ed25519 "
                                 "6b118330e3c47b10d37250ef0d643d7e, SM2-SM3 0e2490bfa821d1e43ada295c87e5efcb; "
                                 "scope 10.1.0.0/16, 2024-03-01T02:00:01+00:00 to 2024-03-01T02:40:00+00:00"])
    b = tmp_path / "b"
    shutil.copytree(V1 / "bundle", b)
    (b / "manifest.sm2.sig").unlink()
    code, lines = verify(b, "--pubkey", str(old / ED_PUBLIC))
    assert (code, lines) == (1, ["tcmscan: verify: missing file manifest.sm2.sig: the manifest lists an SM2-SM3 "
                                 "signature", f"FAILED: 1 problem(s) in {b}"])


# -- every listed signature -----------------------------------------------------------------------------------
def test_every_signature_the_manifest_lists_is_required(bundles, tmp_path):
    out, keys, _, s2, _ = bundles
    assert verify(out / s2, *both(keys))[0] == 0
    # checking only the Ed25519 signature of a bundle that also carries SM2 proves less than it claims
    code, lines = verify(out / s2, "--pubkey", str(keys / ED_PUBLIC))
    assert (code, lines) == (1, ["tcmscan: verify: manifest.sm2.sig not checked: no --pubkey for the SM2-SM3 "
                                 "signature the manifest lists", f"FAILED: 1 problem(s) in {out / s2}"])
    b = tmp_path / "b"
    shutil.copytree(out / s2, b)
    (b / "manifest.sm2.sig").unlink()
    for args in (["--pubkey", str(keys / ED_PUBLIC)], both(keys)):
        code, lines = verify(b, *args)
        assert (code, lines) == (1, ["tcmscan: verify: missing file manifest.sm2.sig: the manifest lists an "
                                     "SM2-SM3 signature", f"FAILED: 1 problem(s) in {b}"])


# -- pins -----------------------------------------------------------------------------------------------------
def test_verify_pins_the_scan_its_scope_and_dates(bundles, hostile_scans):
    out, keys, s1, s2, _ = bundles
    _, address, _, _ = hostile_scans
    m1 = json.loads((out / s1 / "manifest.json").read_text())["scan"]
    m2 = json.loads((out / s2 / "manifest.json").read_text())["scan"]
    assert m1["finished"] <= m2["started"]
    today = dt.datetime.now(dt.UTC).date()

    ok = ["--scan-id", s2, "--scope", address, "--not-before", m2["started"], "--not-after", today.isoformat()]
    code, lines = verify(out / s2, *both(keys), *ok)       # the scope spelled without /32 is the same network
    assert code == 0 and len(lines) == 1 and lines[0].startswith(f"OK: 1 files intact, scan {s2}, signed by "
                                                                 f"Ed25519 ") and lines[0].endswith(
        f"; scope {address}/32, {m2['started']} to {m2['finished']}"), lines

    # the older scan's bundle is validly signed too: only the pins tell it apart
    assert verify(out / s1, *both(keys))[0] == 0
    code, lines = verify(out / s1, *both(keys), *ok)
    not_before = dt.datetime.fromisoformat(m2["started"]).isoformat()
    assert (code, lines) == (1, [f"tcmscan: verify: the bundle is of scan {s1}, not of --scan-id {s2}",
                                 f"tcmscan: verify: the scan started {m1['started']}, before --not-before "
                                 f"{not_before}", f"FAILED: 2 problem(s) in {out / s1}"])

    code, lines = verify(out / s2, *both(keys), "--scope", "10.0.0.0/8,192.168.0.0/16")
    assert (code, lines[0]) == (1, f"tcmscan: verify: the bundle's scope is ['{address}/32'], not --scope "
                                   f"10.0.0.0/8, 192.168.0.0/16")
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    code, lines = verify(out / s2, *both(keys), "--not-after", yesterday)
    assert (code, lines[0]) == (1, f"tcmscan: verify: the scan finished {m2['finished']}, after --not-after "
                                   f"{yesterday}T23:59:59.999999+00:00")
    # a date and time with an offset: 8 hours east of UTC
    finished = dt.datetime.fromisoformat(m2["finished"])
    just_before = (finished - dt.timedelta(seconds=1)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert verify(out / s2, *both(keys), "--not-after", just_before.isoformat())[0] == 1
    assert verify(out / s2, *both(keys), "--not-after", finished.astimezone(just_before.tzinfo).isoformat())[0] == 0


def test_bad_pins_are_usage_errors(bundles):
    out, keys, _, s2, _ = bundles
    p = tcmscan("verify", str(out / s2), *both(keys), "--not-before", "yesterday")
    assert p.returncode == 2 and p.stderr.startswith(
        "tcmscan: argument --not-before: not a date (YYYY-MM-DD) or ISO date and time: 'yesterday'") \
        and p.stderr.count("\n") == 1, p.stderr
    p = tcmscan("verify", str(out / s2), *both(keys), "--scope", "10.0.0.0/33")
    assert p.returncode == 2 and p.stderr.startswith("tcmscan: argument --scope: not a network address or CIDR: "
                                                     "'10.0.0.0/33'"), p.stderr
    p = tcmscan("verify", str(out / s2), *both(keys), "--not-before", "2025-02-01", "--not-after", "2025-01-31")
    assert (p.returncode, p.stderr) == (2, "tcmscan: verify: --not-before is after --not-after\n")


# -- files ----------------------------------------------------------------------------------------------------
def report(db: Path, sid: str, out: Path, *extra: str):
    return tcmscan("report", sid, "--format", "json,csv", "--out", str(out), *extra, db=db,
                   env={"TCMSCAN_KEY_PASSPHRASE": PASSPHRASE})


def test_bundles_are_0700_and_0600_whatever_the_umask(bundles, keypair, tmp_path):
    _, _, _, s2, db = bundles
    keys, _ = keypair
    old = os.umask(0)           # the child inherits it: nothing may rely on the umask
    try:
        p = report(db, s2, tmp_path / "new", "--sign", str(keys / ED_PRIVATE))
        (tmp_path / "existing").mkdir(mode=0o755)
        q = report(db, s2, tmp_path / "existing")
    finally:
        os.umask(old)
    assert p.returncode == 0 and q.returncode == 0, p.stderr + q.stderr
    for d, names in ((tmp_path / "new", ["findings.csv", "manifest.json", "manifest.sig", "report.json"]),
                     (tmp_path / "existing", ["findings.csv", "report.json"])):
        assert oct(d.stat().st_mode & 0o777) == "0o700"
        assert {f.name: oct(f.stat().st_mode & 0o777) for f in d.iterdir()} == dict.fromkeys(names, "0o600")


def test_no_write_through_a_symlink_at_out(bundles, tmp_path):
    _, _, _, s2, db = bundles
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "out").symlink_to(target)
    p = report(db, s2, tmp_path / "out")
    assert (p.returncode, p.stderr) == (2, f"tcmscan: --out {tmp_path / 'out'} is a symbolic link: refusing to "
                                           f"write through it\n")
    assert list(target.iterdir()) == []
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing-here")
    p = report(db, s2, tmp_path / "dangling")
    assert p.returncode == 2 and "is a symbolic link" in p.stderr
    assert not (tmp_path / "nothing-here").exists()


def test_no_write_through_a_symlink_inside_out(bundles, tmp_path):
    _, _, _, s2, db = bundles
    out = tmp_path / "out"
    assert report(db, s2, out).returncode == 0
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (out / "report.json").unlink()
    (out / "report.json").symlink_to(victim)
    (out / "findings.csv").unlink()
    (out / "findings.csv").symlink_to(tmp_path / "would-be-created")
    p = report(db, s2, out, "--force")
    assert (p.returncode, p.stderr) == (2, f"tcmscan: --out {out / 'findings.csv'} is a symbolic link: refusing "
                                           f"to write through it\n")
    assert victim.read_text() == "precious\n" and not (tmp_path / "would-be-created").exists()


def test_a_link_planted_after_out_was_opened_is_not_followed(tmp_path):
    out = tmp_path / "out"
    fd = open_out(out, force=False)
    try:
        (out / "report.json").symlink_to(tmp_path / "victim")
        with pytest.raises(UsageError, match="appeared while writing: refusing to write through it"):
            write_file(fd, out, "report.json", b"{}")
        write_file(fd, out, "findings.csv", b"a,b\n")
    finally:
        os.close(fd)
    assert not (tmp_path / "victim").exists()
    assert oct((out / "findings.csv").stat().st_mode & 0o777) == "0o600"


def test_keys_are_never_written_through_a_symlink(tmp_path):
    env = {"TCMSCAN_KEY_PASSPHRASE": PASSPHRASE}
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    p = tcmscan("keys", "generate", "--out", str(tmp_path / "link"), env=env)
    assert (p.returncode, p.stderr) == (2, f"tcmscan: {tmp_path / 'link'} is a symbolic link: refusing to write "
                                           f"keys through it\n")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / ED_PRIVATE).symlink_to(tmp_path / "stolen.pem")     # dangling: exists() is False
    p = tcmscan("keys", "generate", "--out", str(keys), env=env)
    assert (p.returncode, p.stderr) == (2, f"tcmscan: {keys / ED_PRIVATE} exists: refusing to overwrite a key\n")
    assert not (tmp_path / "stolen.pem").exists()


def test_verify_shows_a_hostile_file_name_escaped(bundles, tmp_path):
    """A bundle comes from elsewhere: a file name in it must not drive the auditor's terminal."""
    out, keys, _, s2, _ = bundles
    b = tmp_path / "b"
    shutil.copytree(out / s2, b)
    (b / "x\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J").write_text("planted")
    code, lines = verify(b, *both(keys))
    assert (code, lines) == (1, ["tcmscan: verify: extra file x\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J (not in the "
                                 "manifest)", f"FAILED: 1 problem(s) in {b}"])
