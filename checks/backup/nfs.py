"""backup.nfs: NFS exports offered to every host (`showmount -e`, nfs-common).

The MOUNT protocol (ONC RPC via rpcbind) is left to the system's showmount rather than written here;
without it the check says so (unsupported) instead of guessing. Runs once per host, on port 2049.
"""

from __future__ import annotations

import shutil
import subprocess

from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

META = CheckMeta(
    id="backup.nfs",
    version="1.0",
    title_zh="NFS 共享导出范围",
    title_en="NFS exports open to everyone",
    granularity="service",
    services=("nfs",),
    ports=(2049,),
    timeout=30.0,
    description="showmount -e against the host; records export paths and who may mount them.",
)
EVERYONE = {"*", "(everyone)", "everyone", "0.0.0.0/0", "::/0", "*.*"}


def parse_showmount(text: str) -> list[dict]:
    """`showmount -e --no-headers` lines: `/path  client1,client2` (pure: tested with hypothesis)."""
    out = []
    for line in text.splitlines()[:1000]:
        if not line.startswith("/"):
            continue
        path, _, clients = line.rstrip().rpartition(" ")
        path = path.strip() or clients
        who = [c for c in clients.split(",") if c][:50] if path != clients else ["(everyone)"]
        out.append({"path": path[:256], "clients": [c[:100] for c in who]})
    return out


def run(ctx: CheckContext) -> list[Observation]:
    exe = shutil.which("showmount")
    if not exe:
        raise CheckError("unsupported", "showmount (Debian package nfs-common) is not installed on the scanner")
    ctx.allow()
    try:
        p = subprocess.run([exe, "-e", "--no-headers", ctx.address], capture_output=True, text=True,
                           timeout=min(20.0, ctx.remaining()))
    except subprocess.TimeoutExpired:
        raise CheckError("timeout", f"showmount -e {ctx.address} did not answer") from None
    if p.returncode != 0:
        raise CheckError("connectivity", f"showmount -e {ctx.address}: {p.stderr.strip()[:200]}")
    exports = parse_showmount(p.stdout[:1048576])
    open_ = [e["path"] for e in exports if EVERYONE & set(e["clients"])]
    return [ctx.observation("nfs-exports", {"exports": exports, "open_exports": open_})]
