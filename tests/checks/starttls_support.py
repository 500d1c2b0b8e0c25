"""Real STARTTLS servers for the tls.scan tests, each on a loopback address of its own and a high port:
aiosmtpd (SMTP), vsftpd (FTP), dovecot (IMAP and POP3) with private configurations; never a system service.
Every server is stopped by the test that started it."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

from tests.loopback import stop_process, wait_port


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _need(binary: str, package: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else "")
    if not path:
        raise RuntimeError(f"{binary} missing: apt-get install -y {package}")
    return path


# ---------------------------------------------------------------- SMTP: aiosmtpd

# The SMTP server's TLS: TLS 1.0 and up, three TLS <= 1.2 suites; TLS 1.3 keeps OpenSSL's three defaults
# (Python's ssl cannot narrow them). What tls.scan must report for it:
SMTP_CIPHERS = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA:AES256-SHA:@SECLEVEL=0"
SMTP_VERSIONS = {
    "SSLv2": [], "SSLv3": [],
    "TLSv1.0": ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA"],
    "TLSv1.1": ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA"],
    "TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_256_CBC_SHA"],
    "TLSv1.3": ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"],
}


def smtp_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():          # TLS 1.0 on purpose: the legacy-protocol finding through STARTTLS
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers(SMTP_CIPHERS)
    ctx.load_cert_chain(cert, key)
    return ctx


@contextlib.contextmanager
def smtp_server(address: str, tls: ssl.SSLContext | None) -> Iterator[int]:
    """aiosmtpd offering STARTTLS with `tls`, or no STARTTLS at all when None; yields the port."""
    from aiosmtpd.controller import Controller

    # aiosmtpd logs every aborted handshake (our probes abort them all) with a traceback: keep the output clean
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)

    class Handler:
        pass

    port = free_port(address)
    # A Postfix-like banner: nmap -sV then matches at once; with aiosmtpd's own ("Python SMTP") it only
    # soft-matches and waits out every further probe (30 s per scan).
    ctl = Controller(Handler(), hostname=address, port=port, tls_context=tls, require_starttls=False,
                     server_hostname="mail.test", ident="ESMTP Postfix (Debian/GNU)")
    ctl.start()
    try:
        yield port
    finally:
        ctl.stop()


# ---------------------------------------------------------------- FTP: vsftpd

# vsftpd with TLS 1.2+ and two suites (TLS 1.3 keeps OpenSSL's defaults).
FTP_VERSIONS = {
    "SSLv2": [], "SSLv3": [], "TLSv1.0": [], "TLSv1.1": [],
    "TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA"],
    "TLSv1.3": ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"],
}


@contextlib.contextmanager
def vsftpd(tmp: Path, address: str, cert: tuple[Path, Path] | None) -> Iterator[int]:
    """vsftpd in the foreground with a private configuration: AUTH TLS when `cert` is given, else plain FTP
    (as the lab pump's). Pick a high port of its own."""
    binary = _need("vsftpd", "vsftpd")
    port = free_port(address)
    d = tmp / f"vsftpd-{address}-{port}"
    (d / "empty").mkdir(parents=True)
    (d / "root").mkdir()
    conf = ["listen=YES", "listen_ipv6=NO", f"listen_address={address}", f"listen_port={port}", "background=NO",
            "anonymous_enable=YES", "no_anon_password=YES", f"anon_root={d / 'root'}", "local_enable=NO",
            "write_enable=NO", "xferlog_enable=NO", f"vsftpd_log_file={d / 'vsftpd.log'}",
            f"secure_chroot_dir={d / 'empty'}", "pam_service_name=vsftpd", "seccomp_sandbox=NO", "isolate=NO",
            "isolate_network=NO"]
    if cert:
        conf += ["ssl_enable=YES", "allow_anon_ssl=YES", f"rsa_cert_file={cert[0]}",
                 f"rsa_private_key_file={cert[1]}", "ssl_sslv2=NO", "ssl_sslv3=NO", "ssl_tlsv1=NO",
                 "ssl_ciphers=ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA"]
    else:
        conf += ["ssl_enable=NO"]
    (d / "vsftpd.conf").write_text("\n".join(conf) + "\n")
    proc = subprocess.Popen([binary, str(d / "vsftpd.conf")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(address, port)
        yield port
    finally:
        stop_process(proc)


# ---------------------------------------------------------------- IMAP and POP3: dovecot

DOVECOT_VERSIONS = {
    "SSLv2": [], "SSLv3": [], "TLSv1.0": [], "TLSv1.1": [],
    "TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_CBC_SHA"],
    "TLSv1.3": ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"],
}


@contextlib.contextmanager
def dovecot(tmp: Path, address: str, cert: tuple[Path, Path] | None) -> Iterator[dict[str, int]]:
    """dovecot in the foreground with a private configuration (own base_dir, instance name, log file),
    IMAP and POP3 on high ports of `address`, STARTTLS when `cert` is given; yields {"imap": p, "pop3": p}."""
    binary = _need("dovecot", "dovecot-imapd dovecot-pop3d")
    ports = {"imap": free_port(address), "pop3": free_port(address)}
    d = tmp / f"dovecot-{address}-{ports['imap']}"
    for sub in ("run", "state", "home"):
        (d / sub).mkdir(parents=True)
    tls = (f"ssl = yes\nssl_cert = <{cert[0]}\nssl_key = <{cert[1]}\nssl_min_protocol = TLSv1.2\n"
           "ssl_cipher_list = ECDHE-RSA-AES256-GCM-SHA384:AES128-SHA\n") if cert else "ssl = no\n"
    (d / "dovecot.conf").write_text(f"""protocols = imap pop3
listen = {address}
base_dir = {d / 'run'}
state_dir = {d / 'state'}
log_path = {d / 'dovecot.log'}
instance_name = tcmscan-test-{address}-{ports['imap']}
{tls}disable_plaintext_auth = {'yes' if cert else 'no'}
auth_mechanisms = plain
# upstream's greeting: nmap -sV matches it at once (Debian's "Dovecot (Debian) ready." only soft-matches)
login_greeting = Dovecot ready.
passdb {{
  driver = static
  args = password=unused-test-password
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d / 'home'}
}}
service imap-login {{
  inet_listener imap {{
    port = {ports['imap']}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports['pop3']}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""")
    proc = subprocess.Popen([binary, "-F", "-c", str(d / "dovecot.conf")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(address, ports["imap"])
        wait_port(address, ports["pop3"])
        yield ports
    finally:
        stop_process(proc)
