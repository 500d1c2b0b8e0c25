"""Peer proof: our ssh.kex lists must equal ssh-audit's (PyPI `ssh-audit`, a test dependency) exactly, order too,
on real OpenSSH servers on loopback and on every SSH server of the lab.

Named differences between the two tools, and why they are not bugs:
  1. ssh-audit's `enc`, `mac` and `compression` are the server-to-client lists of the KEXINIT (its
     `kex.server` party); our `ciphers`, `macs`, `compression` are client-to-server, with the other direction in
     `ciphers_s2c`, `macs_s2c`, `compression_s2c`. We compare ssh-audit's lists with our s2c lists, and assert
     c2s == s2c where the server is OpenSSH (it always sends both directions equal).
  2. ssh-audit adds `keysize` to group-exchange kex entries (it probes the modulus sizes with extra
     connections); that is not part of our contract and is not compared.
  3. ssh-audit reports RSA key size on each RSA-family algorithm entry; we report one host key per key type
     (`host_keys`, type ssh-rsa). We compare its size with ours for every RSA-family entry.
  4. ssh-audit fingerprints omit the `SHA256:` prefix that ssh-keygen (and we) print; stripped before comparing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checks.ssh import kex as sshkex
from scanner.core.models import Asset, Service
from scanner.sdk.context import CheckContext, RunEnv
from tests.checks.test_ssh_kex import CONFIGS, SSHD, start_sshd
from tests.loopback import pick_port

RSA_FAMILY = ("ssh-rsa", "rsa-sha2-256", "rsa-sha2-512")


def ssh_audit(address: str, port: int = 22) -> dict:
    # installed with the [test] extra next to the Python running the tests, whether or not that is on PATH
    exe = shutil.which("ssh-audit", path=str(Path(sys.executable).parent))
    assert exe is not None, "ssh-audit (PyPI) missing: it comes with the [test] extra"
    p = subprocess.run([exe, "-j", "-p", str(port), address], capture_output=True, text=True, timeout=60)
    return json.loads(p.stdout)   # its exit status encodes the verdict (fail/warn), not an error


def ours(address: str, scope: str, port: int = 22) -> dict:
    asset = Asset(address=address, services=[Service(port=port, name="ssh")])
    ctx = CheckContext(asset=asset, service=asset.services[0], check_id="ssh.kex", env=RunEnv(scope=[scope]),
                       timeout=20, safe_mode=False)
    [obs] = sshkex.run(ctx)
    return obs.data


def assert_same(o: dict, sa: dict) -> None:
    assert o["banner"] == sa["banner"]["raw"]
    assert o["protocol"] == sa["banner"]["protocol"]
    assert o["kex"] == [e["algorithm"] for e in sa["kex"]]
    assert o["host_key"] == [e["algorithm"] for e in sa["key"]]
    assert o["ciphers_s2c"] == [e["algorithm"] for e in sa["enc"]]               # difference 1
    assert o["macs_s2c"] == [e["algorithm"] for e in sa["mac"]]
    assert o["compression_s2c"] == sa["compression"]
    assert o["software"].startswith("OpenSSH")            # every peer here is OpenSSH: both directions equal
    assert (o["ciphers"], o["macs"], o["compression"]) == (o["ciphers_s2c"], o["macs_s2c"], o["compression_s2c"])
    rsa_bits = [h["bits"] for h in o["host_keys"] if h["type"] == "ssh-rsa"]
    rsa_entries = [e for e in sa["key"] if e["algorithm"] in RSA_FAMILY]             # difference 3
    assert [e["keysize"] for e in rsa_entries] == rsa_bits * len(rsa_entries)
    assert bool(rsa_entries) == bool(rsa_bits)
    sa_fp = {f["hostkey"]: f["hash"] for f in sa["fingerprints"] if f["hash_alg"] == "SHA256"}
    our_fp = {h["type"]: h["fingerprint_sha256"].removeprefix("SHA256:") for h in o["host_keys"]}  # difference 4
    assert our_fp == sa_fp
    assert all("error" not in h for h in o["host_keys"])


@pytest.fixture(scope="module")
def peer_sshds(tmp_path_factory):
    """(address, port) of four sshds: on 22, or on one free port when 22 is taken on this machine."""
    if not Path(SSHD).exists():
        pytest.skip("needs openssh-server for /usr/sbin/sshd")
    addresses = [a.replace("127.44.5.", "127.44.7.") for a in CONFIGS] + ["127.44.7.99"]
    port = pick_port(addresses, 22)
    started = []
    try:
        for address, (label, keys, lines) in zip(addresses, CONFIGS.values(), strict=False):
            started.append(start_sshd(tmp_path_factory.mktemp(f"peer-{label}"), address, keys, lines, port))
        # a fourth server with three key types, to compare several host keys at once
        started.append(start_sshd(tmp_path_factory.mktemp("peer-multi"), "127.44.7.99",
                                  [("rsa", 2048), ("ecdsa", 256), ("ed25519", 256)], "", port))
        yield [(s.address, port) for s in started]
    finally:
        for s in started:
            s.proc.kill()
            s.proc.wait()


def test_equals_ssh_audit_on_loopback_openssh(peer_sshds):
    assert len(peer_sshds) == 4
    for address, port in peer_sshds:
        assert_same(ours(address, "127.44.7.0/24", port), ssh_audit(address, port))


@pytest.mark.lab
def test_equals_ssh_audit_on_every_lab_ssh_server(lab):
    hosts = [h for h in lab["hosts"] if "ssh/22" in h["services"]]
    assert {"core-switch", "his", "hardened"} <= {h["name"] for h in hosts}
    for h in hosts:
        assert_same(ours(h["address"], lab["subnet"]), ssh_audit(h["address"]))
