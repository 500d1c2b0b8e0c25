"""tls.scan against the lab's absurd certificate chain (lab/pki.py: 50 certificates, an 8000-character common
name, markup and terminal escapes in the names, serial -5, valid 1950 .. 9999) served by the lab's hostile
program on loopback: the scan completes, its facts are bounded, and nothing reaches stderr. cryptography's
warnings about the serial and the name went to the scan's stderr, and the subject was stored whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

from cryptography import x509

from lab.pki import ABSURD_CN_CHARS, absurd_chain
from tests.helpers import ROOT

SCAN = textwrap.dedent("""
    import json, sys
    from checks.tls import scan
    from tests.checks.hostile_loopback import Hostile, context
    with Hostile("tls-absurd-certs", 443, tls={"chain": sys.argv[1], "key": sys.argv[2]}) as h:
        [obs] = scan.run(context(h.address, 443, "https", "tls.scan", timeout=30))
    print(json.dumps(obs.data))
""")


def test_absurd_chain_is_read_bounded_and_quietly(tmp_path):
    chain, key = absurd_chain(tmp_path)
    p = subprocess.run([sys.executable, "-c", SCAN, str(chain), str(key)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    data = json.loads(p.stdout)
    cert = data["certificate"]
    assert (cert["chain_length"], cert["serial"], cert["not_before"], cert["not_after"], cert["expired"]) == (
        50, "-5", "1950-01-01T00:00:00Z", "9999-12-31T23:59:59Z", False)
    assert (cert["chain_trusted"], cert["chain_error"], cert["hostname_match"]) == (False, "chain too long", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = x509.load_pem_x509_certificates(chain.read_bytes())[0].subject.rfc4514_string()
    assert len(full) > ABSURD_CN_CHARS
    assert cert["subject"] == full[:1024] + f"... ({len(full)} characters)"
    assert cert["issuer"].startswith("CN=hostile CA 1 \\<b\\>1\\</b\\>,OU=\x1b[2J")
    assert len(cert["san_dns"]) == 40
    assert sorted(data["versions"]["TLSv1.3"]) == ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                                   "TLS_CHACHA20_POLY1305_SHA256"]
