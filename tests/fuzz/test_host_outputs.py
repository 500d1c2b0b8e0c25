"""What a scanned host prints over SSH (configuration files, command output) as host.snapshot and the backup
checks parse it: a hostile or broken host gets facts or "unavailable", never a crash. Also rsync and NFS
listings read from the network."""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

from checks.backup import _parse as backup
from checks.backup.nfs import parse_showmount
from checks.backup.rsync import parse_listing
from checks.host import _parse_accounts as pa
from checks.host import _parse_auth as pauth
from checks.host import _parse_logs as pl
from checks.host import _parse_sshd as ps
from checks.host import _parse_system as psys
from checks.host._collect import Read, parse_files
from tests.fuzz import bounded, fuzz

DEFAULTS = {"minlen": 6, "deny": 0, "unlock_time": 600}
PIECES = ("auth required pam_faillock.so deny=", "password requisite pam_pwquality.so minlen=", "TMOUT=",
          "*.* @@", "*.* @h:", 'action(type="omfwd" target="h" port="', "Inst x [1] (2 Debian-Security:12/x [a])",
          "rotate ", "maxage ", "weekly", "{", "}", "Match Address ", "@include ", "PermitRootLogin ",
          "root::$1$:1:2:3:4:5:6", "\x1b[31m", "\x00", "=", ":", "[", '"', ")", "\u00b2", "\u0663", "9" * 5000,
          "remote_server = h", "port = ", "table inet f {", "-A INPUT -j DROP", "Access: (0640/-rw-r-----)")
TEXT = st.one_of(st.text(max_size=3000), st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
                 st.lists(st.sampled_from(PIECES), max_size=40).map("\n".join))


def _host_parsers(text: str) -> None:
    pauth.parse_login_defs(text)
    conf = pauth.parse_kv_conf(text)
    stack = [{**line, "file": "f"} for line in pauth.parse_pam(text) if "include" not in line]
    pauth.password_quality(stack, conf, pauth.parse_login_defs(text), DEFAULTS)
    pauth.lockout(stack, conf, DEFAULTS)
    pauth.tmout_settings([("/etc/profile", text)])
    ps.derive(ps.parse_sshd_t(text), [])
    parsed = ps.parse_sshd_config({"/etc/ssh/sshd_config": text, "/etc/ssh/x.conf": text})
    ps.derive(parsed["options"], parsed["match_blocks"])
    pa.parse_passwd_meta(text)
    pa.parse_shadow_meta(text)
    pa.parse_lastlog(text)
    for t in pl.rsyslog_targets("f", text) + pl.syslog_ng_targets("f", text) + pl.audisp_remote_target(text, text):
        assert t["port"] is None or 0 <= t["port"] < 100000
    pl.system_log_retention(pl.parse_logrotate({"/etc/logrotate.conf": text}), ["/var/log/syslog"])
    for fn in (psys.nft_ruleset, psys.iptables_rules, psys.apt_simulation, psys.process_names,
               psys.dpkg_installed, psys.stat_line):
        fn(text)
    parse_files(Read("r", True, stdout=text, mark="@@"))


@fuzz
@given(TEXT)
@example('action(type="omfwd" target="h" port="\u00b2")')      # isdigit() but not int()
@example("*.* @@h:" + "1" * 5000)                               # past int()'s 4300-digit limit
def test_host_configuration_and_command_output(text: str) -> None:
    bounded(_host_parsers, text)


def _backup_parsers(text: str) -> None:
    for fn in (backup.restic_snapshots, backup.borg_list, backup.manifest_entries, backup.borg_config,
               backup.check_output, backup.restore_tests, parse_showmount, backup.redact):
        fn(text)
    backup.job_info(text, ["restic", "rsync", "borg"], ["sftp:"])


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                       lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c, max_size=5),
                       max_leaves=40).map(json.dumps)


@fuzz
@given(st.one_of(TEXT, JSONISH))
def test_backup_catalogues_and_listings(text: str) -> None:
    bounded(_backup_parsers, text)
    r = bounded(parse_listing, text.split("\n", 1)[0], text.split("\n")[1:], allowed=(ValueError,))
    assert r is None or len(r["modules"]) <= 500
