"""Real TLS servers on loopback for the tls.scan tests: `openssl s_server` with chosen configs, the lab's
ShangMi responder, and misbehaving servers. Every server binds 127.0.0.1 and is stopped by its test."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from scanner.core.models import Asset, AttemptResult, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv
from tests.helpers import ROOT
from tests.loopback import Scripted, stop_process, wait_port

LOOP = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOP, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- certificates

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                                           serialization.NoEncryption()))
    return path.with_suffix(".crt"), path.with_suffix(".key")


def make_pki(tmp: Path) -> dict[str, tuple[Path, Path]]:
    """ca; legacy (1024-bit, SHA-1, self-signed, 10 days left); expired (CA-signed 2023..2024); good (CA-signed,
    SAN DNS:tls-good.test + IP:127.0.0.1, valid a year)."""
    now = dt.datetime.now(dt.UTC)
    out: dict[str, tuple[Path, Path]] = {}
    ca_key = rsa.generate_private_key(65537, 2048)
    ca = (x509.CertificateBuilder().subject_name(_name("tcmscan test CA")).issuer_name(_name("tcmscan test CA"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out["ca"] = _write(tmp / "ca", ca, ca_key)

    def leaf(name: str, cn: str, nb: dt.datetime, na: dt.datetime, san: list[x509.GeneralName]) -> None:
        key = rsa.generate_private_key(65537, 2048)
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(nb).not_valid_after(na))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        out[name] = _write(tmp / name, b.sign(ca_key, hashes.SHA256()), key)

    leaf("expired", "tls-expired.test", dt.datetime(2023, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
         [x509.DNSName("tls-expired.test")])
    import ipaddress
    leaf("good", "tls-good.test", now - dt.timedelta(days=1), now + dt.timedelta(days=365),
         [x509.DNSName("tls-good.test"), x509.IPAddress(ipaddress.ip_address(LOOP))])
    # cryptography will not sign with SHA-1 any more: the weak certificate comes from the openssl CLI, as in lab/pki.py
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:1024", "-sha1", "-days", "10", "-nodes",
                    "-keyout", str(tmp / "legacy.key"), "-out", str(tmp / "legacy.crt"), "-subj", "/CN=tls-legacy.test"],
                   check=True, capture_output=True)
    out["legacy"] = (tmp / "legacy.crt", tmp / "legacy.key")
    return out


# ---------------------------------------------------------------- servers

# (cert name, s_server options, expected `versions` as tcmscan must report them)
CONFIGS: dict[str, tuple[str, list[str], dict[str, list[str]]]] = {
    "legacy": ("legacy", ["-no_tls1_2", "-no_tls1_3", "-cipher",
                          "ECDHE-RSA-AES128-SHA:AES256-SHA:AECDH-AES128-SHA:@SECLEVEL=0"],
               {"SSLv2": [], "SSLv3": [], "TLSv1.2": [], "TLSv1.3": [],
                "TLSv1.0": ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA",
                            "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"],
                "TLSv1.1": ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA",
                            "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"]}),
    "expired": ("expired", ["-no_tls1", "-no_tls1_1", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
                            "-ciphersuites", "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"],
                {"SSLv2": [], "SSLv3": [], "TLSv1.0": [], "TLSv1.1": [],
                 "TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
                 "TLSv1.3": ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]}),
    "tls13only": ("good", ["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"],
                  {"SSLv2": [], "SSLv3": [], "TLSv1.0": [], "TLSv1.1": [], "TLSv1.2": [],
                   "TLSv1.3": ["TLS_AES_128_GCM_SHA256"]}),
    # everything this OpenSSL build can still do: the broad peer comparison
    "all": ("legacy", ["-cipher", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"], {}),
}


@contextlib.contextmanager
def s_server(pki: dict[str, tuple[Path, Path]], config: str) -> Iterator[int]:
    """`openssl s_server` on 127.0.0.1 with one of CONFIGS; yields the port."""
    if not shutil.which("openssl"):
        raise RuntimeError("openssl CLI missing (Debian package openssl)")
    cert_name, opts, _ = CONFIGS[config]
    crt, key = pki[cert_name]
    port = free_port()
    proc = subprocess.Popen(["openssl", "s_server", "-accept", f"{LOOP}:{port}", "-cert", str(crt), "-key", str(key),
                             "-www", "-quiet", *opts], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(LOOP, port)
        yield port
    finally:
        stop_process(proc)


def load_sm_responder():
    """The lab's ShangMi handshake responder (lab/hosts/sm-gw/sm_responder.py): a named fake of a ShangMi
    server -- no Debian package speaks RFC 8998 or TLCP."""
    spec = importlib.util.spec_from_file_location("sm_responder", ROOT / "lab" / "hosts" / "sm-gw" / "sm_responder.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def sm_responder() -> Iterator[int]:
    mod = load_sm_responder()
    port = free_port()
    srv = mod.Server((LOOP, port), mod.Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield port
    finally:
        srv.shutdown()
        srv.server_close()


class Misbehaving(Scripted):
    """A TCP server on 127.0.0.1 that answers every connection with `behave(conn, first_bytes)`: the
    client's first 64 KiB read (2 s at most), b"" when it sent nothing."""

    def __init__(self, behave: Callable[[socket.socket, bytes], None]) -> None:
        super().__init__(lambda conn, _n, first: behave(conn, first), LOOP, read_first=65536, timeout=2)


# ---------------------------------------------------------------- running the check for real

def attempt(port: int, *, options: dict | None = None, safe_mode: bool = False, timeout: float = 30.0,
            name: str = "tls-test", zone: str = "internet") -> AttemptResult:
    """tls.scan through the runner's own execute_attempt (real sockets; errors recorded as the runner does)."""
    asset = Asset(address=LOOP, name=name, cls="server", zone=zone, services=[Service(port=port, name="https")])
    spec = AttemptSpec(scan_id="t", check_id="tls.scan", asset=asset.to_dict(), port=port, timeout=timeout,
                       safe_mode=safe_mode, options=options or {})
    return execute_attempt(spec, RunEnv(scope=[f"{LOOP}/32"]))


def sslyze_versions(host: str, port: int, *, starttls: str = "", sni: str = "") -> dict[str, list[str]] | str:
    """sslyze's accepted suites per version (its Python API), or its connectivity error as a string. `starttls`
    names sslyze's opportunistic-TLS dialogue (ProtocolWithOpportunisticTlsEnum: "SMTP", "RDP", ...), sent with
    the server name `sni`."""
    from sslyze import (
        ProtocolWithOpportunisticTlsEnum,
        ScanCommand,
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
        ServerScanStatusEnum,
    )

    cmds = {"SSLv2": ScanCommand.SSL_2_0_CIPHER_SUITES, "SSLv3": ScanCommand.SSL_3_0_CIPHER_SUITES,
            "TLSv1.0": ScanCommand.TLS_1_0_CIPHER_SUITES, "TLSv1.1": ScanCommand.TLS_1_1_CIPHER_SUITES,
            "TLSv1.2": ScanCommand.TLS_1_2_CIPHER_SUITES, "TLSv1.3": ScanCommand.TLS_1_3_CIPHER_SUITES}
    network = None
    if starttls:
        network = ServerNetworkConfiguration(tls_server_name_indication=sni,
                                             tls_opportunistic_encryption=ProtocolWithOpportunisticTlsEnum[starttls])
    req = ServerScanRequest(server_location=ServerNetworkLocation(hostname=host, port=port),
                            network_configuration=network, scan_commands=set(cmds.values()))
    scanner = Scanner()
    scanner.queue_scans([req])
    for res in scanner.get_results():
        if res.scan_status != ServerScanStatusEnum.COMPLETED:
            return str(res.connectivity_error_trace)
        out = {}
        for version, cmd in cmds.items():
            attempt_ = getattr(res.scan_result, cmd.value)
            if attempt_.result is None:
                return f"{version}: {attempt_.error_reason}"
            out[version] = sorted(c.cipher_suite.name for c in attempt_.result.accepted_cipher_suites)
        return out
    return "no result"


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    t = time.monotonic()
    out = fn()
    return out, time.monotonic() - t
