"""Facts about the world (weak algorithms, risky ports, default credentials): one YAML table per file
under baselines/knowledge/, each with its source. Read by checks, discovery, evaluation and grading."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from scanner.core.errors import UsageError

BASELINES_DIR = Path(__file__).resolve().parents[2] / "baselines"
KNOWLEDGE_DIR = BASELINES_DIR / "knowledge"


# Every YAML file tcmscan reads (profiles, rule files, knowledge tables, inventories) may come from another
# department: it is bounded before it is built. Aliases are counted as the copies they stand for, so a
# "billion laughs" document is refused, not expanded by whatever walks it next (validation, JSON, deepcopy).
MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_NODES = 500_000       # after aliases are expanded (the largest built-in table has 8,000)
MAX_YAML_DEPTH = 32            # nesting (the built-in files reach 8)


def read_yaml(path: Path, what: str) -> Any:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise UsageError(f"{what} {path} is larger than {MAX_YAML_BYTES // 2**20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text") from None
    return load_yaml(text, f"{what} {path}")


def load_yaml(text: str, where: str, *, quote_errors: bool = True) -> Any:
    """YAML's safe subset, refused with one line when it nests too deep or its aliases expand too far.
    `quote_errors=False` for files holding secrets: a parse error's text can quote the line it failed on."""
    # libyaml's loader when present: the same safe subset, ~8x faster on the large knowledge tables
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        why = f": {str(e).splitlines()[0]}" if quote_errors else ""
        raise UsageError(f"{where} is not valid YAML{why}") from None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node, where: str) -> None:
    """Nodes and nesting as if every alias were a copy of its anchor, computed once per distinct node."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()         # nodes whose children are being counted: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, counted = stack.pop()
        kids = _children(node)
        if counted:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(k)] for k in kids)
            depth[id(node)] = 1 + max((depth[id(k)] for k in kids), default=0)
            if depth[id(node)] > MAX_YAML_DEPTH:
                raise UsageError(f"{where} nests deeper than {MAX_YAML_DEPTH} levels")
            if size[id(node)] > MAX_YAML_NODES:
                raise UsageError(f"{where}: its aliases expand to more than {MAX_YAML_NODES} nodes"
                                 if size[id(node)] > len(size) + 1 else
                                 f"{where} holds more than {MAX_YAML_NODES} nodes")
            continue
        if id(node) in size:
            continue
        if id(node) in open_:
            raise UsageError(f"{where}: an alias refers to a node that contains it")
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in size)


@functools.cache
def knowledge() -> dict[str, Any]:
    """Facts about the world (weak algorithms, risky ports, default credentials), one file per table."""
    tables: dict[str, Any] = {}
    for f in sorted(KNOWLEDGE_DIR.glob("*.yaml")):
        doc = read_yaml(f, "knowledge table")
        if not isinstance(doc, dict) or "source" not in doc:
            raise UsageError(f"knowledge table {f} must be a mapping with a 'source'")
        tables[f.stem] = doc
    return tables
