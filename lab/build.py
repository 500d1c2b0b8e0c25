"""Build (once) and cache the shared lab root file system.

The cache key is a hash of the package lists and the build scripts, so editing any
rebuilds; the root is built into a temporary directory and renamed into place only when
the build script succeeded, so a half-built root is never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lab.topology import LAB_DIR, Topology

BUILD_SCRIPT = LAB_DIR / "rootfs.sh"
ARCHIVE_SCRIPT = LAB_DIR / "apt-archive.sh"    # run by rootfs.sh: the lab's offline security archive


class BuildError(RuntimeError):
    """One line saying which build step failed."""


def cache_key(topo: Topology) -> str:
    h = hashlib.sha256()
    h.update(BUILD_SCRIPT.read_bytes())
    h.update(ARCHIVE_SCRIPT.read_bytes())
    h.update("\n".join(topo.packages).encode())
    h.update(b"\0" + "\n".join(topo.pip_packages).encode())
    h.update(b"\0" + topo.mirror.encode())
    return h.hexdigest()[:16]


def root_path(topo: Topology) -> Path:
    return topo.cache_dir / cache_key(topo) / "root"


def ensure_root(topo: Topology, progress: Callable[[str], None] = print) -> Path:
    """Return the cached root, building it first if needed."""
    final = root_path(topo)
    if (final / "usr/sbin/sshd").exists():
        return final
    topo.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = topo.cache_dir / f"tmp-{cache_key(topo)}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    progress(f"building the lab root file system into {tmp} (first run, about 1-2 min)")
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(tmp / "root"), topo.mirror,
         " ".join(topo.packages), " ".join(topo.pip_packages)],
        capture_output=True, text=True, check=False,
        # the root's pure-Python libraries are installed with tcmscan's own interpreter's pip (its venv), not
        # whatever python3 is first on PATH (Debian's refuses pip, PEP 668)
        env={**os.environ, "PYTHON": sys.executable},
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("STEP-FAILED:")]
        # Keep the log for diagnosis, drop the half-built tree.
        log = tmp / "root.log"
        keep = topo.cache_dir / f"failed-{cache_key(topo)}.log"
        if log.exists():
            shutil.copy(log, keep)
        subprocess.run(["umount", "-l", str(tmp / "root/proc")], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        msg = lines[0][len("STEP-FAILED:"):].strip() if lines else (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise BuildError(f"lab root build failed: {msg.replace(str(log), str(keep))}")
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp / "root", final)  # atomic on the same file system
    (tmp / "root.log").replace(final.parent / "build.log")
    shutil.rmtree(tmp, ignore_errors=True)
    size = subprocess.run(["du", "-sm", str(final)], capture_output=True, text=True, check=False).stdout.split()
    progress(f"lab root built in {time.monotonic() - t0:.0f} s ({size[0] if size else '?'} MB): {final}")
    return final
