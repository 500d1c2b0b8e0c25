"""The house plan, enforced: imports point one way between the sub-packages (docs/ARCHITECTURE.md).

Every import in every module is read, function-level ones included, so a dependency cannot hide in a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer -> the layers it may import (itself always allowed)
ALLOWED = {
    "core": set(),
    "sdk": {"core"},
    "store": {"core"},
    "assess": {"core", "store"},
    "engine": {"core", "sdk", "store", "assess"},
    "reports": {"core", "store", "assess"},
    "schedule": {"core", "store", "assess", "engine", "reports"},
    "cli": {"core", "sdk", "store", "assess", "engine", "reports", "schedule", "lab"},
    "lab": {"core"},
    "checks": {"sdk"},
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "scanner":
        # the package root holds only __version__: it counts as core
        return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "core"
    if parts[0] in ("reports", "lab", "checks"):
        return parts[0]
    return None


def project_modules() -> list[tuple[str, Path]]:
    out = []
    for top in ("scanner", "reports", "lab", "checks"):
        for p in sorted((ROOT / top).rglob("*.py")):
            if "build" in p.relative_to(ROOT).parts[:2]:
                continue
            rel = p.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append((".".join(parts), p))
    return out


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    found = []
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from scanner import sdk` names a sub-package: judge that, not the package root
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names
                      if layer_of(f"{target}.{a.name}") not in (None, layer_of(target))]
    return found


def violations() -> list[str]:
    bad = []
    for module, path in project_modules():
        src_layer = layer_of(module)
        for line, target in imports_of(module, path):
            dst_layer = layer_of(target)
            if dst_layer is None or dst_layer == src_layer:
                if src_layer == "checks" and dst_layer == "checks":
                    # a check family may use its own private helpers, never another family's
                    if target.split(".")[:2] != module.split(".")[:2] and len(target.split(".")) > 1:
                        bad.append(f"{path.relative_to(ROOT)}:{line}: {module} -> {target} (another check family)")
                continue
            if dst_layer not in ALLOWED[src_layer]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {module} ({src_layer}) -> {target} ({dst_layer})")
    return bad


def test_imports_point_one_way() -> None:
    assert violations() == []


def test_checks_import_only_the_sdk() -> None:
    for module, path in project_modules():
        if not module.startswith("checks."):
            continue
        for line, target in imports_of(module, path):
            if target.split(".")[0] == "scanner":
                assert target == "scanner.sdk" or target.startswith("scanner.sdk."), f"{path}:{line} imports {target}"


def test_the_allowed_graph_has_no_cycle() -> None:
    seen: dict[str, int] = {}

    def visit(n: str, stack: tuple[str, ...]) -> None:
        assert n not in stack, f"cycle: {' -> '.join((*stack, n))}"
        for m in ALLOWED[n]:
            visit(m, (*stack, n))
        seen[n] = 1

    for n in ALLOWED:
        visit(n, ())


@pytest.mark.parametrize("bad_import, expected", [
    ("from scanner.engine.scan import start_scan", "(sdk) -> scanner.engine.scan (engine)"),
    ("from scanner.cli import main", "(sdk) -> scanner.cli (cli)"),
    ("from scanner import engine", "(sdk) -> scanner.engine (engine)"),
])
def test_a_wrong_way_import_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_import: str,
                                      expected: str) -> None:
    """The enforcement itself can fail: a module planted in the sdk that imports the engine is reported."""
    planted = ROOT / "scanner" / "sdk" / "_planted_for_test.py"
    planted.write_text(bad_import + "\n", encoding="utf-8")
    try:
        found = violations()
    finally:
        planted.unlink()
    assert [v for v in found if "_planted_for_test" in v] == [
        f"scanner/sdk/_planted_for_test.py:1: scanner.sdk._planted_for_test {expected}"]


def test_a_check_importing_another_family_is_caught() -> None:
    planted = ROOT / "checks" / "tls" / "_planted_for_test.py"
    planted.write_text("from checks.ssh import _wire\n", encoding="utf-8")
    try:
        found = [v for v in violations() if "_planted_for_test" in v]
    finally:
        planted.unlink()
    assert found == ["checks/tls/_planted_for_test.py:1: checks.tls._planted_for_test -> checks.ssh "
                     "(another check family)"]


def test_every_check_family_lists_its_check_files_without_underscore() -> None:
    """Inside a family, helpers are private (_wire.py): a listing shows which files are checks."""
    import tomllib

    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["tcmscan.checks"]
    check_files = {ROOT / (v.replace(".", "/") + ".py") for v in eps.values()}
    for p in sorted((ROOT / "checks").glob("*/*.py")):
        if p.name == "__init__.py":
            continue
        if p in check_files:
            assert not p.name.startswith("_"), p
        else:
            assert p.name.startswith("_"), f"{p.relative_to(ROOT)} is not a registered check: name it _{p.name}"
