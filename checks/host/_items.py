"""The snapshot's items: which reads each observation key needs and the facts it keeps.

Reads are cached on the Snapshot so a file or command shared by several keys (processes, sshd, shadow)
crosses the network once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from checks.host import _parse_accounts as pa
from checks.host import _parse_auth as pauth
from checks.host import _parse_logs as pl
from checks.host import _parse_sshd as ps
from checks.host import _parse_system as psys
from checks.host._collect import Collector, Read, Section, file_reader, parse_files

PAM_FILES = ["/etc/pam.d/common-password", "/etc/pam.d/common-auth", "/etc/pam.d/common-account",
             "/etc/pam.d/system-auth", "/etc/pam.d/password-auth", "/etc/pam.d/passwd", "/etc/pam.d/sshd",
             "/etc/pam.d/login"]
SHELL_FILES = ["/etc/profile", "/etc/profile.d/*.sh", "/etc/bash.bashrc", "/etc/bashrc"]
RSYSLOG_FILES = ["/etc/rsyslog.conf", "/etc/rsyslog.d/*.conf"]
SYSLOG_NG_FILES = ["/etc/syslog-ng/syslog-ng.conf", "/etc/syslog-ng/conf.d/*.conf"]
AUDISP_FILES = ["/etc/audit/audisp-remote.conf", "/etc/audit/plugins.d/au-remote.conf",
                "/etc/audisp/plugins.d/au-remote.conf"]
WORLD_WRITABLE_MAX = 200
LOCAL_TARGETS = ("127.", "localhost", "::1", "0:0:0:0:0:0:0:1")


def sections(k: dict[str, Any]) -> list[Section]:
    """Everything the snapshot reads, as one batch."""
    pkgs = sorted({p for table in ("audit_daemons", "time_sync", "antimalware")
                   for v in k.get(table, {}).values() for p in v.get("packages", [])}
                  | set(k.get("firewall_packages", [])))
    sigs = sorted({v["signatures"] for v in k.get("antimalware", {}).values() if v.get("signatures")})
    f = file_reader
    return [
        Section("system", "uname -n; uname -r; id -u; date +%s; "
                "if [ -d /run/systemd/system ]; then echo systemd; else echo other; fi",
                label="uname -n; uname -r; id -u; date +%s; systemd?"),
        Section("os-release", f(["/etc/os-release"]), label="read /etc/os-release"),
        Section("sshd-t", "sshd -T", needs=("sshd",)),
        Section("sshd-config", f(["/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/*.conf"]),
                label="read /etc/ssh/sshd_config*"),
        Section("login.defs", f(["/etc/login.defs"]), label="read /etc/login.defs"),
        Section("pam", f(PAM_FILES), label="read /etc/pam.d/*"),
        Section("pwquality", f(["/etc/security/pwquality.conf", "/etc/security/pwquality.conf.d/*.conf"]),
                label="read /etc/security/pwquality.conf*"),
        Section("faillock", f(["/etc/security/faillock.conf"]), label="read /etc/security/faillock.conf"),
        Section("shell", f(SHELL_FILES), label="read /etc/profile, /etc/profile.d/*.sh, /etc/bash.bashrc"),
        Section("passwd", pa.PASSWD_CMD, needs=("awk",), label="awk /etc/passwd (metadata)"),
        Section("shadow", pa.SHADOW_CMD, needs=("awk",), label="awk /etc/shadow (hash algorithm prefix only)"),
        Section("lastlog", "lastlog", needs=("lastlog",)),
        Section("ps", "ps -eo comm= 2>/dev/null || cat /proc/[0-9]*/comm", label="ps -eo comm= (or /proc/*/comm)"),
        Section("units", "[ -d /run/systemd/system ] || exit 0; "
                "systemctl list-units --type=service --state=running --no-legend --plain --no-pager",
                label="systemctl list-units --state=running"),
        Section("packages", "dpkg-query -W -f='${Package}\\t${Status}\\n' " + " ".join(pkgs) + " 2>/dev/null",
                needs=("dpkg-query",), ok_status=(0, 1), label="dpkg-query -W <audit, time, anti-malware, firewall>"),
        Section("rsyslog", f(RSYSLOG_FILES), label="read /etc/rsyslog.conf, /etc/rsyslog.d/*.conf"),
        Section("syslog-ng", f(SYSLOG_NG_FILES), label="read /etc/syslog-ng/*"),
        Section("audisp", f(AUDISP_FILES), label="read audisp-remote configuration"),
        Section("logrotate", f(["/etc/logrotate.conf", "/etc/logrotate.d/*"]),
                label="read /etc/logrotate.conf, /etc/logrotate.d/*"),
        Section("nft", "nft list ruleset", needs=("nft",)),
        Section("iptables", "iptables -S", needs=("iptables",)),
        Section("apt-lists", "ls -1 /var/lib/apt/lists", needs=("apt-get",)),
        Section("apt-index-age", "stat -c %Y /var/lib/apt/lists/*security*Packages 2>/dev/null; true",
                label="stat -c %Y /var/lib/apt/lists/*security*Packages"),
        # only where a security index exists (exit 3 otherwise): a simulation, nothing is installed
        Section("apt-sim", "ls /var/lib/apt/lists 2>/dev/null | grep -qi 'security.*Packages$' || exit 3; "
                "apt-get -s -o Debug::NoLocking=1 upgrade", needs=("apt-get",),
                label="apt-get -s upgrade"),
        Section("world-writable", f"find /etc -xdev -type f -perm -0002 2>/dev/null | head -n {WORLD_WRITABLE_MAX + 1}",
                needs=("find",), label="find /etc -xdev -type f -perm -0002"),
        Section("shadow-stat", "stat -c '%a %U %G' /etc/shadow 2>/dev/null || ls -ln /etc/shadow",
                label="stat -c '%a %U %G' /etc/shadow"),
        *[Section(f"sig:{d}", f"stat -c %Y {d}/* 2>/dev/null; true", label=f"stat -c %Y {d}/*") for d in sigs],
    ]


class Snapshot:
    def __init__(self, col: Collector, knowledge: dict[str, Any]) -> None:
        self.col = col
        self.k = knowledge
        self.reads = col.batch(sections(knowledge), privileged=True)
        self._cache: dict[str, Any] = {}

    # -- shared reads ---------------------------------------------------------------------------------
    def _once(self, name: str, fn: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = fn()
        return self._cache[name]

    def r(self, name: str) -> Read:
        return self.reads[name]

    def files(self, name: str) -> dict[str, str | None] | str:
        """{path: text or None (missing)}, or a str: the reason the files could not be read."""
        return parse_files(self.reads[name])

    def src(self, *names: str) -> list[dict[str, Any]]:
        return [self.reads[n].source() for n in names]

    def system(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            r = self.r("system")
            lines = r.stdout.split("\n") if r.ok else []
            now = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
            osr = self.files("os-release")
            os_info = {}
            if isinstance(osr, dict) and osr.get("/etc/os-release"):
                for line in (osr["/etc/os-release"] or "").splitlines()[:100]:
                    if "=" in line:
                        k, v = line.split("=", 1)
                        if k in ("ID", "VERSION_ID", "PRETTY_NAME", "ID_LIKE"):
                            os_info[k.lower()] = v.strip().strip('"')[:128]
            return {"hostname": lines[0][:128] if lines else None, "kernel": lines[1][:128] if len(lines) > 1 else None,
                    "uid": int(lines[2]) if len(lines) > 2 and lines[2].strip().isdigit() else None,
                    "now": now, "init": (lines[4].strip() if len(lines) > 4 else None), "os": os_info,
                    "login_user": self.col.session.user, "sudo": bool(self.col.session.sudo),
                    "sudo_refused": self.col.sudo_refused or None}
        return self._once("system", read)

    def running(self) -> set[str] | None:
        r = self.r("ps")
        return set(psys.process_names(r.stdout)) if r.ok and r.stdout.strip() else None

    def packages(self) -> list[str] | None:
        r = self.r("packages")
        return psys.dpkg_installed(r.stdout) if r.ok else None

    def present(self, table: str) -> dict[str, Any]:
        """Which entries of a knowledge table run (process) and which are installed (package)."""
        running, installed = self.running(), self.packages()
        out: dict[str, Any] = {"running": None if running is None else [],
                               "installed": None if installed is None else []}
        for name, spec in self.k.get(table, {}).items():
            if running is not None and any(p in running for p in spec.get("processes", [])):
                out["running"].append(name)
            if installed is not None and any(p in installed for p in spec.get("packages", [])):
                out["installed"].append(name)
        return out

    def sshd(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            files = self.files("sshd-config")
            blocks = ps.match_blocks(files) if isinstance(files, dict) else []
            r = self.r("sshd-t")
            if r.ok and r.stdout.strip():
                opts = ps.parse_sshd_t(r.stdout)
                return {"source": "sshd -T", "options": opts, "match_blocks": blocks, "assumed_defaults": [],
                        **ps.derive(opts, blocks)}
            if isinstance(files, dict) and files.get("/etc/ssh/sshd_config") is not None:
                parsed = ps.parse_sshd_config({k: v for k, v in files.items() if v is not None})
                opts, assumed = ps.with_defaults(parsed["options"], self.k["defaults"]["sshd"])
                return {"source": "/etc/ssh/sshd_config (parsed; sshd -T unavailable: "
                                  + (r.reason or "no output") + ")",
                        "options": opts, "match_blocks": blocks, "assumed_defaults": assumed,
                        **ps.derive(opts, blocks)}
            why = files if isinstance(files, str) else "/etc/ssh/sshd_config missing"
            return {"unavailable": f"sshd -T: {r.reason or 'no output'}; {why}"}
        return self._once("sshd", read)

    def passwd(self) -> Read:
        return self.r("passwd")

    def shadow(self) -> Read:
        return self.r("shadow")

    def pam(self) -> dict[str, str | None] | str:
        return self.files("pam")

    def today(self) -> int | None:
        now = self.system()["now"]
        return None if now is None else now // 86400

    # -- items ----------------------------------------------------------------------------------------
    ITEMS = (("system", ("system", "os-release")), ("sshd", ("sshd-t", "sshd-config")),
             ("password-policy", ("login.defs", "pam", "pwquality")), ("lockout", ("pam", "faillock")),
             ("idle-timeout", ("shell", "sshd-t", "sshd-config")), ("accounts", ("passwd",)),
             ("shadow", ("passwd", "shadow")), ("logins", ("lastlog", "passwd", "shadow")),
             ("services", ("ps", "units")), ("audit", ("ps", "packages")),
             ("logging", ("rsyslog", "syslog-ng", "audisp", "ps")), ("log-retention", ("logrotate",)),
             ("firewall", ("nft", "iptables", "packages")),
             ("updates", ("apt-lists", "apt-index-age", "apt-sim")), ("world-writable", ("world-writable",)),
             ("shadow-file", ("shadow-stat",)), ("time-sync", ("ps", "packages")),
             ("antimalware", ("ps", "packages")))

    def collect(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, reads in self.ITEMS:
            data = getattr(self, "item_" + key.replace("-", "_"))()
            srcs = list(reads) + ([n for n in self.reads if n.startswith("sig:")] if key == "antimalware" else [])
            data.setdefault("sources", self.src(*srcs))
            yield key, data

    def item_system(self) -> dict[str, Any]:
        return dict(self.system())

    def item_sshd(self) -> dict[str, Any]:
        return dict(self.sshd())

    def item_password_policy(self) -> dict[str, Any]:
        ld = self.files("login.defs")
        pam = self.pam()
        pwq = self.files("pwquality")
        if isinstance(ld, str) and isinstance(pam, str):
            return {"unavailable": f"login.defs: {ld}; PAM: {pam}"}
        defs = pauth.parse_login_defs(ld.get("/etc/login.defs") or "") if isinstance(ld, dict) and \
            ld.get("/etc/login.defs") is not None else None
        stack = _pam_stack(pam, ("passwd", "common-password", "system-auth"))
        conf: dict[str, Any] = {}
        if isinstance(pwq, dict):
            for path in sorted(pwq):
                if pwq[path]:
                    conf.update(pauth.parse_kv_conf(pwq[path] or ""))
        q = pauth.password_quality(stack, conf, defs, self.k["defaults"])
        max_days = pauth.to_int(defs.get("PASS_MAX_DAYS")) if defs else None
        out = {"pass_max_days": max_days,
               "pass_max_days_source": ("/etc/login.defs PASS_MAX_DAYS" if max_days is not None else
                                        "not set in /etc/login.defs: no maximum" if defs is not None else
                                        "/etc/login.defs missing or unreadable"),
               "pass_min_days": pauth.to_int(defs.get("PASS_MIN_DAYS")) if defs else None,
               "pass_warn_age": pauth.to_int(defs.get("PASS_WARN_AGE")) if defs else None,
               "login_defs_pass_min_len": pauth.to_int(defs.get("PASS_MIN_LEN")) if defs else None,
               "encrypt_method": defs.get("ENCRYPT_METHOD") if defs else None,
               "pam_available": not isinstance(pam, str), "pwquality_conf": conf or None, **q}
        if isinstance(ld, str):
            out["unavailable"] = f"/etc/login.defs: {ld} (maximum password age unknown)"
        elif isinstance(pam, str):
            out["unavailable"] = f"PAM: {pam} (length and class requirements unknown)"
        return out

    def item_lockout(self) -> dict[str, Any]:
        pam = self.pam()
        if isinstance(pam, str):
            return {"unavailable": f"PAM configuration: {pam}"}
        fl = self.files("faillock")
        if isinstance(fl, str):
            return {"unavailable": f"/etc/security/faillock.conf: {fl}"}
        conf = pauth.parse_kv_conf(fl.get("/etc/security/faillock.conf") or "")
        stack = _pam_stack(pam, ("sshd", "common-auth", "system-auth", "password-auth", "login"))
        facts = pauth.lockout(stack, conf, self.k["defaults"])
        facts["pam_files_present"] = sorted(p for p, t in pam.items() if t is not None)
        facts["faillock_conf"] = conf or None
        return facts

    def item_idle_timeout(self) -> dict[str, Any]:
        shell = self.files("shell")
        sshd = self.sshd()
        if isinstance(shell, str):
            tm: dict[str, Any] = {"settings": None, "effective": None, "effective_source": None}
        else:
            order = ["/etc/profile"] + sorted(p for p in shell if p.startswith("/etc/profile.d/")) + \
                    ["/etc/bash.bashrc", "/etc/bashrc"]
            tm = pauth.tmout_settings([(p, shell[p] or "") for p in order if shell.get(p)])
        out = {"tmout": tm["effective"], "tmout_source": tm["effective_source"], "tmout_settings": tm["settings"],
               "client_alive_interval": sshd.get("client_alive_interval"),
               "client_alive_count_max": sshd.get("client_alive_count_max"),
               "client_alive_timeout": sshd.get("client_alive_timeout"), "sshd_source": sshd.get("source")}
        # Only a shell TMOUT is an idle timeout (sshd's ClientAlive drops unresponsive clients, not idle ones):
        # unreadable shell profiles leave the fact unknown, whatever sshd says.
        if isinstance(shell, str):
            out["unavailable"] = f"shell profiles: {shell}"
        return out

    def item_accounts(self) -> dict[str, Any]:
        r = self.passwd()
        if not r.ok:
            return {"unavailable": f"/etc/passwd: {r.reason}"}
        users = pa.parse_passwd_meta(r.stdout)
        if not users:
            return {"unavailable": "/etc/passwd: no account lines parsed"}
        return {"users": [{k: u[k] for k in ("user", "uid", "gid", "home", "shell", "interactive")} for u in users],
                "uid0": [u["user"] for u in users if u["uid"] == 0], "count": len(users)}

    def _merged_shadow(self) -> list[dict[str, Any]] | str:
        def build() -> list[dict[str, Any]] | str:
            r, p = self.shadow(), self.passwd()
            if not p.ok:
                return f"/etc/passwd: {p.reason}"
            if not r.ok:
                return f"/etc/shadow: {r.reason}"
            users = pa.parse_passwd_meta(p.stdout)
            sh = {s["user"]: s for s in pa.parse_shadow_meta(r.stdout)}
            if not users or not sh:
                return "/etc/passwd or /etc/shadow: no account lines parsed"
            today = self.today()
            out = []
            for u in users:
                s = sh.get(u["user"])
                if u["passwd_field"] != "x" or s is None:
                    # a hash (or nothing) in /etc/passwd itself is what login checks
                    s = {"locked": u["passwd_locked"], "algorithm": u["passwd_field"],
                         "empty": u["passwd_field"] == "empty" and not u["passwd_locked"], "in_passwd": True}
                last = s.get("last_change")
                expire = s.get("expire")
                out.append({"user": u["user"], "uid": u["uid"], "interactive": u["interactive"],
                            "algorithm": s["algorithm"], "locked": s["locked"], "empty": s["empty"],
                            "max_days": s.get("max_days"),
                            "days_since_change": (today - last) if today is not None and last else None,
                            "expired": bool(expire is not None and today is not None and 0 <= expire <= today),
                            "hash_in_passwd": bool(s.get("in_passwd"))})
            return out
        return self._once("merged-shadow", build)

    def item_shadow(self) -> dict[str, Any]:
        users = self._merged_shadow()
        if isinstance(users, str):
            return {"unavailable": users}
        algs: dict[str, int] = {}
        for u in users:
            algs[u["algorithm"]] = algs.get(u["algorithm"], 0) + 1
        return {"users": users, "algorithms": algs, "host_today": self.today()}

    def item_logins(self) -> dict[str, Any]:
        r = self.r("lastlog")
        if not r.ok:
            return {"unavailable": f"lastlog: {r.reason}"}
        now = self.system()["now"]
        if now is None:
            return {"unavailable": "host clock (date +%s) unreadable"}
        p = self.passwd()
        if not p.ok:
            return {"unavailable": f"/etc/passwd: {p.reason}"}
        last = pa.parse_lastlog(r.stdout)
        shadow = self._merged_shadow()
        by_user = {u["user"]: u for u in shadow} if isinstance(shadow, list) else {}
        out = []
        for u in pa.parse_passwd_meta(p.stdout):
            when = last.get(u["user"])
            s = by_user.get(u["user"], {})
            out.append({"user": u["user"], "uid": u["uid"], "interactive": u["interactive"],
                        "last_login": when.isoformat() if when else None,
                        "never_logged_in": u["user"] in last and when is None,
                        "days_since_login": round((now - when.timestamp()) / 86400, 1) if when else None,
                        "days_since_change": s.get("days_since_change"), "locked": s.get("locked"),
                        "expired": s.get("expired", False)})
        return {"users": out, "host_now": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
                "password_dates": "read" if isinstance(shadow, list) else f"unavailable: {shadow}"}

    def item_services(self) -> dict[str, Any]:
        r = self.r("ps")
        if not r.ok:
            return {"unavailable": f"process list: {r.reason}"}
        out: dict[str, Any] = {"processes": psys.process_names(r.stdout)}
        u = self.r("units")
        if u.ok and u.stdout.strip():
            out["units"] = sorted({line.split()[0] for line in u.stdout.splitlines() if line.split()})[:500]
        return out

    def _daemons(self, table: str) -> dict[str, Any]:
        p = self.present(table)
        if p["running"] is None:
            return {"unavailable": f"process list: {self.r('ps').reason or 'empty'}", "installed": p["installed"]}
        return p

    def item_audit(self) -> dict[str, Any]:
        return self._daemons("audit_daemons")

    def item_time_sync(self) -> dict[str, Any]:
        return self._daemons("time_sync")

    def item_logging(self) -> dict[str, Any]:
        rs, ng, au = self.files("rsyslog"), self.files("syslog-ng"), self.files("audisp")
        if isinstance(rs, str) or isinstance(ng, str):
            return {"unavailable": f"syslog configuration: {rs if isinstance(rs, str) else ng}"}
        targets: list[dict[str, Any]] = []
        for path, text in rs.items():
            targets += pl.rsyslog_targets(path, text or "")
        for path, text in ng.items():
            targets += pl.syslog_ng_targets(path, text or "")
        if isinstance(au, dict):
            plugin = au.get("/etc/audit/plugins.d/au-remote.conf") or au.get("/etc/audisp/plugins.d/au-remote.conf")
            targets += pl.audisp_remote_target(au.get("/etc/audit/audisp-remote.conf"), plugin)
        running = self.present("audit_daemons")["running"]
        for t in targets:
            t["local"] = t["target"].lower().startswith(LOCAL_TARGETS)
            t["daemon_running"] = None if running is None else t["daemon"] in running
        active = [t for t in targets if not t["local"] and t["daemon_running"]]
        out = {"targets": targets[:50], "active_remote_targets": [f"{t['target']}:{t['port']}" for t in active],
               "daemons_running": running}
        if running is None:
            out["unavailable"] = f"process list: {self.r('ps').reason}: cannot tell whether a forwarding daemon runs"
        return out

    def item_log_retention(self) -> dict[str, Any]:
        files = self.files("logrotate")
        if isinstance(files, str):
            return {"unavailable": f"logrotate configuration: {files}"}
        if files.get("/etc/logrotate.conf") is None:
            return {"unavailable": "/etc/logrotate.conf missing: retention cannot be computed"}
        parsed = pl.parse_logrotate({k: v for k, v in files.items() if v is not None})
        ret = pl.system_log_retention(parsed, self.k.get("system_logs", []))
        out = {**ret, "default": parsed["default"], "blocks_read": len(parsed["blocks"])}
        if ret["effective_days"] is None:
            out["unavailable"] = "retention is not time-based (no rotate count or period): cannot be computed"
        return out

    def item_firewall(self) -> dict[str, Any]:
        nft, ipt = self.r("nft"), self.r("iptables")
        pk = [p for p in (self.packages() or []) if p in self.k.get("firewall_packages", [])]
        found = [psys.nft_ruleset(nft.stdout)] if nft.ok else []
        if ipt.ok:
            found.append(psys.iptables_rules(ipt.stdout))
        if not found:
            return {"unavailable": f"nft: {nft.reason}; iptables: {ipt.reason}", "packages": pk}
        active = [f for f in found if f["rules"] or f["input_policy"] not in (None, "accept")]
        best = (active or found)[0]
        return {**best, "views": found, "packages": pk}

    def item_updates(self) -> dict[str, Any]:
        lists = self.r("apt-lists")
        if not lists.ok:
            return {"unavailable": f"apt: {lists.reason} (only Debian-family hosts are read)"}
        sec = psys.security_lists(lists.stdout)
        if not sec:
            return {"unavailable": "no security archive index in /var/lib/apt/lists (no security source "
                                   "configured, or never updated): pending security updates unknown",
                    "security_indexes": []}
        sim = self.r("apt-sim")
        if not sim.ok:
            return {"unavailable": f"apt-get -s upgrade: {sim.reason}", "security_indexes": sec}
        pending = psys.apt_simulation(sim.stdout)
        now = self.system()["now"]
        age = self.r("apt-index-age")
        mtimes = [int(x) for x in age.stdout.split() if x.isdigit()] if age.ok else []
        return {"security_indexes": sec,
                "index_age_days": round((now - max(mtimes)) / 86400, 1) if mtimes and now else None,
                "security": [f"{p['package']} {p['candidate']}" for p in pending if p["security"]][:500],
                "other_upgrades": sum(1 for p in pending if not p["security"])}

    def item_world_writable(self) -> dict[str, Any]:
        r = self.r("world-writable")
        if not r.ok:
            return {"unavailable": f"find: {r.reason}"}
        files = [f for f in r.stdout.splitlines() if f.startswith("/etc/")]
        return {"files": files[:WORLD_WRITABLE_MAX], "more": len(files) > WORLD_WRITABLE_MAX}

    def item_shadow_file(self) -> dict[str, Any]:
        r = self.r("shadow-stat")
        facts = psys.stat_line(r.stdout) if r.ok else None
        if facts is None:
            return {"unavailable": f"/etc/shadow mode: {r.reason or 'unparsable output'}"}
        return {"path": "/etc/shadow", **facts}

    def item_antimalware(self) -> dict[str, Any]:
        p = self._daemons("antimalware")
        if "unavailable" in p:
            return p
        now = self.system()["now"]
        agents = []
        for name in sorted(set(p["running"]) | set(p["installed"] or [])):
            spec = self.k["antimalware"][name]
            age = None
            if spec.get("signatures"):
                r = self.r(f"sig:{spec['signatures']}")
                mt = [int(x) for x in r.stdout.split() if x.isdigit()] if r.ok else []
                age = round((now - max(mt)) / 86400, 1) if mt and now else None
            agents.append({"name": name, "running": name in p["running"], "signatures_age_days": age})
        return {**p, "agents": agents}


def _pam_stack(pam: dict[str, str | None] | str, order: tuple[str, ...]) -> list[dict[str, Any]]:
    if isinstance(pam, str):
        return []
    for name in order:
        stack = pauth.expand_pam(pam, name)
        if stack:
            return stack
    return []
