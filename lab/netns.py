"""Namespace "containers": bridge, per-host netns + veth, unshare'd mount/PID/UTS/IPC
namespaces with an overlay root entered by chroot.  Only our own names are ever used:
netns `lab-<host>`, host-side veth `vh-<host>`, bridge from the topology (`tcmlab0`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lab.topology import Host, Topology

NETNS_PREFIX = "lab-"
VETH_PREFIX = "vh-"


class LabError(RuntimeError):
    """A failed lab step; the message is one line."""


def run(cmd: list[str], what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise LabError(f"{what} failed: {detail[-1] if detail else 'exit ' + str(proc.returncode)}")
    return proc


def _write_sysctl(path: str, value: str, netns: str | None = None) -> None:
    # Per-interface/per-netns IPv6 switches only; global forwarding is never touched.
    if netns is None:
        Path(path).write_text(value)
    else:
        run(["ip", "netns", "exec", netns, "sh", "-c", f"echo {value} > {path}"], f"sysctl {path} in {netns}")


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], "ip link show", check=False).returncode == 0


def list_netns() -> list[str]:
    out = run(["ip", "netns", "list"], "ip netns list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_links(prefix: str) -> list[str]:
    out = run(["ip", "-o", "link", "show"], "ip link", check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            names.append(parts[1].strip().split("@")[0])
    return [n for n in names if n.startswith(prefix)]


def create_bridge(topo: Topology) -> None:
    br = topo.bridge
    if not link_exists(br):
        run(["ip", "link", "add", br, "type", "bridge"], f"create bridge {br}")
    # The lab is IPv4 only: no link-local IPv6 chatter, no router solicitations.
    _write_sysctl(f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6", "1")
    prefix = topo.subnet.split("/")[1]
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", br], "ip addr").stdout
    if f" {topo.gateway}/{prefix} " not in addrs:
        run(["ip", "addr", "add", f"{topo.gateway}/{prefix}", "dev", br], f"address {br}")
    run(["ip", "link", "set", br, "up"], f"bring {br} up")


def create_host_net(topo: Topology, host: Host) -> None:
    ns, veth = host.netns, host.veth
    if ns not in list_netns():
        run(["ip", "netns", "add", ns], f"create netns {ns}")
    _write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1", ns)
    _write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1", ns)
    if link_exists(veth):
        run(["ip", "link", "del", veth], f"remove stale {veth}")
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns], f"create veth {veth}")
    _write_sysctl(f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6", "1")
    run(["ip", "link", "set", veth, "master", topo.bridge, "up"], f"attach {veth} to {topo.bridge}")
    prefix = topo.subnet.split("/")[1]
    run(["ip", "-n", ns, "link", "set", "lo", "up"], f"lo up in {ns}")
    run(["ip", "-n", ns, "addr", "add", f"{host.address}/{prefix}", "dev", "eth0"], f"address in {ns}")
    run(["ip", "-n", ns, "link", "set", "eth0", "up"], f"eth0 up in {ns}")
    # Deliberately no default route: only the connected lab subnet is reachable.


# Runs as PID 1 of the new PID namespace, inside the new mount namespace, before chroot.
_ENTER = r"""
set -e
M="$1"; LOWER="$2"; UP="$3"; WORK="$4"; NAME="$5"
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UP,workdir=$WORK" "$M"
mount -t proc proc "$M/proc"
mount -t sysfs sysfs "$M/sys"
mount -t tmpfs -o mode=755,size=16m tmpfs "$M/dev"
for d in null zero full random urandom tty; do : > "$M/dev/$d"; mount --bind "/dev/$d" "$M/dev/$d"; done
mkdir -p "$M/dev/pts" "$M/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$M/dev/pts"
ln -s pts/ptmx "$M/dev/ptmx"; ln -s /proc/self/fd "$M/dev/fd"
ln -s /proc/self/fd/0 "$M/dev/stdin"; ln -s /proc/self/fd/1 "$M/dev/stdout"; ln -s /proc/self/fd/2 "$M/dev/stderr"
mount -t tmpfs -o mode=1777 tmpfs "$M/dev/shm"
mount -t tmpfs -o mode=755 tmpfs "$M/run"
hostname "$NAME"
exec chroot "$M" /usr/bin/tini -- /bin/sh /usr/local/lib/lab/init.sh
"""


def start_host(host: Host, root: Path, rundir: Path, absent: str) -> int:
    """Start one host; return the PID of its `unshare` process (killing it ends the host)."""
    merged, upper, work = rundir / "merged", rundir / "upper", rundir / "work"
    for d in (merged, work):
        d.mkdir(parents=True, exist_ok=True)
    console = rundir / "console.log"
    cmd = [
        "nsenter", f"--net=/run/netns/{host.netns}",
        "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "--propagation", "private",
        "sh", "-c", _ENTER, "lab-enter", str(merged), str(root), str(upper), str(work), host.name,
    ]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "LAB_ABSENT_PACKAGES": absent, "LAB_HOST": host.name}
    with open(console, "ab") as log:
        # New session, not our child for long: it must survive the `lab up` process.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)
    return proc.pid


def init_pid(unshare_pid: int) -> int | None:
    """PID (in our namespace) of the host's PID 1, i.e. the child of `unshare`."""
    try:
        kids = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def pid_is(pid: int, marker: str) -> bool:
    """Is `pid` alive and still the process we recorded (guards against PID reuse)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return marker in cmdline and ") Z " not in stat


def kill_and_wait(pid: int, marker: str, timeout: float = 10.0) -> bool:
    if not pid_is(pid, marker):
        return True
    try:
        os.kill(pid, signal.SIGKILL)  # unshare ignores SIGTERM; --kill-child takes the host along
    except ProcessLookupError:
        return True
    # Reap it if it happens to be our own child (up and down in one process).
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_is(pid, marker):
            return True
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], timeout: float = 10.0) -> bool:
    """Wait until every pid has exited (a zombie counts as gone: it runs nothing, holds no mount)."""
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def netns_pids(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], f"ip netns pids {ns}", check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def delete_netns(ns: str) -> None:
    if ns in list_netns():
        run(["ip", "netns", "del", ns], f"delete netns {ns}", check=False)


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "del", name], f"delete link {name}", check=False)


def nsexec(pid: int, argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run a command inside a running host (all its namespaces and its chroot)."""
    cmd = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", *argv]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "HOME": "/root"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
