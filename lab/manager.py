"""Python API of the lab: up(), down(), status().

Everything comes from lab/topology.yaml.  `up` records every id it creates in
<state_dir>/state.json before creating the next one; `down` removes exactly those and then
sweeps our own prefixed names (netns lab-*, links vh-*, the lab bridge) for leftovers of
a crashed run.  No default route is ever added and net.ipv4.ip_forward is never written.

The lab is shared by everyone on the machine, so `up` and `down` run one at a time: each
holds an exclusive lock (<data_dir>/lab.lock) for its whole run.  Without it, a second
`up` (e.g. a test session's lab fixture) that starts while a first one is still starting
hosts sees "not running", tears the half-started lab down and starts its own: both then
fail with "host core-switch exited while starting" (the first host started is the first
one the other process kills).

Whatever sends packets to the lab holds a claim (`in_use`, a shared lock on <data_dir>/lab.users; test sessions
and `lab use -- COMMAND` do), and `down` first waits until no claim is left: once the lab is gone, its subnet
follows the machine's default route, and a scan still running would send its packets out of the machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import yaml

from lab import netns
from lab.build import ensure_root
from lab.netns import LabError
from lab.pki import LabPKI, absurd_chain, secret_file, ssh_keypair
from lab.probe import service_ready
from lab.state import State
from lab.topology import HOSTS_DIR, Host, Topology, load

Progress = Callable[[str], None]
READY_TIMEOUT = float(os.environ.get("TCMSCAN_LAB_READY_TIMEOUT", "120"))
# Long enough for another process's first `up` (root build 1-2 min + start + post-up).
LOCK_TIMEOUT = float(os.environ.get("TCMSCAN_LAB_LOCK_TIMEOUT", "900"))
LIB_DIR = Path("usr/local/lib/lab")  # top-level files of a host dir land here


def require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionError("the lab needs root (network namespaces, overlay mounts): run it as root")


_held_locks: dict[str, tuple[int, int]] = {}   # lock path -> (fd, LOCK_SH or LOCK_EX) held by this process


LAB_LOCK_HOLDER = "another `lab up`/`lab down`"
USERS = "the lab's users (scans, test sessions)"


def exclusive(lock_path: Path, progress: Progress = print, timeout: float | None = None,
              who: str = LAB_LOCK_HOLDER) -> AbstractContextManager[None]:
    """Hold `lock_path` exclusively (flock: released by the kernel even if we crash).  Re-entrant in one
    process.  `who` names the holders waited for, in the progress line and the error."""
    return _flock(lock_path, fcntl.LOCK_EX, progress, timeout, who)


def shared(lock_path: Path, progress: Progress = print, timeout: float | None = None) -> AbstractContextManager[None]:
    """Hold `lock_path` shared: any number of holders at once, none while someone holds it exclusively."""
    return _flock(lock_path, fcntl.LOCK_SH, progress, timeout, "a `lab down`")


@contextmanager
def _flock(lock_path: Path, mode: int, progress: Progress, timeout: float | None, who: str) -> Iterator[None]:
    """flock `lock_path` in `mode`, waiting at most `timeout` (LOCK_TIMEOUT) for the holders of a conflicting lock.
    Re-entrant in one process; a shared lock this process holds is upgraded in place (and downgraded after),
    since a second descriptor's exclusive lock would wait for our own shared one."""
    key = str(lock_path)
    held = _held_locks.get(key)
    if held is not None and (held[1] == fcntl.LOCK_EX or mode == fcntl.LOCK_SH):
        yield
        return
    if held is not None:
        fd = held[0]
    else:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + (LOCK_TIMEOUT if timeout is None else timeout)
        told = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holders(fd, lock_path)
                if time.monotonic() > deadline:
                    if held is not None:
                        fcntl.flock(fd, held[1])   # a failed conversion may have dropped the lock we held
                    raise LabError(f"{who} ({holder}) still holds {lock_path}") from None
                if not told:
                    progress(f"waiting for {who} to finish ({holder})")
                    told = True
                time.sleep(0.2)
        if mode == fcntl.LOCK_EX:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        _held_locks[key] = (fd, mode)
        try:
            yield
        finally:
            if mode == fcntl.LOCK_EX:
                os.ftruncate(fd, 0)
            if held is not None:
                fcntl.flock(fd, held[1])      # back to the shared lock we held before
                _held_locks[key] = held
            else:
                del _held_locks[key]
    finally:
        if held is None:
            os.close(fd)  # closing the last fd releases the flock


def _holders(fd: int, lock_path: Path) -> str:
    """Who holds `lock_path`: the pid an exclusive holder wrote, else the shared holders' pids (/proc/locks)."""
    written = os.pread(fd, 200, 0).decode(errors="replace").strip()
    if written:
        return written
    inode = os.fstat(fd).st_ino
    pids = set()
    try:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()   # "1: FLOCK  ADVISORY  READ 1234 00:2a:5678 0 EOF"
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
                pids.add(int(fields[4]))
    except (OSError, ValueError):
        pass
    pids.discard(os.getpid())
    return "pid " + ", ".join(map(str, sorted(pids))) if pids else "another process"


def in_use(progress: Progress = print, timeout: float | None = None) -> AbstractContextManager[None]:
    """A claim on the running lab (a shared lock on <data_dir>/lab.users): `down` waits until every claim is
    released.  Whatever sends packets to the lab subnet holds one -- once the lab is gone, that subnet follows
    the machine's default route and the packets would leave the machine."""
    return shared(_users_path(load()), progress, timeout)


def no_users(progress: Progress = print, timeout: float | None = None) -> AbstractContextManager[None]:
    """Wait until nothing holds an `in_use` claim (other than this process), and keep new claims out."""
    return exclusive(_users_path(load()), progress, timeout, who=USERS)


def _users_path(topo: Topology) -> Path:
    return topo.data_dir / "lab.users"


def _lock_path(topo: Topology) -> Path:
    # Under data_dir (persistent, root-only), not state_dir, which `down` empties.
    return topo.data_dir / "lab.lock"


def _paths(topo: Topology) -> dict[str, Path]:
    return {
        "state": topo.state_dir / "state.json",
        "inventory": topo.state_dir / "inventory.yaml",
        "credentials": topo.state_dir / "credentials.yaml",
        "hosts": topo.state_dir / "hosts",
    }


def _marker(topo: Topology, host: Host) -> str:
    return f"lab-enter {_paths(topo)['hosts'] / host.name / 'merged'}"


# ---------------------------------------------------------------- host files

def _copy_layer(src: Path, upper: Path) -> None:
    for item in sorted(src.iterdir()):
        if item.is_dir():
            shutil.copytree(item, upper / item.name, dirs_exist_ok=True, symlinks=True)
        else:
            dest = upper / LIB_DIR / item.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, dest)


def _put(upper: Path, rel: str, text: str | bytes, mode: int = 0o644) -> None:
    path = upper / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.chmod(path, mode)


def _remove_tree(path: Path) -> None:
    """Remove a host's runtime tree, even where the host made files append-only/immutable.

    hardened's backup job runs `chattr +a` on its restic repository.  Recent kernels keep such
    flags of an overlay file in an xattr (trusted.overlay.protattr) of the upper file, so a
    plain rmtree from outside works; older kernels and other upper file systems set the real
    inode flag, which only `chattr -a -i` clears.  Hence: rmtree, and if anything is left,
    clear the flags and try again.  Raises LabError if the tree is still there.
    """
    if not path.exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    if path.exists() and shutil.which("chattr"):
        subprocess.run(["chattr", "-R", "-f", "-a", "-i", str(path)], capture_output=True, check=False)
        shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        try:
            shutil.rmtree(path)
        except OSError as exc:
            raise LabError(f"cannot remove {path}: {exc}") from None


def _prepare_upper(topo: Topology, host: Host, upper: Path, keys: dict[str, str], pki: LabPKI) -> None:
    _remove_tree(upper)
    upper.mkdir(parents=True)
    for layer in host.layers:
        _copy_layer(HOSTS_DIR / f"_{layer}", upper)
    if (HOSTS_DIR / host.name).is_dir():     # a hostile host may be all topology: no files of its own
        _copy_layer(HOSTS_DIR / host.name, upper)
    _put(upper, "etc/hostname", host.name + "\n")
    # Static names only: the root has an empty resolv.conf and `hosts: files`.
    lines = ["127.0.0.1\tlocalhost", f"{topo.gateway}\tscanner"] + [f"{h.address}\t{h.name}" for h in topo.hosts]
    _put(upper, "etc/hosts", "\n".join(lines) + "\n")
    (upper / "root").mkdir(exist_ok=True)
    os.chmod(upper / "root", 0o700)
    _put(upper, "root/.ssh/authorized_keys", keys["scanner"] + "\n", 0o600)
    os.chmod(upper / "root/.ssh", 0o700)
    kind = host.extra.get("tls_cert")
    if kind:
        crt, key = pki.server_cert(host.name, host.address, str(kind))
        _put(upper, "etc/nginx/tls/server.crt", crt.read_bytes())
        _put(upper, "etc/nginx/tls/server.key", key.read_bytes(), 0o600)
    if host.hostile:
        _hostile_files(topo, host, upper, pki)
    if host.name == "hardened":
        key_path = topo.data_dir / "hardened_backup_ed25519"
        _put(upper, "root/.ssh/id_backup", key_path.read_bytes(), 0o600)
        _put(upper, "root/.restic-password", keys["restic"] + "\n", 0o600)
    if host.name == "backup":
        # Only the hardened host's backup key, sftp only.
        _put(upper, "home/restic/.ssh/authorized_keys", f"restrict {keys['backup']}\n", 0o600)


def _hostile_files(topo: Topology, host: Host, upper: Path, pki: LabPKI) -> None:
    """hostile_services.py's configuration, from the topology; the absurd chain where a port serves it; no sshd
    where port 22 misbehaves."""
    listeners = [{"port": s.port, "proto": s.proto, "behaviour": s.behaviour} for s in host.services if s.behaviour]
    config: dict[str, Any] = {"host": host.name, "address": host.address, "prefix": int(topo.subnet.split("/")[1]),
                              "listeners": listeners, "flap": host.flap or None}
    if any(s["behaviour"] == "tls-absurd-certs" for s in listeners):
        chain, key = absurd_chain(pki.dir / "hostile")
        _put(upper, "etc/hostile/tls/chain.pem", chain.read_bytes())
        _put(upper, "etc/hostile/tls/key.pem", key.read_bytes(), 0o600)
        config["tls"] = {"chain": "/etc/hostile/tls/chain.pem", "key": "/etc/hostile/tls/key.pem"}
    _put(upper, f"{LIB_DIR}/hostile.json", json.dumps(config, indent=2) + "\n")
    if any(s["port"] == 22 and s["proto"] == "tcp" for s in listeners):
        _put(upper, "etc/ssh/sshd_not_to_be_run", "lab: port 22 of this hostile host is hostile_services.py\n")


def _ensure_keys(topo: Topology) -> dict[str, str]:
    topo.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(topo.data_dir, 0o700)
    scanner_key = Path(topo.credentials["key_file"])
    return {
        "scanner": ssh_keypair(scanner_key, "tcmscan-lab-scanner"),
        "backup": ssh_keypair(topo.data_dir / "hardened_backup_ed25519", "hardened-restic"),
        "restic": secret_file(topo.data_dir / "restic-password"),
    }


# ---------------------------------------------------------------- generated files

def inventory(topo: Topology) -> dict[str, Any]:
    assets = []
    for h in topo.hosts:
        asset: dict[str, Any] = {
            "address": h.address, "name": h.name, "role": h.role, "class": h.klass, "owner": h.owner,
            "zone": h.zone, "criticality": h.criticality, "fragile": h.fragile,
            "backup_required": h.backup_required,
        }
        # inventory-only facts a hospital would record for this device (e.g. its opt-in to default-login tests)
        asset.update(h.extra.get("inventory", {}))
        assets.append(asset)
    return {"assets": assets}


def credentials(topo: Topology) -> dict[str, Any]:
    c = topo.credentials
    creds: list[dict[str, Any]] = [{
        "match": c["match"], "type": "ssh", "user": c["user"], "key_file": c["key_file"],
        "port": int(c.get("port", 22)), "sudo": False,
    }]
    # the accounts a host gives the scanner (topology `scanner_credentials`); LDAPS is verified against the lab CA
    for h in topo.hosts:
        for c in h.extra.get("scanner_credentials") or []:
            creds.append({"match": h.address, **c, **({"ca_file": topo.ca_file} if c["type"] == "ldap" else {})})
    return {"credentials": creds}


def _write_files(topo: Topology) -> None:
    p = _paths(topo)
    p["inventory"].write_text("# generated by `lab up` from lab/topology.yaml\n"
                              + yaml.safe_dump(inventory(topo), allow_unicode=True, sort_keys=False))
    p["credentials"].write_text("# generated by `lab up`: the lab's scanner key, installed for root on every host, and "
                                "the accounts hosts give the scanner (topology scanner_credentials)\n"
                                + yaml.safe_dump(credentials(topo), sort_keys=False))
    os.chmod(p["credentials"], 0o600)


# ---------------------------------------------------------------- status

def _is_running(topo: Topology, state: State) -> bool:
    if not state.path.exists() or not netns.link_exists(topo.bridge):
        return False
    for h in topo.hosts:
        rec = state.hosts.get(h.name, {})
        if not rec.get("ready") or not netns.pid_is(int(rec.get("unshare_pid", 0)), _marker(topo, h)):
            return False
    return True


def route_device(address: str) -> str:
    """The interface this machine would send a packet for `address` out of (`ip route get`)."""
    got = subprocess.run(["ip", "-o", "route", "get", address], capture_output=True, text=True, check=False)
    words = got.stdout.split()
    return words[words.index("dev") + 1] if "dev" in words else "nowhere"


def check_reachable_only_in_lab() -> None:
    """Refuse (LabError) unless the lab is up and its subnet is the lab bridge's, not the default route's."""
    topo = load()
    if not _is_running(topo, State(_paths(topo)["state"])):
        raise LabError("the lab is not up: run `tcmscan lab up` first")
    for h in topo.hosts:
        dev = route_device(h.address)
        if dev != topo.bridge:
            raise LabError(f"{h.address} is routed via {dev}, not the lab bridge {topo.bridge}: refusing to send "
                           "packets there")


def use(argv: list[str], progress: Progress = print) -> int:
    """Run `argv` (a scan of the lab, say) under a claim on the lab, once the lab subnet is known to be the
    bridge's: the lab cannot be taken down under it.  Returns the command's exit status."""
    require_root()
    with in_use(progress):
        check_reachable_only_in_lab()
        return subprocess.run(argv, check=False).returncode


def _ca_path(topo: Topology) -> str:
    # The file `up` makes (LabPKI under data_dir); the topology names the same path.
    return topo.ca_file or str(LabPKI(topo.data_dir / "pki").ca_cert_path)


def status() -> dict[str, Any]:
    topo = load()
    p = _paths(topo)
    state = State(p["state"])
    running = os.geteuid() == 0 and _is_running(topo, state)
    return {
        "subnet": topo.subnet,
        "bridge": topo.bridge,
        "inventory": str(p["inventory"]),
        "credentials": str(p["credentials"]),
        "ca": _ca_path(topo),   # trust it (`tcmscan scan --ca-file`) to validate the hardened host
        "running": running,
        "hosts": [
            {"name": h.name, "address": h.address, "role": h.role, "class": h.klass,
             "services": [s.label() for s in h.services]}
            for h in topo.hospital
        ],
        # fault injection (docs/lab.md "Hostile hosts"): scanned with the rest, outside the hospital's ground truth
        "hostile": [
            {"name": h.name, "address": h.address,
             "services": [s.label() + (f" {s.behaviour}" if s.behaviour else "") for s in h.services],
             "flap": h.flap or None}
            for h in topo.hosts if h.hostile
        ],
    }


def lock(progress: Progress = print) -> AbstractContextManager[None]:
    """The lab lock as a context manager, for callers that must check-then-act (test fixtures)."""
    return exclusive(_lock_path(load()), progress)


# ---------------------------------------------------------------- up

def _tail(path: Path, n: int = 2) -> str:
    if not path.exists():
        return ""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def _exit_detail(topo: Topology, state: State, host: Host) -> str:
    """Why a host died: exit status (if we are its parent) and the last lines it wrote."""
    parts = []
    try:
        pid, status_ = os.waitpid(int(state.host(host.name)["unshare_pid"]), os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status_)
            parts.append(f"exit status {code}" if code >= 0 else f"killed by signal {-code}")
    except ChildProcessError:
        pass  # not our child (started by another process): no status to read
    rundir = _paths(topo)["hosts"] / host.name
    for label, path in (("console", rundir / "console.log"), ("start.log", rundir / "upper/var/log/lab/start.log")):
        tail = _tail(path)
        if tail:
            parts.append(f"{label}: {tail}")
    return "; ".join(parts) or "no output"


def _wait_ready(topo: Topology, state: State, progress: Progress, t0: float) -> None:
    pending = {h.name: list(h.services) for h in topo.hosts}
    by_name = {h.name: h for h in topo.hosts}
    deadline = time.monotonic() + READY_TIMEOUT
    next_note = time.monotonic() + 15
    while pending:
        for name in pending:
            h = by_name[name]
            if not netns.pid_is(int(state.host(name)["unshare_pid"]), _marker(topo, h)):
                raise LabError(f"host {name} exited while starting ({_exit_detail(topo, state, h)}); "
                               f"logs in {topo.data_dir / 'last-failure' / name}")
        for name in list(pending):
            h = by_name[name]
            pending[name] = [s for s in pending[name] if not service_ready(h.address, s)]
            if not pending[name]:
                del pending[name]
                state.host(name)["ready"] = True
                done = len(topo.hosts) - len(pending)
                progress(f"  [{done:>2}/{len(topo.hosts)}] {name:<12} {h.address:<11} ready after "
                         f"{time.monotonic() - t0:4.1f} s  {' '.join(s.label() for s in h.services)}")
        if not pending:
            break
        now = time.monotonic()
        if now > deadline:
            name, svcs = next(iter(pending.items()))
            more = sum(len(v) for v in pending.values()) - 1
            extra = f" (and {more} more)" if more else ""
            raise LabError(f"host {name}: service {svcs[0].label()} did not answer within {READY_TIMEOUT:.0f} s"
                           f"{extra}; logs in {topo.data_dir / 'last-failure' / name}")
        if now > next_note:
            waiting = ", ".join(f"{n} {' '.join(s.label() for s in v)}" for n, v in pending.items())
            progress(f"  still waiting ({now - t0:.0f} s): {waiting}")
            next_note = now + 15
        time.sleep(0.3)
    state.save()


def _post_up(topo: Topology, state: State, progress: Progress) -> None:
    for h in topo.hosts:
        if not (HOSTS_DIR / h.name / "post-up.sh").exists():
            continue
        rec = state.host(h.name)
        # The host's PID 1 must already be inside its chroot (nsenter -r follows /proc/PID/root).
        deadline = time.monotonic() + 15
        pid = netns.init_pid(int(rec["unshare_pid"]))
        while time.monotonic() < deadline:
            pid = netns.init_pid(int(rec["unshare_pid"]))
            try:
                if pid and os.readlink(f"/proc/{pid}/root") == rec["mount"]:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise LabError(f"host {h.name}: its init is not inside {rec['mount']}")
        what = _first_comment(HOSTS_DIR / h.name / "post-up.sh")
        progress(f"  {h.name}: post-up.sh{': ' + what if what else ''} ...")
        t0 = time.monotonic()
        proc = netns.nsexec(int(pid), ["/bin/sh", f"/{LIB_DIR}/post-up.sh"])
        if proc.returncode != 0:
            err = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise LabError(f"host {h.name}: post-up.sh failed: {err[-1] if err else proc.returncode}")
        progress(f"  {h.name}: post-up.sh done in {time.monotonic() - t0:.1f} s")


def _first_comment(script: Path) -> str:
    """The script's first comment line, shown while it runs (it may take several seconds)."""
    for line in script.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and not line.startswith("#!"):
            text = line.lstrip("# ").strip()
            return text.split(":", 1)[1].strip() if text.startswith("lab ") and ":" in text else text
    return ""


def _start(topo: Topology, state: State, root: Path, progress: Progress) -> None:
    keys = _ensure_keys(topo)
    pki = LabPKI(topo.data_dir / "pki")
    pki.ensure_ca()
    state.data.update(root=str(root), bridge=topo.bridge,
                      ip_forward_before=Path("/proc/sys/net/ipv4/ip_forward").read_text().strip())
    state.save()
    netns.create_bridge(topo)
    hosts_dir = _paths(topo)["hosts"]
    for h in topo.hosts:
        rec = state.host(h.name)
        rundir = hosts_dir / h.name
        rec.update(netns=h.netns, veth=h.veth, rundir=str(rundir), mount=str(rundir / "merged"),
                   marker=_marker(topo, h))
        state.save()
        _prepare_upper(topo, h, rundir / "upper", keys, pki)
        netns.create_host_net(topo, h)
        rec["unshare_pid"] = netns.start_host(h, root, rundir, " ".join(h.absent_packages))
        state.save()
    deadline = time.monotonic() + 10
    for h in topo.hosts:
        rec = state.host(h.name)
        while (pid := netns.init_pid(rec["unshare_pid"])) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        rec["init_pid"] = pid
    state.save()


def up(progress: Progress = print) -> dict[str, Any]:
    """Build (first time) and start the lab; return status() once every service answers."""
    require_root()
    topo = load()
    with exclusive(_lock_path(topo), progress):
        return _up_locked(topo, progress)


def _up_locked(topo: Topology, progress: Progress) -> dict[str, Any]:
    p = _paths(topo)
    state = State(p["state"])
    if _is_running(topo, state):
        progress("lab already up")
        _write_files(topo)
        return status()
    if state.path.exists() or _leftovers(topo):
        progress("removing what a previous lab left behind")
        down(progress=lambda _m: None)
    root = ensure_root(topo, progress)
    topo.state_dir.mkdir(parents=True, exist_ok=True)
    state = State(p["state"])
    t0 = time.monotonic()
    try:
        progress(f"starting {len(topo.hosts)} hosts on {topo.bridge} ({topo.subnet}): "
                 f"{' '.join(h.name for h in topo.hosts)}")
        _start(topo, state, root, progress)
        _wait_ready(topo, state, progress, t0)
        _post_up(topo, state, progress)
        _write_files(topo)
    except BaseException:
        _keep_logs(topo)
        if os.environ.get("TCMSCAN_LAB_KEEP_FAILED") != "1":
            down(progress=lambda _m: None)
        raise
    progress(f"lab up in {time.monotonic() - t0:.1f} s: {len(topo.hosts)} hosts on {topo.subnet}; "
             f"inventory {p['inventory']}, credentials {p['credentials']}, CA {_ca_path(topo)}")
    return status()


def _keep_logs(topo: Topology) -> None:
    """Copy each host's logs out of its runtime dir before teardown removes it."""
    dest = topo.data_dir / "last-failure"
    shutil.rmtree(dest, ignore_errors=True)
    for h in topo.hosts:
        rundir = _paths(topo)["hosts"] / h.name
        for src in (rundir / "console.log", rundir / "upper/var/log/lab"):
            if src.exists():
                target = dest / h.name / src.name
                target.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(src, target)


# ---------------------------------------------------------------- down

def _leftovers(topo: Topology) -> list[str]:
    found = [f"netns {n}" for n in netns.list_netns() if n.startswith(netns.NETNS_PREFIX)]
    found += [f"link {n}" for n in netns.list_links(netns.VETH_PREFIX)]
    if netns.link_exists(topo.bridge):
        found.append(f"bridge {topo.bridge}")
    mounts = Path("/proc/mounts").read_text().splitlines()
    found += [f"mount {m.split()[1]}" for m in mounts if m.split()[1].startswith(str(topo.state_dir))]
    if _paths(topo)["hosts"].exists():
        found.append(f"directory {_paths(topo)['hosts']}")
    return found


def down(progress: Progress = print) -> None:
    """Stop every host and remove every id recorded in the state file, then sweep leftovers."""
    require_root()
    topo = load()
    # The users' claims first, the lab lock second, everywhere: the other order deadlocks with a claim holder
    # that waits for the lab lock.
    with no_users(progress), exclusive(_lock_path(topo), progress):
        _down_locked(topo, progress)


def _down_locked(topo: Topology, progress: Progress) -> None:
    p = _paths(topo)
    state = State(p["state"])
    t0 = time.monotonic()
    for name, rec in state.hosts.items():
        pid = rec.get("unshare_pid")
        if pid and not netns.kill_and_wait(int(pid), str(rec.get("marker", "lab-enter"))):
            raise LabError(f"host {name}: unshare process {pid} did not exit")
        # Its PID 1 dies with it (--kill-child); wait so the next `up` starts clean.
        if rec.get("init_pid") and not netns.kill_and_wait(int(rec["init_pid"]), "tini"):
            raise LabError(f"host {name}: init process {rec['init_pid']} did not exit")
        if rec.get("veth"):
            netns.delete_link(rec["veth"])
        if rec.get("netns"):
            netns.delete_netns(rec["netns"])
    # Crash leftovers: only our own prefixed names.  Processes still inside one of our
    # network namespaces belong to the lab by construction.
    killed: list[int] = []
    for ns in [n for n in netns.list_netns() if n.startswith(netns.NETNS_PREFIX)]:
        for pid in netns.netns_pids(ns):
            try:
                os.kill(pid, 9)
                killed.append(pid)
            except ProcessLookupError:
                pass
        netns.delete_netns(ns)
    if not netns.wait_gone(killed):
        raise LabError(f"processes of a previous lab did not exit: {killed}")
    for link in netns.list_links(netns.VETH_PREFIX):
        netns.delete_link(link)
    netns.delete_link(state.data.get("bridge") or topo.bridge)
    for m in reversed(Path("/proc/mounts").read_text().splitlines()):
        if m.split()[1].startswith(str(topo.state_dir)):
            netns.run(["umount", "-l", m.split()[1]], "umount", check=False)
    try:
        _remove_tree(p["hosts"])
    except LabError:
        pass  # reported below with everything else left behind
    for f in ("inventory", "credentials"):
        p[f].unlink(missing_ok=True)
    left = _leftovers(topo)
    if left:
        raise LabError(f"lab down left behind: {', '.join(left)}")
    state.remove()
    progress(f"lab down in {time.monotonic() - t0:.1f} s")
