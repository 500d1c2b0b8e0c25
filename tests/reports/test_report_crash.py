"""`tcmscan report` killed with SIGKILL leaves at --out either a complete signed bundle that verifies or nothing:
never a half-written directory. 20 kills at moments drawn from a printed seed (TCMSCAN_CRASH_SEED replays
them) over the measured length of the command, half into a new --out and half with --force over an earlier
bundle; then a kill at every file-system step of the write itself (too short to hit by time)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reports.signing import ED_PRIVATE, ED_PUBLIC, SM2_PRIVATE, SM2_PUBLIC, load_public_key, verify_bundle
from tests.crash import (
    KILLS,
    PAIRS,
    crash_rng,
    in_pairs,
    kill_at,
    kill_moments,
    self_killed_at,
    tcmscan_cmd,
    timed,
)
from tests.helpers import tcmscan

pytestmark = pytest.mark.slow          # 20 kills and as many runs: about a minute

FORMATS = "html,json,csv,sarif"
NAMES = ["findings.csv", "manifest.json", "manifest.sig", "manifest.sm2.sig", "report.html", "report.json",
         "report.sarif"]


def report_args(db: Path, sid: str, out: Path, keys: Path, pp: Path, force: bool, formats: str = FORMATS,
                sm2: bool = True) -> list[str]:
    return ["--db", str(db), "report", sid, "--format", formats, "--lang", "en", "--out", str(out), "--sign",
            str(keys / ED_PRIVATE), *(["--sign-sm2", str(keys / SM2_PRIVATE)] if sm2 else []),
            "--passphrase-file", str(pp), *(["--force"] if force else [])]


def at_out(out: Path, pubkeys: list, names: list[str] = NAMES) -> str:
    """What a user finds at --out: 'none', or 'bundle' when it is a complete bundle that verifies. Anything
    else fails the test: --out is never half written, and nothing but --out and hidden 0700 staging
    directories (`.NAME.tmp-*`, `.NAME.old-*`) appears next to it."""
    beside = sorted(p.name for p in out.parent.iterdir() if p.name != out.name)
    assert all(n.startswith((f".{out.name}.tmp-", f".{out.name}.old-")) for n in beside), beside
    assert all(oct((out.parent / n).stat().st_mode & 0o777) == "0o700" for n in beside), beside
    if not out.exists():
        return "none"
    problems, _ = verify_bundle(out, pubkeys)
    assert problems == [], f"--out {out} holds a bundle that does not verify: {problems}"
    assert sorted(p.name for p in out.iterdir()) == names
    return "bundle"


def test_report_killed_at_20_moments_leaves_a_whole_bundle_or_none(hostile_scans, keypair, tmp_path):
    db, _, _, sid = hostile_scans
    keys, pp = keypair
    pubkeys = [load_public_key(keys / ED_PUBLIC), load_public_key(keys / SM2_PUBLIC)]
    earlier = tmp_path / "earlier"                     # a complete bundle the --force runs replace
    p = tcmscan(*report_args(db, sid, earlier, keys, pp, force=False))
    assert p.returncode == 0, p.stderr

    def reference_run(i: int) -> None:
        out = tmp_path / f"ref{i}" / "out"
        p = tcmscan(*report_args(db, sid, out, keys, pp, force=False))
        assert p.returncode == 0, p.stderr
        assert at_out(out, pubkeys) == "bundle"

    duration = timed(reference_run)
    seed, rng = crash_rng("report")
    moments = kill_moments(rng, duration)

    def trial(i: int) -> str:
        force = i % 2 == 1
        out = tmp_path / f"k{i}" / "out"

        def prepare() -> None:
            shutil.rmtree(out.parent, ignore_errors=True)
            out.parent.mkdir()
            if force:
                shutil.copytree(earlier, out)

        at, k = kill_at(tcmscan_cmd(*report_args(db, sid, out, keys, pp, force)), moments[i], prepare=prepare)
        why = f"seed {seed}, kill {i} at {at:.2f} s of {duration:.2f} s{' (--force)' if force else ''}"
        assert k.killed, f"{why}: the report ended before any kill ({k.returncode}: {k.stderr})"
        found = at_out(out, pubkeys)                # "bundle" in a new --out: killed after its rename
        p = tcmscan(*report_args(db, sid, out, keys, pp, force=True))
        assert p.returncode == 0, f"{why}: {p.stderr}"
        assert at_out(out, pubkeys) == "bundle", why
        return f"{'--force' if force else 'new'}: {found}"

    seen = in_pairs(trial, KILLS)
    print(f"report: {KILLS} kills over {duration:.2f} s: {sorted(seen)}")


def test_report_killed_at_every_step_of_writing_leaves_a_whole_bundle_or_none(hostile_scans, keypair, tmp_path):
    """Kill N lands just before the N-th file-system call from the first one that touches --out's directory:
    every state the write passes through, into a new --out and over an earlier bundle with --force, until the
    new bundle is in place. One format and one signature: the steps are the same for every file."""
    db, _, _, sid = hostile_scans
    keys, pp = keypair
    pubkeys = [load_public_key(keys / ED_PUBLIC)]
    names = ["manifest.json", "manifest.sig", "report.json"]

    def args(out: Path, force: bool) -> list[str]:
        return report_args(db, sid, out, keys, pp, force, formats="json", sm2=False)

    earlier = tmp_path / "earlier"
    assert tcmscan(*args(earlier, False)).returncode == 0
    for force in (False, True):
        def killed_at(step: int, force: bool = force) -> str:
            out = tmp_path / f"{'f' if force else 'n'}{step}" / "out"
            out.parent.mkdir()
            if force:
                shutil.copytree(earlier, out)
            p = self_killed_at(step, out.parent, args(out, force))
            assert p.returncode == -9, f"step {step}: the run was not killed ({p.returncode}: {p.stderr})"
            found = at_out(out, pubkeys, names)
            shutil.rmtree(out.parent)
            return found

        states: list[str] = []
        for first in range(1, 100, PAIRS):
            states += in_pairs(lambda i, first=first: killed_at(first + i), PAIRS)
            done = [i for i, s in enumerate(states) if s == "bundle" and (not force or "none" in states[:i])]
            if done:                                 # the new bundle is in place: what follows is cleaning up
                del states[done[0] + 1:]
                break
        print(f"report {'--force' if force else 'new --out'}: killed at {len(states)} steps: {states}")
        assert len(states) >= 2 * len(names) + 2, states
        runs = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
        # a new --out: nothing until the one rename that puts the whole bundle there; --force: the earlier
        # bundle until it is renamed aside, nothing for the one step until the new one is renamed in
        assert runs == (["bundle", "none", "bundle"] if force else ["none", "bundle"]), states
