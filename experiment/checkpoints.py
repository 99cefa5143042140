"""Checkpoint I/O with provenance: loading a model (masks re-attached, weights checked finite), the effective
settings, split fingerprint and parents every output records (core/provenance.py), and the checks that
decide whether a saved model may be reused, is stale, or must be refused. `Checkpoints` is mixed into
`Experiment`; it reads `cfg`, `opts`, `splits`, `place` and the layout's paths.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

import pruner
from core import config_schema, provenance
from core.errors import UserError
from core.setting import ModelSetting
from core.storage import checkpoint_record, load_checkpoint, log, npz_record
from core.training import require_finite
from defenses import DefenseOptions, needs_mem_scores
from experiment.layout import Layout, memscore_file
from experiment.runtime import RunOptions
from models import build_model


class Checkpoints(Layout):
    """Reading models and checking what produced them (a mixin of `Experiment`)."""

    splits: Any  # datasets.Splits

    def place(self, model: nn.Module) -> nn.Module:  # Experiment's: on the device, in the data's layout
        raise NotImplementedError

    def load_model(self, setting: ModelSetting, shadow: int | None, options: DefenseOptions | None = None
                   ) -> tuple[nn.Module, dict[str, Any]]:
        """A model from its best.pth, verified first (model_id); a pruned one gets its masks re-attached so zeros
        stay zeros. `options`: the defense options the run names the model with (defended models)."""
        self.model_id(setting, shadow, options)
        return self.load_model_at(self.checkpoint_path(setting, shadow), self.make_command(setting))

    def load_model_at(self, path: Path, hint: str) -> tuple[nn.Module, dict[str, Any]]:
        """`load_model` for a checkpoint anywhere (reference models); `hint` is the command that makes it."""
        ckpt = load_checkpoint(path, hint)
        model = build_model(self.cfg.model_name, self.cfg.num_cls, self.cfg.input_dim)
        try:
            if ckpt.get("masks"):
                pruner.load_pruned(model, ckpt["state"], ckpt["masks"])
            else:
                model.load_state_dict(ckpt["state"])
        except (RuntimeError, KeyError, AttributeError, TypeError) as e:
            raise UserError(f"checkpoint {path} does not fit model {self.cfg.model_name} "
                            f"({str(e).splitlines()[0][:120]})", f"delete it and rerun: {hint}") from None
        require_finite(model, f"checkpoint {path} holds a diverged model", f"delete it and rerun: {hint}")
        return self.place(model), ckpt

    def settings(self, kind: str, **extra: Any) -> dict[str, Any]:
        """The effective settings of an output of `kind` made by this run."""
        return provenance.effective_settings(dataclasses.asdict(self.cfg), vars(self.opts), kind, **extra)

    def split_of(self, parts: tuple[np.ndarray, ...]) -> dict[str, Any]:
        return provenance.split_fingerprint(self.cfg.seed, self.cfg.split_scheme, self.cfg.split, parts)

    def role_split(self, shadow: int | None) -> dict[str, Any]:
        """The split fingerprint of the victim's (None) or shadow i's rows."""
        s = self.splits
        return self.split_of((s.victim_train, s.victim_dev, s.victim_test) if shadow is None else s.shadows[shadow])

    def model_settings(self, setting: ModelSetting, options: DefenseOptions | None) -> dict[str, Any]:
        """An original's or a pruned model's settings: the config's, the model's name and, when defended, every
        DefenseOptions field (default-include: options added later are covered)."""
        if setting.is_original:
            return self.settings("original")
        extra: dict[str, Any] = {"model": {"pruner_name": setting.pruner_name, "prune_sparsity": setting.sparsity,
                                           "defend": setting.defend, "defend_arg": setting.defend_arg}}
        if setting.defended:
            extra["defense_options"] = defense_values(options or DefenseOptions())
        return self.settings("pruned", **extra)

    def model_parents(self, setting: ModelSetting, shadow: int | None) -> dict[str, str | None]:
        """The current model_ids of what a model derives from: a pruned model's original (same role) and the
        mem-scores its defense reads; None for one that is gone."""
        if setting.is_original:
            return {}
        original = self.checkpoint_path(ModelSetting.original(), shadow)
        parents = {"original": record_id(checkpoint_record(original, self.command("pretrain.py"))
                                         if original.is_file() else None)}
        if needs_mem_scores(setting.defend):
            scores = memscore_file(self.cfg)
            parents["mem-score table"] = record_id(npz_record(scores) if scores.is_file() else None)
        return parents

    def expected_model(self, setting: ModelSetting, shadow: int | None,
                       options: DefenseOptions | None) -> provenance.Expected:
        return provenance.Expected(self.model_settings(setting, options), self.role_split(shadow),
                                   self.model_parents(setting, shadow), settings_defaults(), model_kind(setting))

    def new_model_record(self, setting: ModelSetting, shadow: int | None,
                         options: DefenseOptions | None) -> dict[str, Any]:
        """The record a model being written now carries (a fresh model_id)."""
        expected = self.expected_model(setting, shadow, options)
        return provenance.new_record(model_kind(setting), expected.settings, expected.split,
                                     {k: v for k, v in expected.parents.items() if v is not None})

    def model_status(self, setting: ModelSetting, shadow: int | None, options: DefenseOptions | None) -> str | None:
        """For the step that makes the model: None = its checkpoint is up to date (skip it); a sentence = it is
        stale (redo it); UserError = a setting or the split differs, or it predates records (refuse)."""
        path = self.checkpoint_path(setting, shadow)
        record = checkpoint_record(path, self.make_command(setting))
        return provenance.verify(str(path), record, self.expected_model(setting, shadow, options),
                                 "rerun with --overwrite to replace it", made="trained")

    def model_id(self, setting: ModelSetting, shadow: int | None, options: DefenseOptions | None = None) -> str:
        """The model_id of a model another output derives from, after checking it: a setting or the split
        differs, or it is stale (its original was retrained since) -> UserError naming the step that fixes it."""
        self.require_model(setting, shadow)
        return self.checked_id(self.checkpoint_path(setting, shadow), self.expected_model(setting, shadow, options),
                               self.make_command(setting))

    def checked_id(self, path: Path, expected: provenance.Expected, command: str) -> str:
        """The model_id of the checkpoint at `path` if it may be used as `expected`, else UserError; `command`
        makes it (named in the hint)."""
        record = checkpoint_record(path, command)
        reason = provenance.verify(str(path), record, expected, f"rerun {command} --overwrite to replace it, or use "
                                   "the settings it was trained with", made="trained")
        if reason is not None:
            raise UserError(f"{path} is out of date: {reason}", f"rerun {command} (it redoes out-of-date models)")
        return str(record["model_id"])  # type: ignore[index]

    def expected_reference(self, setting: ModelSetting, index: int, options: DefenseOptions | None,
                           split: dict[str, Any] | None) -> provenance.Expected:
        """What reference `index` of `setting` must be: the victim's settings of that kind, derived (pruned
        ones) from the current original reference `index`; `split`: its rows' fingerprint, None to skip that."""
        parents: dict[str, str | None] = {}
        if not setting.is_original:
            original = self.reference_path(ModelSetting.original(), index)
            parents["original"] = record_id(checkpoint_record(original, self.command("refs.py", "--original"))
                                            if original.is_file() else None)
        return provenance.Expected(self.model_settings(setting, options), split, parents, settings_defaults(),
                                   model_kind(setting))


def models_to_make(exp: Checkpoints, setting: ModelSetting, options: DefenseOptions | None,
                   roles: list[int | None] | None = None) -> list[int | None]:
    """The roles whose model of `setting` the step must (re)make: missing, stale (a parent was remade since;
    logged with the reason) or all under --overwrite. Every refusal (a setting or the split differs, a
    checkpoint predates records) is raised here, before any work; when nothing is left to make, one line says
    so."""
    roles = exp.roles() if roles is None else roles
    if exp.opts.overwrite:
        return list(roles)
    todo = []
    for shadow in roles:
        if not exp.checkpoint_path(setting, shadow).is_file():
            todo.append(shadow)
            continue
        reason = exp.model_status(setting, shadow, options)
        if reason is not None:
            log.info(f"{exp.model_dir(setting, shadow).name}: {reason}, so it is made again")
            todo.append(shadow)
    name = setting.prefix or "original"
    if not todo:
        log.info(f"{name}: all {len(roles)} models up to date (same settings, split and parents), nothing to do "
                 "(use --overwrite to redo)")
    elif len(todo) < len(roles):
        log.info(f"{name}: {len(roles) - len(todo)} of {len(roles)} models up to date, {len(todo)} to make")
    return todo


def model_kind(setting: ModelSetting) -> str:
    """The provenance kind of a model: an original or a pruned (maybe defended) one."""
    return "original" if setting.is_original else "pruned"


def record_id(record: dict[str, Any] | None) -> str | None:
    """The model_id of a record (None: no file, or no record)."""
    return str(record["model_id"]) if isinstance(record, dict) and "model_id" in record else None


def defense_values(options: DefenseOptions) -> dict[str, Any]:
    """Every DefenseOptions field a user sets (mem_scores, supplied by the experiment, is not a setting)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.compare}


@functools.cache
def settings_defaults() -> dict[str, Any]:
    """Each setting's default, for records made before the setting existed (provenance.first_difference)."""
    schema = config_schema
    defaults = {name: schema.default_of(name) for name in schema.FIELDS if name not in schema.REQUIRED}
    defaults |= vars(RunOptions(config_path=""))
    defaults["defense_options"] = defense_values(DefenseOptions())
    return provenance.canonical(defaults)
