"""The lab's scale mode (issue 18): many lightweight hosts for the speed benchmarks, apart from the hospital lab.

One network namespace (`tcmscale`) holds N addresses on one veth; inside it one OpenSSH sshd (22), one nginx
(HTTP 80, HTTPS 443 with a self-signed certificate) answer on every address: N hosts with sshd, a TLS server and
HTTP each, as the issue describes them, for the price of three processes. Debian's own daemons, the host's
binaries (openssh-server, nginx-light: scripts/apt-test.txt). No default route in the namespace, no forwarding;
everything made is recorded in STATE and removed by those ids (`down`).

    python -m lab scale up --hosts 250      # as root
    python -m lab scale status
    python -m lab scale down
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from lab.netns import LabError, delete_link, delete_netns, kill_and_wait, list_netns, run, wait_gone

NETNS = "tcmscale"
HOST_LINK = "tcmscale0"
SUBNET = ipaddress.ip_network("10.78.0.0/22")
HOST_ADDRESS = "10.78.0.1"
FIRST = 10                     # hosts are SUBNET's addresses FIRST, FIRST + 1, ...
MAX_HOSTS = 1000
RUNDIR = Path("/run/tcmscan-lab/scale")
STATE = RUNDIR / "state.json"


def addresses(n: int) -> list[str]:
    return [str(SUBNET.network_address + FIRST + i) for i in range(n)]


def status() -> dict[str, Any]:
    try:
        state = json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {"running": False, "subnet": str(SUBNET), "hosts": []}
    return {"running": NETNS in list_netns(), "subnet": str(SUBNET), "hosts": addresses(state["hosts"]),
            "pids": state["pids"], "link": HOST_LINK}


def _nginx_conf() -> str:
    return (f"worker_processes 2;\npid {RUNDIR}/nginx.pid;\nerror_log {RUNDIR}/nginx-error.log;\ndaemon off;\n"
            "events { worker_connections 4096; }\n"
            f"http {{\n  access_log off;\n  client_body_temp_path {RUNDIR}/body;\n"
            f"  proxy_temp_path {RUNDIR}/proxy;\n  fastcgi_temp_path {RUNDIR}/fastcgi;\n"
            f"  uwsgi_temp_path {RUNDIR}/uwsgi;\n  scgi_temp_path {RUNDIR}/scgi;\n"
            "  server {\n    listen 80;\n    listen 443 ssl;\n"
            f"    ssl_certificate {RUNDIR}/tls.crt;\n    ssl_certificate_key {RUNDIR}/tls.key;\n"
            "    location / { return 200 \"scale lab\\n\"; }\n  }\n}\n")


def _sshd_conf() -> str:
    return (f"Port 22\nListenAddress 0.0.0.0\nHostKey {RUNDIR}/ssh_host_ed25519_key\nUsePAM no\nUseDNS no\n"
            f"PidFile {RUNDIR}/sshd.pid\nPermitRootLogin no\nPasswordAuthentication no\nMaxStartups 500:30:1000\n")


def up(hosts: int, progress=print) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise PermissionError("the scale lab needs root (namespaces, veth)")
    if not 1 <= hosts <= MAX_HOSTS:
        raise LabError(f"--hosts must be 1..{MAX_HOSTS}")
    if NETNS in list_netns() or STATE.exists():
        raise LabError("the scale lab is already up (python -m lab scale down first)")
    for binary in ("/usr/sbin/sshd", "/usr/sbin/nginx", "openssl", "ssh-keygen"):
        if not shutil.which(binary):
            raise LabError(f"{binary} is not installed (scripts/apt-test.txt: openssh-server, nginx-light)")
    RUNDIR.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"hosts": hosts, "pids": {}}
    STATE.write_text(json.dumps(state))          # first: whatever follows is undone by `down`
    run(["ip", "netns", "add", NETNS], "create the scale namespace")
    run(["ip", "link", "add", HOST_LINK, "type", "veth", "peer", "name", "eth0", "netns", NETNS], "create the veth")
    run(["ip", "addr", "add", f"{HOST_ADDRESS}/{SUBNET.prefixlen}", "dev", HOST_LINK], "address the host side")
    run(["ip", "link", "set", HOST_LINK, "up"], "host side up")
    batch = "".join(f"addr add {a}/{SUBNET.prefixlen} dev eth0\n" for a in addresses(hosts))
    subprocess.run(["ip", "-n", NETNS, "-batch", "-"], input=batch + "link set eth0 up\nlink set lo up\n",
                   text=True, check=True, capture_output=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(RUNDIR / "ssh_host_ed25519_key")], "host key")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", "/CN=scale.lab.test", "-keyout", str(RUNDIR / "tls.key"), "-out", str(RUNDIR / "tls.crt")],
        "TLS certificate")
    (RUNDIR / "sshd_config").write_text(_sshd_conf())
    (RUNDIR / "nginx.conf").write_text(_nginx_conf())
    Path("/run/sshd").mkdir(exist_ok=True)
    for name, argv in (("sshd", ["/usr/sbin/sshd", "-D", "-f", str(RUNDIR / "sshd_config")]),
                       ("nginx", ["/usr/sbin/nginx", "-c", str(RUNDIR / "nginx.conf")])):
        log = open(RUNDIR / f"{name}.log", "ab")     # noqa: SIM115 - the daemon keeps it
        proc = subprocess.Popen(["ip", "netns", "exec", NETNS, *argv], stdout=log, stderr=log,
                                start_new_session=True)
        state["pids"][name] = proc.pid           # `ip netns exec` execs the daemon: the same pid
        STATE.write_text(json.dumps(state))
    _wait_listening(addresses(hosts)[-1], (22, 80, 443))
    progress(f"scale lab up: {hosts} hosts {addresses(hosts)[0]}..{addresses(hosts)[-1]} (sshd 22, nginx 80/443)")
    return status()


def _wait_listening(address: str, ports: tuple[int, ...], timeout: float = 20.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                socket.create_connection((address, port), timeout=1).close()
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise LabError(f"the scale lab's port {port} did not open: {e}") from None
                time.sleep(0.1)


def down(progress=print) -> None:
    if os.geteuid() != 0:
        raise PermissionError("the scale lab needs root (namespaces, veth)")
    try:
        state = json.loads(STATE.read_text())
    except (OSError, ValueError):
        state = {"pids": {}}
    pids = []
    for name, pid in state.get("pids", {}).items():
        marker = f"/usr/sbin/{name}"
        kill_and_wait(pid, marker)
        pids.append(pid)
    wait_gone(pids)
    delete_link(HOST_LINK)
    delete_netns(NETNS)
    if RUNDIR.exists():
        shutil.rmtree(RUNDIR)
    progress("scale lab down")
