"""The zh/en label of a vocabulary word, from labels.yaml beside this module (one data file for every label)."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from scanner.core import vocab

LABELS_FILE = Path(__file__).with_name("labels.yaml")
# Each kind of label and the vocabulary tuple whose words it labels.
KINDS: dict[str, tuple[str, ...]] = {
    "severity": vocab.SEVERITIES,
    "area": vocab.AREAS,
    "zone": vocab.ZONES,
    "asset_class": vocab.ASSET_CLASSES,
    "attempt_status": vocab.ATTEMPT_STATUSES,
    "attempt_reason": vocab.ATTEMPT_REASONS,
    "verdict": vocab.VERDICTS,
    "finding_status": vocab.FINDING_STATUSES,
}


@functools.cache
def labels() -> dict[str, dict[str, dict[str, str]]]:
    """kind -> value -> lang -> label, as written in labels.yaml (shipped with the package: read once)."""
    return yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))


def label(kind: str, value: str, lang: str) -> str:
    """The label of `value` (a word of the vocabulary `kind`) in `lang`.

    A value outside the vocabulary comes back as it is: a scan stored by an older version may hold a word
    that was renamed since, and a report must still render. An unknown kind or language is our bug."""
    if kind not in KINDS:
        raise ValueError(f"unknown label kind {kind!r} (one of {', '.join(KINDS)})")
    if lang not in vocab.LANGS:
        raise ValueError(f"unknown language {lang!r} (one of {', '.join(vocab.LANGS)})")
    entry = labels().get(kind, {}).get(value)
    return entry[lang] if entry else value


def labels_of(kind: str, value: str) -> dict[str, str]:
    """Both labels, as the {zh, en} dicts reports carry."""
    return {lang: label(kind, value, lang) for lang in vocab.LANGS}
