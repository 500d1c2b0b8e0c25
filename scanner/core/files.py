"""Files and directories tcmscan creates for what it keeps (database, job state, pinned host keys): 0600 and
0700 whatever the umask, since they map a hospital's weaknesses or vouch for its hosts."""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create `path` and its missing parents 0700. A directory that already exists is left as it is: it may be
    someone else's (/var/lib, a shared mount), and its mode is theirs to choose."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue                           # made by a concurrent run meanwhile: not ours to change
        os.chmod(d, 0o700)                     # exact, whatever the umask took away


def private_file(path: Path) -> bool:
    """Create `path` empty and 0600 when it does not exist (True); an existing file is left alone (False)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return True
