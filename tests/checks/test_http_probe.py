"""http.probe and the rules crypto.cleartext.http-admin / crypto.tls.no-hsts against a real nginx on loopback
addresses of their own, configured like the lab's web plants (pump, portal, his, hardened) plus two more
cases (a password form behind a same-host redirect, a short HSTS max-age). Scans go through the real CLI.
The servers listen on 80/443/8080, or on free ports passed to the scan (--ports) where those are taken on this
machine; the expected URLs follow.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import observations, scan
from tests.loopback import pick_port, wait_port

NGINX = "/usr/sbin/nginx"
PAGE = 'default_type text/html; return 200 "<html><head><title>{}</title></head><body>{}</body></html>\\n";'
SERVERS = """
  # pump: plain-HTTP device console with HTTP Basic (file served after the auth phase, as in the lab)
  server {{ listen 127.44.4.23:{http}; root {tmp}/www;
           location / {{ auth_basic "Infusion Pump Console"; auth_basic_user_file {tmp}/htpasswd; index index.html; }} }}
  # portal: 80 redirects to https; 443 without HSTS
  server {{ listen 127.44.4.40:{http}; return 301 https://$host{https_suffix}$request_uri; }}
  server {{ listen 127.44.4.40:{https} ssl; ssl_certificate {tmp}/good.crt; ssl_certificate_key {tmp}/good.key;
           location / {{ {portal} }} }}
  # hardened: HSTS one year
  server {{ listen 127.44.4.50:{https} ssl; ssl_certificate {tmp}/good.crt; ssl_certificate_key {tmp}/good.key;
           ssl_protocols TLSv1.2 TLSv1.3;
           add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;
           location / {{ {lis} }} }}
  # a short HSTS (10 minutes)
  server {{ listen 127.44.4.51:{https} ssl; ssl_certificate {tmp}/good.crt; ssl_certificate_key {tmp}/good.key;
           add_header Strict-Transport-Security "max-age=600" always; location / {{ {lis} }} }}
  # his: TLS 1.0/1.1 only with a 1024-bit SHA-1 certificate, no HSTS (python ssl must still get the page)
  server {{ listen 127.44.4.10:{https} ssl; ssl_certificate {tmp}/weak.crt; ssl_certificate_key {tmp}/weak.key;
           ssl_protocols TLSv1 TLSv1.1; ssl_ciphers "ECDHE-RSA-AES128-SHA:AES128-SHA:@SECLEVEL=0";
           location / {{ {his} }} }}
  # plain HTTP on 8080 redirecting to a login form on the same host
  server {{ listen 127.44.4.61:{alt}; location = / {{ return 302 /login; }} location /login {{ {login} }} }}
"""


HOSTS = ["127.44.4.10", "127.44.4.23", "127.44.4.40", "127.44.4.50", "127.44.4.51", "127.44.4.61"]


def url(scheme: str, address: str, port: int, path: str = "/") -> str:
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{address}{'' if port == default else f':{port}'}{path}"


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    """Starts nginx; yields the ports it serves: {"http": 80, "https": 443, "alt": 8080} or free ones."""
    if not Path(NGINX).exists() or not shutil.which("openssl"):
        pytest.skip("needs nginx-light and openssl (Debian packages)")
    ports = {"http": pick_port(HOSTS, 80), "https": pick_port(HOSTS, 443), "alt": pick_port(["127.44.4.61"], 8080)}
    tmp = tmp_path_factory.mktemp("nginx")
    for name, args in (("weak", ["rsa:1024", "-sha1"]), ("good", ["rsa:2048"])):
        subprocess.run(["openssl", "req", "-x509", "-newkey", args[0], *args[1:], "-nodes", "-subj", f"/CN={name}",
                        "-days", "30", "-keyout", str(tmp / f"{name}.key"), "-out", str(tmp / f"{name}.crt")],
                       check=True, capture_output=True)
    pw = subprocess.run(["openssl", "passwd", "-apr1", "-salt", "pumplab1", "admin"], check=True,
                        capture_output=True, text=True).stdout.strip()
    (tmp / "htpasswd").write_text(f"admin:{pw}\n")
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_text("<html><title>Infusion Pump Console</title></html>\n")
    (tmp / "t").mkdir()
    servers = SERVERS.format(
        tmp=tmp, **ports, https_suffix="" if ports["https"] == 443 else f":{ports['https']}", portal=PAGE.format("Portal", "patients"), lis=PAGE.format("LIS", "lab"),
        his=PAGE.format("HIS", "HIS login"),
        login=PAGE.format("Login", "<form method=post><INPUT name=u><INPUT TYPE='password' name=p></form>"))
    conf = tmp / "nginx.conf"
    conf.write_text(f"worker_processes 1; master_process off; daemon off; pid {tmp}/nginx.pid;\n"
                    f"error_log {tmp}/error.log; events {{ worker_connections 64; }}\n"
                    f"http {{ access_log off; client_body_temp_path {tmp}/t; proxy_temp_path {tmp}/t;\n"
                    f"fastcgi_temp_path {tmp}/t; uwsgi_temp_path {tmp}/t; scgi_temp_path {tmp}/t;\n{servers}}}\n")
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for a, p in (("127.44.4.23", ports["http"]), ("127.44.4.40", ports["https"]), ("127.44.4.61", ports["alt"])):
            wait_port(a, p)
        yield ports
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def http_scan(nginx, tmp_path_factory):
    db = tmp_path_factory.mktemp("httpscan") / "scan.db"
    extra = ["--no-ping"] + [a for p in nginx.values() for a in ("--ports", str(p))]
    scan_id, found = scan(HOSTS, scope=["127.44.4.0/24"], db=db, checks=["http.probe"], extra=extra)
    # Only our ports: a web server of another process listening on every address (*:80) shows on ours too.
    ours = set(nginx.values())
    obs = {(o["address"], o["port"]): o["data"] for o in observations(db, scan_id)
           if o["check_id"] == "http.probe" and o["port"] in ours}
    return nginx, [f for f in found if f["port"] in ours], obs


def test_findings_exact(http_scan):
    ports, found, _ = http_scan
    http, https, alt = ports["http"], ports["https"], ports["alt"]
    assert {(f["address"], f["rule_id"], f["port"], f["severity"]) for f in found} == {
        ("127.44.4.23", "crypto.cleartext.http-admin", http, "high"),    # Basic auth over plain HTTP
        ("127.44.4.61", "crypto.cleartext.http-admin", alt, "high"),     # password form after a redirect
        ("127.44.4.10", "crypto.tls.no-hsts", https, "medium"),          # legacy TLS, no HSTS
        ("127.44.4.40", "crypto.tls.no-hsts", https, "medium"),          # portal, no HSTS
        ("127.44.4.51", "crypto.tls.no-hsts", https, "medium"),          # HSTS max-age 600 < 180 days
    } | {(a, "hardening.http-version-disclosure", p, "low") for a, p in (   # nginx's default server_tokens on
        ("127.44.4.10", https), ("127.44.4.23", http), ("127.44.4.40", http), ("127.44.4.40", https),
        ("127.44.4.50", https), ("127.44.4.51", https), ("127.44.4.61", alt))}
    ev = {(f["address"], f["rule_id"]): f["evidence"] for f in found}
    assert ev[("127.44.4.23", "crypto.cleartext.http-admin")] == {
        "url": url("http", "127.44.4.23", http), "status": 401, "auth": ["Basic realm=Infusion Pump Console"],
        "password_form": False, "redirect": ""}
    assert ev[("127.44.4.51", "crypto.tls.no-hsts")]["hsts"] == "max-age=600"


def test_observations(http_scan):
    ports, _, obs = http_scan
    http, https, alt = ports["http"], ports["https"], ports["alt"]
    assert set(obs) == {("127.44.4.10", https), ("127.44.4.23", http), ("127.44.4.40", http), ("127.44.4.40", https),
                        ("127.44.4.50", https), ("127.44.4.51", https), ("127.44.4.61", alt)}
    portal80 = obs[("127.44.4.40", http)]
    assert (portal80["tls"], portal80["status"], portal80["location"], portal80["redirect_https"]) == \
        (False, 301, url("https", "127.44.4.40", https), True)
    assert portal80["followed"]["url"] == url("https", "127.44.4.40", https) and portal80["followed"]["tls"] is True
    assert portal80["followed"]["title"] == "Portal" and portal80["followed"]["status"] == 200
    assert obs[("127.44.4.50", https)]["hsts"] == {"max_age": 31536000, "include_subdomains": True,
                                                 "preload": False, "raw": "max-age=31536000; includeSubDomains"}
    his = obs[("127.44.4.10", https)]
    assert (his["tls"], his["status"], his["title"], his["hsts"]) == (True, 200, "HIS", None)
    pump = obs[("127.44.4.23", http)]
    assert pump["www_authenticate"] == [{"scheme": "Basic", "realm": "Infusion Pump Console"}]
    assert pump["server"].startswith("nginx/")
    login = obs[("127.44.4.61", alt)]
    assert (login["status"], login["location"], login["redirect_https"]) == \
        (302, url("http", "127.44.4.61", alt, "/login"), False)
    assert login["followed"]["password_form"] is True and login["followed"]["title"] == "Login"
