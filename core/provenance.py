"""Provenance: what produced a finished output, so that it is reused only when every setting that produced it
matches (docs/design.md §9). Pure functions, no torch: the step scripts record and check, this module says what.

Every checkpoint, score file and attack output carries one record:

    {"version": 2, "kind": ..., "settings": {...}, "split": {...}, "model_id": uuid4, "parents": {role: model_id},
     "code": {"prune_mia": "0.4.0", "commit": "abc1234"}}

- `settings`: the effective settings of the output, i.e. the WHOLE config and run options minus the keys listed
  below as unable to influence that kind of output (default-include: a key added to config.py later is
  recorded and checked without touching this file), plus what the step adds (the pruned model's name, the
  defense's options, the attack's own config).
- `split`: the split fingerprint of the rows it was made on (seed, scheme, fractions and a hash of the role's
  own index arrays), so a new split is noticed even when every setting matches.
- `model_id`: fresh per run that wrote the output, so a retrained model is a new model even when training is
  bit-reproducible; `parents`: the model_ids of what it was derived from (a pruned model: its original; an
  attack output: victim, shadows and references). A parent whose id changed makes the output stale.
- `code`: the project version and commit that wrote it (core/version.py). Other code does not make an output
  stale, but reusing one is never silent: `REUSE` counts them for the step's closing note, and refuses them
  under --strict_version (docs/design.md §9.4). A record without `code` was made before 0.4.0.

`verify` compares a record with what a run expects: the split differs -> refuse (members changed); a parent
changed -> stale (the caller redoes it, or refuses when it cannot); a setting differs -> refuse naming it; no
record (made before records existed) -> refuse. Refusals are one UserError line that names `--overwrite`.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import UserError
from core.version import code_version, describe

VERSION = 2  # 2: the code that wrote the output (`code`)

# Config keys no output depends on: where the data are read from (the split fingerprint covers which rows),
# and the config's file name, which names the result folder the output lives in.
NEVER = {"data_root", "stem"}
# Keys only the attack step reads.
ATTACK_ONLY = {"attack_epochs", "attack_lr", "sensitivity", "n_bootstrap"}
# Keys of the models' own kind that cannot change a trained model:
#   shadow_num - model i depends on seed + i only, and more shadows extend the split without changing the first;
#   ref_models - references are prefix-stable (references.py), each model is the same for any count;
#   memscore   - memscore.py's settings, recorded with its scores; a model that reads them names them as parent.
NOT_MODEL = NEVER | ATTACK_ONLY | {"shadow_num", "ref_models", "memscore"}
IGNORED: dict[str, set[str]] = {
    # pretrain.py's originals (and refs.py's original references): fine-tuning keys come later
    "original": NOT_MODEL | {"prune_epochs", "prune_iter"},
    "pruned": NOT_MODEL,
    # memscore.py trains its K models for a fixed number of epochs (no early stopping) on candidate rows that
    # never come from the victim / shadow split; its own settings are passed in effective form
    "memscore": NEVER | ATTACK_ONLY | {"shadow_num", "ref_models", "prune_epochs", "prune_iter", "early_stop",
                                       "split", "memscore"},
    # mia.py: the attack's own config (what it really read of attack_epochs / attack_lr) is passed in; only
    # the attacks that read refs.py's references depend on ref_models (the caller drops it for the others)
    "attack": NEVER | {"attack_epochs", "attack_lr"},
}
# Run options that cannot change a number: where and how fast a step runs, and what it prints.
RUN_OPTIONS_IGNORED = {"config_path", "device", "overwrite", "quiet", "threads", "workers", "download"}


def canonical(value: Any) -> Any:
    """The JSON form of a value (tuples become lists, numpy scalars plain numbers), so a recorded value read
    back compares equal to a freshly built one."""
    return json.loads(json.dumps(value, sort_keys=True, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a setting")


def effective_settings(config: Mapping[str, Any], options: Mapping[str, Any], kind: str,
                       **extra: Any) -> dict[str, Any]:
    """The settings of an output of `kind`: every config key and run option except the ones listed above as
    unable to influence it, plus `extra` (what the step itself adds)."""
    settings = {k: v for k, v in config.items() if k not in IGNORED[kind]}
    settings |= {k: v for k, v in options.items() if k not in RUN_OPTIONS_IGNORED}
    return canonical(settings | extra)


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short hash (16 hex digits) of settings in canonical JSON: equal settings, equal fingerprint."""
    return hashlib.sha256(json.dumps(canonical(settings), sort_keys=True).encode()).hexdigest()[:16]


def rows_hash(parts: Sequence[np.ndarray]) -> str:
    """sha256 (16 hex digits) of index arrays in order, each with its length, so (train, dev, test) = (a, b, c)
    and (a + b[:1], b[1:], c) hash differently."""
    h = hashlib.sha256()
    for part in parts:
        arr = np.ascontiguousarray(np.asarray(part, dtype=np.int64))
        h.update(np.int64(arr.size).tobytes())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def split_fingerprint(seed: int, scheme: str, fractions: Mapping[str, float],
                      parts: Sequence[np.ndarray]) -> dict[str, Any]:
    """The split one output was made on: how it was drawn and which rows the role got (train, dev, test)."""
    return canonical({"seed": seed, "split_scheme": scheme, "split": dict(fractions), "rows": rows_hash(parts)})


def new_record(kind: str, settings: Mapping[str, Any], split: Mapping[str, Any] | None,
               parents: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A fresh record for an output being written now: a new model_id, whatever the output."""
    return {"version": VERSION, "kind": kind, "settings": canonical(dict(settings)),
            "split": canonical(dict(split)) if split is not None else None, "model_id": uuid.uuid4().hex,
            "parents": dict(parents or {}), "code": code_version()}


def first_difference(recorded: Mapping[str, Any], expected: Mapping[str, Any],
                     defaults: Mapping[str, Any] | None = None, prefix: str = "") -> tuple[str, Any, Any] | None:
    """(key, recorded value, expected value) of the first expected key (sorted; nested keys dotted, e.g.
    `sensitivity.n`) whose values differ, else None. A key the record lacks (added to the code after the
    output was made) matches when the run asks for its default: the old code behaved as the default does.
    Keys only the record has (removed since) cannot be asked for and are ignored."""
    defaults = defaults or {}
    for key in sorted(expected):
        want = expected[key]
        name = prefix + key
        if key not in recorded:
            if key in defaults and canonical(defaults[key]) == canonical(want):
                continue
            return name, None, want
        have = recorded[key]
        if isinstance(have, Mapping) and isinstance(want, Mapping):
            inner = first_difference(have, want, defaults.get(key) if isinstance(defaults.get(key), Mapping)
                                     else None, prefix=name + ".")
            if inner is not None:
                return inner
        elif canonical(have) != canonical(want):
            return name, have, want
    return None


def shown(value: Any) -> str:
    """A setting as a user types it: 0.01, 5, adam, true, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


@dataclass(frozen=True)
class Expected:
    """What a run expects of one output: its settings, its split (None: not tied to a split), the current
    model_ids of its parents (None for a parent that is gone), and the defaults of settings (see
    first_difference)."""

    settings: dict[str, Any]
    split: dict[str, Any] | None
    parents: dict[str, str | None] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None  # the record's kind it must be (None: any)


def verify(what: str, record: Mapping[str, Any] | None, expected: Expected, remedy: str,
           made: str = "made") -> str | None:
    """Whether the output `what` (its path) may be reused: None = yes; a sentence = it is stale (a parent was
    retrained since), the caller redoes it or refuses; UserError = it must not be used: it predates records,
    its split differs (members changed) or a setting differs. `remedy`: the hint (e.g. 'rerun with
    --overwrite to replace it'); `made`: the verb of the message (trained, computed, made)."""
    if not isinstance(record, Mapping) or not isinstance(record.get("settings"), Mapping):
        raise UserError(f"{what} predates settings records (nothing says which settings produced it)", remedy)
    if expected.kind is not None and record.get("kind") != expected.kind:
        raise UserError(f"{what} holds a {record.get('kind')} output where this run needs a {expected.kind} one",
                        remedy)
    if expected.split is not None:
        split = record.get("split") if isinstance(record.get("split"), Mapping) else {}
        how = {k: v for k, v in expected.split.items() if k != "rows"}  # how it was drawn first: the clearer cause
        diff = first_difference(split, how) or first_difference(split, expected.split)
        if diff is not None:
            key, old, new = diff
            detail = ("the same seed and fractions, other rows" if key == "rows"
                      else f"{key} {shown(old)}, this run's split has {shown(new)}")
            raise UserError(f"{what} was {made} on another split ({detail}): its members changed", remedy)
    parents = record.get("parents") if isinstance(record.get("parents"), Mapping) else {}
    for role, current in sorted(expected.parents.items()):
        if parents.get(role) != current:
            gone = "is gone" if current is None else "was remade since"
            return f"the {role} it was derived from {gone}"
    diff = first_difference(record["settings"], expected.settings, expected.defaults)
    if diff is not None:
        key, old, new = diff
        if old is None:
            raise UserError(f"{what} has no record of {key}, this run asks for {shown(new)}", remedy)
        raise UserError(f"{what} was {made} with {key} {shown(old)}, this run asks for {shown(new)}", remedy)
    REUSE.reused(what, record, remedy)
    return None


class CodeCheck:
    """The outputs this process reuses that other code made (another version or commit, or a record from before
    versions were recorded): one note at the end of the step, or under --strict_version a refusal of the
    first. A step resets it when it parses its flags (experiment.cli.parse)."""

    def __init__(self) -> None:
        self.strict = False
        self.other: dict[str, str] = {}  # output (its path) -> the code that made it, as describe() says

    def start(self, strict: bool) -> None:
        self.strict, self.other = strict, {}

    def reused(self, what: str, record: Mapping[str, Any], remedy: str) -> None:
        code = record.get("code")
        if isinstance(code, Mapping) and dict(code) == code_version():
            return
        made = describe(code if isinstance(code, Mapping) else {})  # {}: made before versions were recorded
        if self.strict:
            raise UserError(f"{what} was made by {made}; this is {describe()}",
                            f"{remedy}, or drop --strict_version to reuse it")
        self.other[what] = made

    def note(self) -> str | None:
        """`note: reusing 12 outputs made by prune-mia 0.3.0 (commit 05348e4); this is ...`, or None."""
        if not self.other:
            return None
        counts = Counter(self.other.values())
        n = len(self.other)
        by = (f"made by {next(iter(counts))}" if len(counts) == 1 else
              "made by other code (" + ", ".join(f"{k} by {m}" for m, k in sorted(counts.items())) + ")")
        return (f"note: reusing {n} output{'s' if n > 1 else ''} {by}; this is {describe()}; "
                "--strict_version refuses them")


REUSE = CodeCheck()
