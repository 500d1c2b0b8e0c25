"""The commands docs/reports.md gives an auditor who has no tcmscan (OpenSSL 3, sha256sum, Python 3), taken
from the doc itself so the doc and this test cannot drift, run on a real bundle signed with Ed25519 and SM2 by
`tcmscan report --sign ... --sign-sm2 ...`: each passes on the bundle, and each fails on the tampering it is
there to catch."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reports.signing import ED_PRIVATE, ED_PUBLIC, SM2_PRIVATE, SM2_PUBLIC
from tests.helpers import ROOT, tcmscan

MARKER = "<!-- auditor-commands:"


def auditor_commands() -> list[str]:
    """Every line of the code block that follows the marker in docs/reports.md."""
    text = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    after = text[text.index(MARKER):]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block is not None and after.index("```sh") < after.index("\n\n"), "the marker must precede the block"
    return [line for line in block.group(1).splitlines() if line.strip()]


COMMANDS = auditor_commands()
ED_SIG, SM2_SIG, FILES, EXTRA, SCAN = range(5)


def test_the_doc_gives_the_five_commands():
    assert len(COMMANDS) == 5
    assert COMMANDS[ED_SIG].startswith("openssl pkeyutl -verify ") and "manifest.sig" in COMMANDS[ED_SIG]
    assert COMMANDS[SM2_SIG].startswith("openssl pkeyutl -verify ") and "manifest.sm2.sig" in COMMANDS[SM2_SIG]
    assert "distid:1234567812345678" in COMMANDS[SM2_SIG] and "-digest sm3" in COMMANDS[SM2_SIG]
    assert COMMANDS[FILES].endswith("| sha256sum --check --strict")


@pytest.fixture(scope="module")
def bundle(hostile_scans, keypair, tmp_path_factory):
    db, _, _, s2 = hostile_scans
    keys, pp = keypair
    out = tmp_path_factory.mktemp("auditor") / "bundle"
    p = tcmscan("report", s2, "--format", "html,json,csv,sarif", "--out", str(out), "--sign", str(keys / ED_PRIVATE),
                "--sign-sm2", str(keys / SM2_PRIVATE), "--passphrase-file", str(pp), db=db)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""             # a new key: no weak-key warning
    return out, keys, s2


def run(directory: Path, keys: Path) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "ED_PUB": str(keys / ED_PUBLIC), "SM2_PUB": str(keys / SM2_PUBLIC)}
    return [subprocess.run(["bash", "-o", "pipefail", "-c", c], cwd=directory, env=env, capture_output=True,
                           text=True, timeout=60) for c in COMMANDS]


def codes(results: list[subprocess.CompletedProcess]) -> list[int]:
    return [r.returncode for r in results]


def test_the_commands_pass_on_the_signed_bundle(bundle):
    out, keys, scan_id = bundle
    results = run(out, keys)
    assert codes(results) == [0, 0, 0, 0, 0], [r.stderr for r in results]
    assert results[ED_SIG].stdout.strip() == "Signature Verified Successfully"
    assert results[SM2_SIG].stdout.strip() == "Signature Verified Successfully"
    assert sorted(results[FILES].stdout.splitlines()) == [
        "findings.csv: OK", "report.html: OK", "report.json: OK", "report.sarif: OK"]
    assert results[EXTRA].stdout == ""
    manifest = json.loads((out / "manifest.json").read_text())
    scan = manifest["scan"]
    assert results[SCAN].stdout == f"{scan_id} {','.join(scan['scope'])} {scan['started']} {scan['finished']}\n"
    # tcmscan agrees
    p = tcmscan("verify", str(out), "--pubkey", str(keys / ED_PUBLIC), "--pubkey", str(keys / SM2_PUBLIC))
    assert p.returncode == 0, p.stderr


def test_the_signature_commands_fail_on_a_tampered_manifest(bundle, tmp_path):
    out, keys, _ = bundle
    b = tmp_path / "b"
    shutil.copytree(out, b)
    m = json.loads((b / "manifest.json").read_text())
    m["scan"]["scope"] = ["0.0.0.0/0"]        # files untouched, so only the signatures can tell
    (b / "manifest.json").write_text(json.dumps(m, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    results = run(b, keys)
    assert codes(results) == [1, 1, 0, 0, 0]
    assert results[ED_SIG].stdout.strip() == results[SM2_SIG].stdout.strip() == "Signature Verification Failure"

    # a manifest rewritten to match a changed report: the hashes agree, the signatures do not
    b2 = tmp_path / "b2"
    shutil.copytree(out, b2)
    report = b2 / "report.json"
    report.write_text(report.read_text().replace('"status": "open"', '"status": "fixed"', 1))
    assert report.read_bytes() != (out / "report.json").read_bytes()
    m = json.loads((b2 / "manifest.json").read_text())
    m["files"]["report.json"] = {"sha256": hashlib.sha256(report.read_bytes()).hexdigest(),
                                 "size": report.stat().st_size}
    (b2 / "manifest.json").write_text(json.dumps(m, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    assert codes(run(b2, keys)) == [1, 1, 0, 0, 0]


def test_the_file_commands_fail_on_a_changed_missing_or_extra_file(bundle, tmp_path):
    out, keys, _ = bundle
    b = tmp_path / "b"
    shutil.copytree(out, b)
    data = (b / "report.html").read_bytes()
    (b / "report.html").write_bytes(data[:200] + bytes([data[200] ^ 1]) + data[201:])
    results = run(b, keys)
    assert codes(results) == [0, 0, 1, 0, 0]
    assert "report.html: FAILED" in results[FILES].stdout

    (b / "report.html").write_bytes(data)
    (b / "findings.csv").unlink()
    (b / "notes.txt").write_text("not signed")
    results = run(b, keys)
    assert codes(results) == [0, 0, 1, 1, 0]
    assert results[EXTRA].stdout == "extra: notes.txt\n"


def test_the_sm2_command_fails_on_another_sm2_key(bundle, tmp_path):
    out, keys, _ = bundle
    other = tmp_path / "other"
    p = subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "sm2.pem")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    other.mkdir()
    subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "sm2.pem"), "-pubout", "-out",
                    str(other / SM2_PUBLIC)], check=True, capture_output=True)
    shutil.copy(keys / ED_PUBLIC, other / ED_PUBLIC)
    assert codes(run(out, other)) == [0, 1, 0, 0, 0]
