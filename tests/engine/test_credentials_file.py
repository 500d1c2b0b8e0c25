"""The credentials file and a key passphrase file hold secrets: refused (exit 2, one line, no secret in it)
when group or others have any permission on them, as OpenSSH refuses such a private key."""

from __future__ import annotations

import random

import pytest

from scanner.core.errors import UsageError
from scanner.sdk.credentials import load_credentials
from tests.helpers import tcmscan

# for an address no test scans: the credential is only read, never used
ENTRY = "credentials:\n  - {match: 10.9.9.9, type: ssh, user: root, password: 'hunter2-secret'}\n"
ADDRESS = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"


def _scan(tmp_path, creds) -> object:
    # nothing listens on this address: the scan ends at once; the credentials are read before anything
    return tcmscan("scan", ADDRESS, "--scope", f"{ADDRESS}/32", "--checks", "ports.open", "--no-ping",
                   "--credentials", str(creds), db=tmp_path / "a.db")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_a_credentials_file_others_can_reach_is_refused(tmp_path, mode):
    creds = tmp_path / "creds.yaml"
    creds.write_text(ENTRY)
    creds.chmod(mode)
    p = _scan(tmp_path, creds)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == (f"tcmscan: credentials file {creds} is accessible by group or others (mode {mode:04o}); "
                        f"it holds secrets: chmod 600 {creds}\n")
    assert "hunter2" not in p.stderr


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_credentials_file_is_read(tmp_path, mode):
    creds = tmp_path / "creds.yaml"
    creds.write_text(ENTRY)
    creds.chmod(mode)
    store = load_credentials(str(creds))
    assert [(c.user, c.password, c.key_passphrase) for c in store.items] == [("root", "hunter2-secret", None)]
    p = _scan(tmp_path, creds)
    # nothing listens there: the scan completes with no finding
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines()[-1].endswith("findings none; see 'tcmscan findings " + p.stderr.split()[1] + "'")


def test_key_passphrase_file_is_read_private_and_needs_a_key_file(tmp_path):
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    pp = tmp_path / "passphrase"
    pp.write_text("correct horse battery\n")          # the trailing newline is not part of the passphrase
    pp.chmod(0o600)
    creds = tmp_path / "creds.yaml"
    creds.write_text(f"credentials:\n  - {{match: 10.0.0.0/8, user: audit, key_file: {key}, "
                     f"key_passphrase_file: {pp}}}\n")
    creds.chmod(0o600)
    [c] = load_credentials(str(creds)).items
    assert (c.key_file, c.key_passphrase, c.extra) == (str(key), "correct horse battery", {})
    assert "correct horse" not in repr(c)
    pp.chmod(0o644)
    with pytest.raises(UsageError) as e:
        load_credentials(str(creds))
    assert str(e.value) == (f"key passphrase file {pp} is accessible by group or others (mode 0644); it holds "
                            f"secrets: chmod 600 {pp}")
    pp.unlink()
    p = _scan(tmp_path, creds)
    assert (p.returncode, p.stderr) == (2, f"tcmscan: cannot read key passphrase file {pp}: No such file or "
                                           "directory\n")
    creds.write_text(f"credentials:\n  - {{match: 10.0.0.0/8, user: audit, key_passphrase_file: {pp}}}\n")
    with pytest.raises(UsageError) as e:
        load_credentials(str(creds))
    assert str(e.value) == f"credentials file {creds}: entry #1: key_passphrase_file without key_file"


def test_a_credentials_file_that_is_not_text_is_one_line(tmp_path):
    creds = tmp_path / "creds.yaml"
    creds.write_bytes(b"credentials: \xff\xfe hunter2\n")
    creds.chmod(0o600)
    p = _scan(tmp_path, creds)
    assert (p.returncode, p.stderr) == (2, f"tcmscan: credentials file {creds} is not UTF-8 text\n")


def test_a_credentials_file_is_bounded_yaml_and_its_parse_errors_quote_nothing(tmp_path):
    creds = tmp_path / "creds.yaml"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    creds.write_text(bomb)
    creds.chmod(0o600)
    with pytest.raises(UsageError) as e:
        load_credentials(str(creds))
    assert str(e.value).startswith(f"credentials file {creds}: its aliases expand to more than 500000 nodes")
    # a parse error's own text would quote the broken line, here a password
    creds.write_text("credentials:\n  - {match: '*', user: root, password: hunter2-secret: oops}\n")
    p = _scan(tmp_path, creds)
    assert (p.returncode, p.stderr) == (2, f"tcmscan: credentials file {creds} is not valid YAML\n")
