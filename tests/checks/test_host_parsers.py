"""Parsers of the host snapshot, on real file samples: the lab's own planted files (lab/hosts/his and the
compliant layer are Debian bookworm files), Debian's stock PAM files, and real `sshd -T` output of this
machine's OpenSSH for those sshd_config files. Garbage never crashes a parser (hypothesis)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.host import _parse_accounts as pa
from checks.host import _parse_auth as pauth
from checks.host import _parse_logs as pl
from checks.host import _parse_sshd as ps
from checks.host import _parse_system as psys
from checks.host._collect import Read, parse_files
from scanner.core.knowledge import knowledge

ROOT = Path(__file__).resolve().parents[2]
HIS = ROOT / "lab/hosts/his/etc"
GOOD = ROOT / "lab/hosts/_compliant/etc"
DEFAULTS = knowledge()["host_software"]["defaults"]

# Debian bookworm's stock /etc/pam.d/common-password and common-auth (libpam-runtime), comments trimmed
DEBIAN_COMMON_PASSWORD = """\
# here are the per-package modules (the "Primary" block)
password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt
# here's the fallback if no module succeeds
password\trequisite\t\t\tpam_deny.so
password\trequired\t\t\tpam_permit.so
"""
DEBIAN_PAM_SSHD = "# PAM configuration for the Secure Shell service\n@include common-auth\naccount required pam_nologin.so\n"
RHEL_SYSTEM_AUTH = """\
auth        required      pam_env.so
auth        required      pam_faillock.so preauth silent audit deny=3 unlock_time=300
auth        sufficient    pam_unix.so try_first_pass nullok
auth        [default=die] pam_faillock.so authfail audit deny=3 unlock_time=300
password    requisite     pam_pwquality.so try_first_pass local_users_only retry=3 authtok_type= dcredit=-1 ucredit=-1 lcredit=-1
password    sufficient    pam_unix.so sha512 shadow nullok try_first_pass use_authtok
"""


def test_login_defs_his_and_compliant():
    his = pauth.parse_login_defs((HIS / "login.defs").read_text())
    assert (his["PASS_MAX_DAYS"], his["PASS_MIN_LEN"], his["ENCRYPT_METHOD"]) == ("99999", "6", "SHA512")
    good = pauth.parse_login_defs((GOOD / "login.defs").read_text())
    assert (good["PASS_MAX_DAYS"], good["PASS_MIN_LEN"], good["UMASK"]) == ("90", "12", "022")
    assert "MAIL_FILE" not in good          # commented out in the file
    assert pauth.to_int("022") == 18 and pauth.to_int("0x10") == 16 and pauth.to_int("99999") == 99999
    assert pauth.to_int("abc") is None and pauth.to_int(None) is None


def test_password_quality_his_debian_stock():
    pam = {"/etc/pam.d/common-password": (HIS / "pam.d/common-password").read_text()}
    stack = pauth.expand_pam(pam, "common-password")
    q = pauth.password_quality(stack, {}, pauth.parse_login_defs((HIS / "login.defs").read_text()), DEFAULTS)
    assert (q["quality_module"], q["min_length"], q["min_classes"]) == (None, 6, 0)
    assert q["min_length_source"] == "pam_unix default (no minlen argument)"
    assert q["pam_unix_args"] == {"obscure": True, "yescrypt": True}
    stock = pauth.expand_pam({"/etc/pam.d/common-password": DEBIAN_COMMON_PASSWORD}, "common-password")
    assert [line["module"] for line in stock] == ["pam_unix", "pam_deny", "pam_permit"]


def test_password_quality_compliant_pwquality_conf_and_args():
    pam = {"/etc/pam.d/common-password": (GOOD / "pam.d/common-password").read_text(),
           "/etc/pam.d/passwd": "@include common-password\n"}
    conf = pauth.parse_kv_conf((GOOD / "security/pwquality.conf").read_text())
    assert conf == {"minlen": "12", "minclass": "3", "enforce_for_root": True}
    q = pauth.password_quality(pauth.expand_pam(pam, "passwd"), conf, None, DEFAULTS)
    assert (q["quality_module"], q["min_length"], q["min_classes"]) == ("pam_pwquality", 12, 3)
    # RHEL style: negative credits make three classes mandatory, default minlen from pwquality(8)
    q = pauth.password_quality(pauth.expand_pam({"/etc/pam.d/system-auth": RHEL_SYSTEM_AUTH}, "system-auth"),
                               {}, None, DEFAULTS)
    assert (q["min_length"], q["min_classes"], q["min_classes_source"]) == (8, 3, "negative credits (pwquality)")


def test_lockout_faillock_compliant_his_and_rhel():
    conf = pauth.parse_kv_conf((GOOD / "security/faillock.conf").read_text())
    pam = {"/etc/pam.d/sshd": DEBIAN_PAM_SSHD, "/etc/pam.d/common-auth": (GOOD / "pam.d/common-auth").read_text()}
    lk = pauth.lockout(pauth.expand_pam(pam, "sshd"), conf, DEFAULTS)
    assert (lk["module"], lk["deny"], lk["unlock_time"]) == ("pam_faillock", 5, 900)
    assert lk["files"] == ["/etc/pam.d/common-auth"]
    his = {"/etc/pam.d/sshd": DEBIAN_PAM_SSHD, "/etc/pam.d/common-auth": (HIS / "pam.d/common-auth").read_text()}
    assert pauth.lockout(pauth.expand_pam(his, "sshd"), None, DEFAULTS)["module"] is None
    rhel = pauth.lockout(pauth.expand_pam({"/etc/pam.d/system-auth": RHEL_SYSTEM_AUTH}, "system-auth"), {}, DEFAULTS)
    assert (rhel["deny"], rhel["unlock_time"], rhel["deny_source"]) == (3, 300, "configured")
    # faillock in the stack with no settings anywhere: pam_faillock(8) defaults, said so
    bare = pauth.lockout(pauth.parse_pam("auth required pam_faillock.so preauth\n") and
                         [{**x, "file": "f"} for x in pauth.parse_pam("auth required pam_faillock.so preauth\n")],
                         {}, DEFAULTS)
    assert (bare["deny"], bare["unlock_time"], bare["deny_source"]) == (3, 600, "default")


def test_tmout_readonly_and_order():
    tm = pauth.tmout_settings([("/etc/profile", "umask 022\n"),
                               ("/etc/profile.d/tmout.sh", (GOOD / "profile.d/tmout.sh").read_text()),
                               ("/etc/bash.bashrc", "TMOUT=0\n")])
    assert (tm["effective"], tm["effective_source"], tm["readonly"]) == (900, "/etc/profile.d/tmout.sh:2", True)
    assert [s["value"] for s in tm["settings"]] == [900, 0]
    tm = pauth.tmout_settings([("/etc/profile", "export TMOUT=3600\n# TMOUT=60\n"), ("/etc/bash.bashrc", "")])
    assert (tm["effective"], tm["readonly"]) == (3600, False)
    assert pauth.tmout_settings([])["effective"] is None


@pytest.mark.skipif(not shutil.which("sshd") and not Path("/usr/sbin/sshd").exists(), reason="needs OpenSSH sshd")
@pytest.mark.parametrize("host", ["his", "_compliant", "core-switch", "backup"])
def test_sshd_t_real_output_of_lab_configs(host, tmp_path):
    cfg = ROOT / "lab/hosts" / host / "etc/ssh/sshd_config"
    # sshd -T loads the host keys: point HostKey at keys made here, keep every other line as planted
    keys = []
    for kind in ("ed25519", "rsa"):
        key = tmp_path / f"key_{kind}"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True, timeout=30)
        keys.append(f"HostKey {key}")
    lines = [line for line in cfg.read_text().splitlines() if not line.startswith(("HostKey ", "RequiredRSASize"))]
    test_cfg = tmp_path / "sshd_config"
    test_cfg.write_text("\n".join(keys + lines) + "\n")
    Path("/run/sshd").mkdir(exist_ok=True)   # sshd -T insists on its privilege-separation directory
    out = subprocess.run(["/usr/sbin/sshd", "-T", "-f", str(test_cfg)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    opts = ps.parse_sshd_t(out.stdout)
    files = {"/etc/ssh/sshd_config": cfg.read_text()}
    d = ps.derive(opts, ps.match_blocks(files))
    # the same facts from the file parser (fallback when sshd -T cannot run)
    fb_opts, assumed = ps.with_defaults(ps.parse_sshd_config(files)["options"], DEFAULTS["sshd"])
    fb = ps.derive(fb_opts, ps.match_blocks(files))
    if host == "his":
        assert (opts["permitrootlogin"], opts["passwordauthentication"]) == ("yes", "yes")
        assert (d["password_login"], d["key_required"], d["source_limits"], d["client_alive_timeout"]) == \
            (True, False, [], None)
        assert (fb["permit_root_login"], fb["password_login"], fb["source_limits"]) == ("yes", True, [])
        assert "clientaliveinterval" in assumed
    else:
        users = {"_compliant": ["root@10.77.0.1"], "core-switch": ["root@10.77.0.1"],
                 "backup": ["root@10.77.0.1", "restic@10.77.0.50"]}[host]
        assert opts["allowusers"] == users
        assert d["source_limits"] == [f"AllowUsers {u}" for u in users]
        assert (d["password_login"], d["permit_root_login"], d["client_alive_timeout"]) == \
            (False, "without-password", 600)
        assert (fb["password_login"], fb["source_limits"], fb["client_alive_timeout"]) == \
            (False, d["source_limits"], 600)


def test_sshd_config_include_first_value_wins_and_match_blocks():
    files = {"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n"
                                     "PermitRootLogin yes\nMatch Address 10.0.0.0/8\n  PasswordAuthentication yes\n",
             "/etc/ssh/sshd_config.d/50-site.conf": "PasswordAuthentication no\nAuthenticationMethods publickey,password\n"}
    parsed = ps.parse_sshd_config(files)
    assert parsed["options"]["passwordauthentication"] == "no"
    assert parsed["match_blocks"][0]["criteria"] == "Address 10.0.0.0/8"
    d = ps.derive(ps.with_defaults(parsed["options"], DEFAULTS["sshd"])[0], parsed["match_blocks"])
    # kbd-interactive defaults to yes but UsePAM defaults to no: no password path; publickey required anyway
    assert (d["password_login"], d["key_required"], d["source_limits"]) == (False, True, ["Match Address 10.0.0.0/8"])
    d = ps.derive({"listenaddress": ["10.77.0.5:22", "[::]:22"], "usepam": "yes",
                   "kbdinteractiveauthentication": "yes"}, [])
    assert (d["password_login"], d["source_limits"]) == (True, ["ListenAddress 10.77.0.5:22"])


PASSWD_SAMPLE = """\
root::x:0:0:/root:/bin/bash
daemon::x:1:1:/usr/sbin:/usr/sbin/nologin
hisadmin::x:1000:1000:/home/hisadmin:/bin/bash
toor::x:0:0:/root:/bin/bash
nurse::x:1001:1001:/home/nurse:/bin/bash
legacy::$1$:1002:1002:/home/legacy:/bin/sh
"""
SHADOW_SAMPLE = """\
root::$6$:20000:0:99999:7::
daemon:L:none:19000:0:99999:7::
hisadmin::$1$:20000:0:99999:7::
toor::$6$:20000:0:99999:7::
nurse::empty:20000:0:99999:7::
restic:L:none:20000::::::
leak::$6$salt$Hash:20000:0:99999:7::
"""


def test_passwd_and_shadow_metadata_never_keep_a_hash():
    users = pa.parse_passwd_meta(PASSWD_SAMPLE)
    assert [(u["user"], u["uid"], u["interactive"], u["passwd_field"]) for u in users] == [
        ("root", 0, True, "x"), ("daemon", 1, False, "x"), ("hisadmin", 1000, True, "x"), ("toor", 0, True, "x"),
        ("nurse", 1001, True, "x"), ("legacy", 1002, True, "$1$")]
    sh = {s["user"]: s for s in pa.parse_shadow_meta(SHADOW_SAMPLE)}
    assert sh["hisadmin"]["algorithm"] == "$1$" and sh["nurse"]["empty"] is True
    assert sh["daemon"]["locked"] is True and sh["daemon"]["empty"] is False
    assert (sh["root"]["last_change"], sh["root"]["max_days"]) == (20000, 99999)
    assert "leak" not in sh and "restic" not in sh      # not the shape our awk prints: dropped


def test_awk_programs_print_only_prefixes(tmp_path):     # awk: mawk, Priority required on every Debian
    """The exact awk programs the check runs on a host, on a real shadow-format file."""
    shadow = tmp_path / "shadow"
    md5 = subprocess.run(["openssl", "passwd", "-1", "-salt", "hislab01", "his123456"], capture_output=True,
                         text=True).stdout.strip()
    sha = subprocess.run(["openssl", "passwd", "-6", "-salt", "labhisroot", "x"], capture_output=True,
                         text=True).stdout.strip()
    shadow.write_text(f"root:{sha}:20000:0:99999:7:::\nhisadmin:{md5}:20000:0:99999:7:::\nnurse::20000:0:99999:7:::\n"
                      f"daemon:*:19000:0:99999:7:::\nlocked:!{sha}:20000:0:99999:7:::\nold:abcdefghijklm:1::::::\n")
    cmd = pa.SHADOW_CMD.replace("/etc/shadow", str(shadow))
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=10).stdout
    assert "hislab01" not in out and sha.split("$")[3] not in out
    meta = {s["user"]: (s["locked"], s["algorithm"]) for s in pa.parse_shadow_meta(out)}
    assert meta == {"root": (False, "$6$"), "hisadmin": (False, "$1$"), "nurse": (False, "empty"),
                    "daemon": (True, "none"), "locked": (True, "$6$"), "old": (False, "des")}


def test_lastlog():
    text = ("Username         Port     From                                       Latest\n"
            "root             pts/0    10.77.0.1                                 Fri Nov 21 23:54:01 +0000 2025\n"
            "daemon                                                              **Never logged in**\n"
            "hisadmin         pts/1    10.77.0.1                                 Mon Jan  6 08:00:00 +0800 2025\n")
    last = pa.parse_lastlog(text)
    assert last["daemon"] is None
    assert last["root"] == dt.datetime(2025, 11, 21, 23, 54, 1, tzinfo=dt.UTC)
    assert last["hisadmin"].isoformat() == "2025-01-06T08:00:00+08:00"


def test_rsyslog_targets_compliant_and_action_syntax():
    t = pl.rsyslog_targets("/etc/rsyslog.d/50-remote.conf", (GOOD / "rsyslog.d/50-remote.conf").read_text())
    assert [(x["target"], x["port"], x["protocol"]) for x in t] == [("10.77.0.30", 514, "tcp")]
    text = ('# *.* @commented:514\nauth,authpriv.* @loghost.hospital\n'
            'action(type="omfwd" target="10.1.2.3" port="6514" protocol="tcp"\n  StreamDriver="gtls")\n'
            '*.* action(type="omfile" file="/var/log/x")\n')
    t = pl.rsyslog_targets("/etc/rsyslog.conf", text)
    assert [(x["target"], x["port"], x["protocol"]) for x in t] == [("loghost.hospital", 514, "udp"),
                                                                    ("10.1.2.3", 6514, "tcp")]
    ng = pl.syslog_ng_targets("/etc/syslog-ng/syslog-ng.conf",
                              'destination d_net { network("10.9.9.9" port(514) transport("tcp")); };\n')
    assert [(x["daemon"], x["target"]) for x in ng] == [("syslog-ng", "10.9.9.9")]
    assert pl.audisp_remote_target("remote_server = 10.5.5.5\nport = 60\n", "active = yes\n")[0]["target"] == "10.5.5.5"
    assert pl.audisp_remote_target("remote_server = 10.5.5.5\n", "active = no\n") == []


def test_logrotate_his_and_compliant():
    # his: global weekly/rotate 4, Debian's stock logrotate.d files but rsyslog's purged -> default 28 days
    files = {"/etc/logrotate.conf": (HIS / "logrotate.conf").read_text(),
             "/etc/logrotate.d/apt": "/var/log/apt/term.log {\n  rotate 12\n  monthly\n  compress\n  missingok\n}\n"}
    parsed = pl.parse_logrotate(files)
    assert parsed["default"]["days"] == 28
    r = pl.system_log_retention(parsed, ["/var/log/syslog", "/var/log/auth.log"])
    assert (r["effective_days"], r["logs"]) == (28, [])
    files = {"/etc/logrotate.conf": (GOOD / "logrotate.conf").read_text(),
             "/etc/logrotate.d/rsyslog": (GOOD / "logrotate.d/rsyslog").read_text()}
    r = pl.system_log_retention(pl.parse_logrotate(files), ["/var/log/syslog", "/var/log/auth.log"])
    assert r["effective_days"] == 182 and [x["log"] for x in r["logs"]] == ["/var/log/syslog", "/var/log/auth.log"]
    # daily + rotate 7 in a block beats a generous default; maxage caps; postrotate scripts skipped
    files = {"/etc/logrotate.conf": "monthly\nrotate 12\ninclude /etc/logrotate.d\n",
             "/etc/logrotate.d/x": "/var/log/syslog\n/var/log/auth.log\n{\n daily\n rotate 400\n maxage 90\n"
                                   " postrotate\n  rotate 1\n endscript\n}\n"}
    r = pl.system_log_retention(pl.parse_logrotate(files), ["/var/log/auth.log"])
    assert r["effective_days"] == 90


def test_firewall_apt_ps_stat():
    nft = ("table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
           "\t\tct state established,related accept\n\t\ttcp dport 22 ip saddr 10.77.0.1 accept\n\t}\n}\n")
    assert psys.nft_ruleset(nft) == {"tool": "nft", "tables": 1, "chains": 1, "rules": 2, "input_policy": "drop"}
    assert psys.nft_ruleset("")["rules"] == 0
    ipt = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
    assert (psys.iptables_rules(ipt)["rules"], psys.iptables_rules(ipt)["input_policy"]) == (0, "accept")
    sim = ("NOTE: This is only a simulation!\n"
           "Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])\n"
           "Inst tzdata [2024a-0+deb12u1] (2024b-0+deb12u1 Debian:12.7/stable [all])\n"
           "Conf libssl3 (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])\n")
    got = psys.apt_simulation(sim)
    assert [(p["package"], p["security"]) for p in got] == [("libssl3", True), ("tzdata", False)]
    assert psys.security_lists("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages\n"
                               "security.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages\n"
                               ) == ["security.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"]
    assert psys.process_names("sshd\n[kworker/0:1]\nrsyslogd\nsshd\n") == ["rsyslogd", "sshd"]
    assert psys.dpkg_installed("rsyslog\tinstall ok installed\nauditd\tunknown ok not-installed\n") == ["rsyslog"]
    assert psys.stat_line("640 root shadow\n") == {"mode": 0o640, "mode_octal": "0640", "owner": "root",
                                                   "group": "shadow"}
    assert psys.stat_line("-rw-r--r-- 1 0 42 1024 Jan 1 00:00 /etc/shadow")["mode"] == 0o644


def test_parse_files_markers_and_unreadable():
    r = Read("read", True, stdout="M@F BEGIN /etc/a\nx=1\n\nM@F END /etc/a\nM@F MISSING /etc/b\n"
                                  "M@F MISSING /etc/x.d/*.conf\n", mark="M@")
    assert parse_files(r) == {"/etc/a": "x=1", "/etc/b": None}
    r = Read("read", True, stdout="M@F UNREADABLE /etc/shadow\n", mark="M@")
    assert parse_files(r) == "permission denied: /etc/shadow"
    assert parse_files(Read("read", False, reason="command not found (missing: cat)")) == \
        "command not found (missing: cat)"


TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=3000)
LINES = st.lists(st.sampled_from(["auth required pam_faillock.so deny=", "password requisite pam_pwquality.so minlen=",
                                  "TMOUT=", "*.* @@", "Inst x [1] (2 Debian-Security:12/x [a])", "rotate ", "weekly",
                                  "{", "}", "Match Address ", "@include ", "PermitRootLogin ", "root::$1$:1:2:3:4:5:6",
                                  "\x1b[31m", "\x00", "=", ":", "[", '"', "action(type=\"omfwd\" target=\""]),
                 max_size=60).map("\n".join)


@settings(max_examples=150, deadline=1000)
@given(st.one_of(TEXT, LINES))
def test_parsers_never_crash_on_garbage(text):
    pauth.parse_login_defs(text)
    conf = pauth.parse_kv_conf(text)
    stack = [{**line, "file": "f"} for line in pauth.parse_pam(text) if "include" not in line]
    pauth.password_quality(stack, conf, pauth.parse_login_defs(text), DEFAULTS)
    pauth.lockout(stack, conf, DEFAULTS)
    pauth.tmout_settings([("/etc/profile", text)])
    opts = ps.parse_sshd_t(text)
    ps.derive(opts, [])
    parsed = ps.parse_sshd_config({"/etc/ssh/sshd_config": text, "/etc/ssh/x.conf": text})
    ps.derive(parsed["options"], parsed["match_blocks"])
    for u in pa.parse_passwd_meta(text) + pa.parse_shadow_meta(text):
        assert u.get("algorithm", u.get("passwd_field")) in ("empty", "none", "x", "des", "unknown") or \
            u.get("algorithm", u.get("passwd_field", "")).count("$") == 2
    pa.parse_lastlog(text)
    pl.rsyslog_targets("f", text)
    pl.syslog_ng_targets("f", text)
    pl.system_log_retention(pl.parse_logrotate({"/etc/logrotate.conf": text}), ["/var/log/syslog"])
    psys.nft_ruleset(text)
    psys.iptables_rules(text)
    psys.apt_simulation(text)
    psys.process_names(text)
    psys.dpkg_installed(text)
    psys.stat_line(text)
    parse_files(Read("r", True, stdout=text, mark="@@"))
