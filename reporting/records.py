"""Reading the records: every LOGDIR/*/results.jsonl line that mia.py (or nas_privacy.py) appended, checked field
by field before anything is built from it, then flattened into one DataFrame (the last record per config,
setting and attack).

A line that is not a record the report can use is skipped with one note naming it (`file:line: why`): bytes
that are not UTF-8, text that is not JSON (nesting too deep for the parser included), a missing key, a value of
the wrong type or out of its range (reporting/fields.py), a name that is not a plain file-name component (it
would become part of a path) or nesting deeper than fields.MAX_DEPTH.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from attackers import result_order
from core.errors import UserError
from core.results import JSON_NAMES, AttackRecord
from reporting import fields
from reporting.fields import Kind

KEY = ["config", "setting", "attack"]
SOURCE = "_source"  # the DataFrame column naming each row's line (`file:line`); no record key starts with "_"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,@%-]*")  # no separator, no "..", nothing a shell or TeX reads
PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a top-level key: no dots, flattened columns must not collide
NESTED_KEY = re.compile(r"[^\x00-\x1f\x7f]{1,128}")  # a nested one: provenance's "shadow 0", a setting name
DOTTED_KEYS = frozenset(JSON_NAMES.values())       # the schema's own dotted keys (tpr_at_0.1pct_fpr)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")           # a line break would split a Markdown row or a note line
REQUIRED_NAMES = ("config", "setting", "attack")


def safe_name(value: Any) -> bool:
    """Whether `value` may be one component of a file name: a non-empty string of letters, digits and . _ + = ,
    @ % -, not starting with a dot (so never "." or ".."), at most fields.MAX_NAME characters."""
    return isinstance(value, str) and len(value) <= fields.MAX_NAME and SAFE_NAME.fullmatch(value) is not None


def shown(value: Any) -> str:
    """A value as a note quotes it: repr (line breaks escaped), cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def text_problem(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return f"not text ({type(value).__name__})"
    if len(value) > limit:
        return f"longer than {limit} characters"
    return "holds a control character" if CONTROL.search(value) else None


def nested_problem(value: Any, depth: int, kind: Kind | None = None) -> str | None:
    """A JSON value below the top level: numbers of `kind` (any finite one when None), one-line text, flags,
    lists and objects with plain keys, at most fields.MAX_DEPTH levels deep."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        if depth >= fields.MAX_DEPTH:
            return f"nested more than {fields.MAX_DEPTH} levels deep"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and not NESTED_KEY.fullmatch(key):
                return f"key {shown(key)} is empty, too long or holds a control character"
            why = nested_problem(item, depth + 1, kind)
            if why:
                return f"[{shown(key)}] {why}"
        return None
    if kind is not None:
        return kind.problem(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return fields.REAL.problem(value) if not (isinstance(value, float) and math.isnan(value)) else None
    return text_problem(value, fields.MAX_TEXT)


def field_problem(key: str, value: Any) -> str | None:
    """Why one top-level key and value cannot be read (None: they can). None values are absent fields."""
    if not (PLAIN_KEY.fullmatch(key) or key in DOTTED_KEYS) or len(key) > fields.MAX_NAME:
        return "not a plain key"
    if value is None:
        return None
    kind = fields.NUMBERS.get(key) or fields.schema_kind(key)
    if isinstance(kind, Kind):
        return kind.problem(value)
    if key in fields.NAMES:
        ok = safe_name(value) or (value == "" and key not in REQUIRED_NAMES)
        return None if ok else "not a plain file-name component"
    if key in fields.TEXTS or kind == "text":
        return text_problem(value, fields.MAX_TEXT)
    if key in fields.PATHS:
        return text_problem(value, 4096)
    if key in fields.FLAGS or kind == "flag":
        return None if isinstance(value, bool) else f"not true / false ({type(value).__name__})"
    if key in fields.MAPPINGS or kind == "mapping":
        if not isinstance(value, dict):
            return f"not an object ({type(value).__name__})"
        return nested_problem(value, 1, fields.MAPPINGS.get(key))
    return nested_problem(value, 1)


def without_nan(data: dict[str, Any]) -> dict[str, Any]:
    """NaN numbers (JSON's NaN) as absent values, which is what every table shows for them."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in data.items()}


def parse_line(raw: bytes) -> AttackRecord | str | None:
    """One results.jsonl line: its record, why it is skipped, or None for a blank line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not UTF-8 text (byte {e.start})"
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        return "not valid JSON"
    if not isinstance(data, dict):
        return f"not a JSON object ({type(data).__name__})"
    data = without_nan(data)
    missing = AttackRecord.missing_keys(data)
    if missing:
        return f"no {', '.join(missing)}"
    for key, value in data.items():
        why = field_problem(key, value)
        if why:
            return f"{key} {shown(value)}: {why}"
    try:
        return AttackRecord.from_json(data)
    except (ValueError, TypeError) as e:
        return str(e)


@dataclass(frozen=True)
class Source:
    """A record with the line it came from."""

    where: str
    record: AttackRecord


def read_file(path: Path) -> tuple[list[Source], list[str]]:
    """The usable records of one results.jsonl in file order, and a note for each line skipped."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        return [], [f"{path}: unreadable ({e.strerror}), skipped"]
    found, notes = [], []
    for number, raw in enumerate(lines, 1):
        parsed = parse_line(raw)
        if isinstance(parsed, AttackRecord):
            found.append(Source(f"{path}:{number}", parsed))
        elif parsed is not None:
            notes.append(f"{path}:{number}: {parsed}, skipped")
    return found, notes


def read_records(logdir: Path) -> tuple[list[Source], list[str]]:
    """Every record of LOGDIR/*/results.jsonl in file order, plus notes about what was skipped. A results.jsonl
    that resolves outside LOGDIR (a link) is skipped: the report reads its records from LOGDIR only."""
    if not logdir.is_dir():
        raise UserError(f"{logdir}: {'not a folder' if logdir.exists() else 'no such folder'}",
                        "pass the log/ folder that mia.py writes to")
    files = sorted(logdir.glob("*/results.jsonl"))
    if not files and (logdir / "results.jsonl").is_file():
        raise UserError(f"{logdir} is one config's log folder", f"pass the folder above it: {logdir.parent}")
    records: list[Source] = []
    notes: list[str] = []
    top = logdir.resolve()
    for path in files:
        if not path.resolve().is_relative_to(top) or not path.is_file():
            notes.append(f"{path}: not a file inside {logdir}, skipped")
            continue
        found, skipped = read_file(path)
        records += found
        notes += skipped
    if not records:
        raise UserError(f"no results in {logdir}/*/results.jsonl",
                        "run mia.py first; it appends to log/<config>/results.jsonl")
    return records, notes


def dedup(df: pd.DataFrame) -> pd.DataFrame:
    """The last record per (config, setting, attack) in file order: a rerun with --overwrite replaces."""
    return df.drop_duplicates(subset=KEY, keep="last").reset_index(drop=True)


def normalize(records: list[AttackRecord] | list[Source]) -> pd.DataFrame:
    """Flat, deduplicated, sorted DataFrame: shadow_* = victim's when unset (records of other producers); the
    SOURCE column names each row's line when the records came with one."""
    sources = [r.where if isinstance(r, Source) else "" for r in records]
    plain = [r.record if isinstance(r, Source) else r for r in records]
    df = pd.json_normalize([r.to_json() for r in plain], sep=".")
    df[SOURCE] = sources
    df["defend"] = df["defend"].fillna("").astype(str)
    df["original"] = df["original"].fillna(df["setting"] == "original").astype(bool)
    df["adaptive"] = df["adaptive"].fillna(False).astype(bool)
    for col in ("prune_sparsity", "shadow_prune_sparsity", "defend_arg"):
        df[col] = pd.to_numeric(df[col], errors="coerce").round(6)
    # shadow sparsity 0.0: the unpruned shadows attacking a pruned victim (Figs 12-13), which have no pruner
    unpruned_shadows = df["shadow_prune_sparsity"].eq(0)
    df["shadow_pruner_name"] = df["shadow_pruner_name"].fillna(df["pruner_name"].where(~unpruned_shadows))
    df["shadow_prune_sparsity"] = df["shadow_prune_sparsity"].fillna(df["prune_sparsity"])
    return sort_records(dedup(df))


def sort_records(df: pd.DataFrame) -> pd.DataFrame:
    """Config, original first, pruner, sparsity, defense, argument, adaptive, shadows, attack order."""
    rank = {a: i for i, a in enumerate(result_order())}
    tmp = df.assign(_rank=df["attack"].map(rank).fillna(len(rank)))
    cols = ["config", "original", "pruner_name", "prune_sparsity", "defend", "defend_arg", "adaptive",
            "shadow_pruner_name", "shadow_prune_sparsity", "_rank", "attack"]
    asc = [True, False] + [True] * (len(cols) - 2)
    return tmp.sort_values(cols, ascending=asc, na_position="first", kind="stable").drop(columns="_rank") \
        .reset_index(drop=True)


def is_nas(record: AttackRecord) -> bool:
    """A record of nas_privacy.py (AMIA / ADRA on a searched architecture): its own tables, not the pruning ones."""
    return record.setting.startswith("nas_")


@dataclass(frozen=True)
class Loaded:
    """What a report is built from: the pruning study's records (flat, deduplicated), nas_privacy.py's records
    with their lines, and the notes about lines skipped."""

    df: pd.DataFrame
    nas: list[Source]
    notes: list[str]


def load(logdir: Path) -> Loaded:
    records, notes = read_records(logdir)
    pruning = [r for r in records if not is_nas(r.record)]
    return Loaded(normalize(pruning) if pruning else pd.DataFrame(), [r for r in records if is_nas(r.record)], notes)


def load_results(logdir: Path) -> tuple[pd.DataFrame, list[str]]:
    """The pruning study's records and the notes (nas_privacy.py's records are drawn apart, reporting/nas.py)."""
    loaded = load(logdir)
    return loaded.df, loaded.notes
