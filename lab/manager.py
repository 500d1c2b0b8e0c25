"""Python API of the lab: up(), down(), status().

Everything comes from lab/topology.yaml.  `up` records every id it creates in
<state_dir>/state.json before creating the next one; `down` removes exactly those and then
sweeps our own prefixed names (netns lab-*, links vh-*, the lab bridge) for leftovers of
a crashed run.  No default route is ever added and net.ipv4.ip_forward is never written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lab import netns
from lab.build import ensure_root
from lab.netns import LabError
from lab.pki import LabPKI, secret_file, ssh_keypair
from lab.probe import service_ready
from lab.state import State
from lab.topology import HOSTS_DIR, Host, Topology, load

Progress = Callable[[str], None]
READY_TIMEOUT = float(os.environ.get("TCMSCAN_LAB_READY_TIMEOUT", "120"))
LIB_DIR = Path("usr/local/lib/lab")  # top-level files of a host dir land here


def require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionError("the lab needs root (network namespaces, overlay mounts): run it as root")


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
    """rmtree, after clearing append-only/immutable flags a host set on its own files (hardened's backups)."""
    if path.exists() and shutil.which("chattr"):
        subprocess.run(["chattr", "-R", "-a", "-i", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _prepare_upper(topo: Topology, host: Host, upper: Path, keys: dict[str, str], pki: LabPKI) -> None:
    _remove_tree(upper)
    upper.mkdir(parents=True)
    for layer in host.layers:
        _copy_layer(HOSTS_DIR / f"_{layer}", upper)
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
    if host.name == "hardened":
        key_path = topo.data_dir / "hardened_backup_ed25519"
        _put(upper, "root/.ssh/id_backup", key_path.read_bytes(), 0o600)
        _put(upper, "root/.restic-password", keys["restic"] + "\n", 0o600)
    if host.name == "backup":
        # Only the hardened host's backup key, sftp only.
        _put(upper, "home/restic/.ssh/authorized_keys", f"restrict {keys['backup']}\n", 0o600)


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
    return {"credentials": [{
        "match": c["match"], "type": "ssh", "user": c["user"], "key_file": c["key_file"],
        "port": int(c.get("port", 22)), "sudo": False,
    }]}


def _write_files(topo: Topology) -> None:
    p = _paths(topo)
    p["inventory"].write_text("# generated by `lab up` from lab/topology.yaml\n"
                              + yaml.safe_dump(inventory(topo), allow_unicode=True, sort_keys=False))
    p["credentials"].write_text("# generated by `lab up`: the lab's scanner key, installed for root on every host\n"
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
        "running": running,
        "hosts": [
            {"name": h.name, "address": h.address, "role": h.role, "class": h.klass,
             "services": [s.label() for s in h.services]}
            for h in topo.hosts
        ],
    }


# ---------------------------------------------------------------- up

def _wait_ready(topo: Topology, state: State, progress: Progress) -> None:
    pending = [(h, s) for h in topo.hosts for s in h.services]
    deadline = time.monotonic() + READY_TIMEOUT
    while pending:
        for h in topo.hosts:
            if not netns.pid_is(int(state.host(h.name)["unshare_pid"]), _marker(topo, h)):
                log = _paths(topo)["hosts"] / h.name / "console.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
                raise LabError(f"host {h.name} exited while starting: {tail[0] if tail else 'no output'}")
        pending = [(h, s) for h, s in pending if not service_ready(h.address, s)]
        if not pending:
            break
        if time.monotonic() > deadline:
            h, s = pending[0]
            more = f" (and {len(pending) - 1} more)" if len(pending) > 1 else ""
            raise LabError(f"host {h.name}: service {s.label()} did not answer within {READY_TIMEOUT:.0f} s{more}; "
                           f"logs in {_paths(topo)['hosts'] / h.name / 'upper/var/log/lab'}")
        time.sleep(0.3)
    for h in topo.hosts:
        state.host(h.name)["ready"] = True
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
        progress(f"  {h.name}: post-up.sh")
        proc = netns.nsexec(int(pid), ["/bin/sh", f"/{LIB_DIR}/post-up.sh"])
        if proc.returncode != 0:
            err = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise LabError(f"host {h.name}: post-up.sh failed: {err[-1] if err else proc.returncode}")


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
        progress(f"starting {len(topo.hosts)} hosts on {topo.bridge} ({topo.subnet})")
        _start(topo, state, root, progress)
        _wait_ready(topo, state, progress)
        _post_up(topo, state, progress)
        _write_files(topo)
    except BaseException:
        _keep_logs(topo)
        if os.environ.get("TCMSCAN_LAB_KEEP_FAILED") != "1":
            down(progress=lambda _m: None)
        raise
    progress(f"lab up in {time.monotonic() - t0:.1f} s; inventory {p['inventory']}, credentials {p['credentials']}")
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
    return found


def down(progress: Progress = print) -> None:
    """Stop every host and remove every id recorded in the state file, then sweep leftovers."""
    require_root()
    topo = load()
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
    for ns in [n for n in netns.list_netns() if n.startswith(netns.NETNS_PREFIX)]:
        for pid in netns.netns_pids(ns):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        netns.delete_netns(ns)
    for link in netns.list_links(netns.VETH_PREFIX):
        netns.delete_link(link)
    netns.delete_link(state.data.get("bridge") or topo.bridge)
    for m in reversed(Path("/proc/mounts").read_text().splitlines()):
        if m.split()[1].startswith(str(topo.state_dir)):
            netns.run(["umount", "-l", m.split()[1]], "umount", check=False)
    _remove_tree(p["hosts"])
    for f in ("inventory", "credentials"):
        p[f].unlink(missing_ok=True)
    left = _leftovers(topo)
    if left:
        raise LabError(f"lab down left behind: {', '.join(left)}")
    state.remove()
    progress(f"lab down in {time.monotonic() - t0:.1f} s")
