"""A checksum manifest that lists a FIFO, a unix socket or a device is not a reason to hang or to read forever:
backup.catalogue (the same commands it sends over SSH, run here by /bin/sh) looks at each entry with stat(2)
first and hashes only regular files; the others are recorded as skipped with the reason."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time

import pytest

from checks.backup.catalogue import catalogue
from scanner.core.knowledge import knowledge

HANG = 20.0        # seconds any one command may take here; the unfixed check waits 120 s on a FIFO


def bounded_shell(command: str, timeout: float = 20.0) -> tuple[int, str, bool]:
    """/bin/sh in its own process group, killed when it outlives HANG (then the test fails)."""
    p = subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=min(timeout, HANG))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.stdout.close()       # GNU timeout moved sha256sum to a group of its own: its `timeout 120` ends it
        p.wait()
        raise AssertionError(f"a command hung for {HANG:g} s: {command[:120]}") from None
    return p.returncode, out, False


@pytest.fixture
def manifest_dir(tmp_path):
    d = tmp_path / "var/backups/db"
    d.mkdir(parents=True)
    (d / "a.sql.gpg").write_bytes(b"aaaa")
    os.mkfifo(d / "pipe.sql.gpg")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(d / "sock.sql.gpg"))
    (d / "zero-link.sql.gpg").symlink_to("/dev/zero")
    h = hashlib.sha256(b"aaaa").hexdigest()
    (d / "SHA256SUMS").write_text(f"{h}  a.sql.gpg\n{h}  pipe.sql.gpg\n{h}  sock.sql.gpg\n{h}  /dev/zero\n"
                                  f"{h}  zero-link.sql.gpg\n{h}  gone.sql.gpg\n")
    yield tmp_path
    sock.close()


def test_fifo_socket_and_devices_are_skipped_not_read(manifest_dir):
    t0 = time.monotonic()
    data = catalogue(bounded_shell, knowledge()["backup_tools"], root=str(manifest_dir))
    took = time.monotonic() - t0
    assert took < 10, f"the catalogue took {took:.1f} s"
    (m,) = data["manifests"]
    assert m == {"path": "/var/backups/db/SHA256SUMS", "status": "partial", "algorithm": "sha256", "entries": 6,
                 "failed": [], "missing": ["gone.sql.gpg"], "bytes": 4,
                 "skipped": [{"name": "pipe.sql.gpg", "reason": "not a regular file (fifo): not read"},
                             {"name": "sock.sql.gpg", "reason": "not a regular file (socket): not read"},
                             {"name": "/dev/zero", "reason": "not a regular file (character special file): not read"},
                             {"name": "zero-link.sql.gpg",
                              "reason": "not a regular file (character special file): not read"}]}
    # one verified file among entries that were not: the set's integrity is not "verified"
    assert data["sets"][0]["integrity"] == "unverified"


def test_only_special_files_is_unreadable(tmp_path):
    d = tmp_path / "backup"
    d.mkdir()
    (d / "x.tar.gz").write_bytes(b"x")
    os.mkfifo(d / "x.tar.gz.fifo")
    (d / "x.tar.gz.sha256").write_text(hashlib.sha256(b"x").hexdigest() + "  x.tar.gz.fifo\n")
    data = catalogue(bounded_shell, knowledge()["backup_tools"], root=str(tmp_path))
    (m,) = data["manifests"]
    assert (m["status"], m["detail"], m["bytes"]) == ("unreadable", "no regular file listed", 0)
    assert m["skipped"] == [{"name": "x.tar.gz.fifo", "reason": "not a regular file (fifo): not read"}]


def test_a_manifest_that_is_a_fifo_is_not_read(tmp_path):
    # found as a regular file, swapped for a FIFO before it is read: [ -f ] refuses it, nothing blocks
    from checks.backup._collect import verify_manifest

    d = tmp_path / "backup"
    d.mkdir()
    os.mkfifo(d / "SHA256SUMS")
    t0 = time.monotonic()
    res = verify_manifest(bounded_shell, "/backup/SHA256SUMS", [1 << 20], str(tmp_path))
    assert time.monotonic() - t0 < 5
    assert (res["status"], res["detail"]) == ("unreadable", "manifest has no entries")
