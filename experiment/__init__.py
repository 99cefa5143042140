"""The experiment layer: above the science (training loop, pruner, defenses, attackers, models, datasets) and
below the step scripts, which build one `Experiment` per run with `open_experiment(options, config, log_name)`.
The science modules never see it. One concern per module:

- `runtime`: run options, seeds, devices and backends, versions;
- `layout`: where every output lives and the commands that make it;
- `checkpoints`: checkpoint I/O with provenance (reuse, staleness, refusal);
- `session`: the `Experiment` itself (config, device, split, data on the device) and `open_experiment`;
- `workers`: worker processes for `--workers N`;
- `cli`: the command line (flags generated from the config schema, the one-line error path);
- `ensemble`: many models of one kind trained at once.
"""
from experiment.checkpoints import (
    defense_values,
    model_kind,
    models_to_make,
    record_id,
    settings_defaults,
)
from experiment.layout import log_dir, memscore_file, result_dir, role_label, split_file, step_command
from experiment.runtime import (
    MAX_SHADOWS,
    PHASE_SEED,
    RunOptions,
    channels_last,
    configure_backends,
    feature_seed,
    model_seed,
    reference_seed,
    resolve_device,
    seconds_since,
    seed_everything,
    versions,
)
from experiment.session import (
    Experiment,
    check_model_fits,
    check_setting,
    load_pool,
    needs_new_split,
    open_experiment,
    read_pool,
    to_device,
)
from experiment.workers import die_with_parent, for_each_index

__all__ = ["MAX_SHADOWS", "PHASE_SEED", "Experiment", "RunOptions", "channels_last", "check_model_fits",
           "check_setting", "configure_backends", "defense_values", "die_with_parent", "feature_seed",
           "for_each_index", "load_pool", "log_dir", "memscore_file", "model_kind", "model_seed", "models_to_make",
           "needs_new_split", "open_experiment", "read_pool", "record_id", "reference_seed", "resolve_device",
           "result_dir", "role_label", "seconds_since", "seed_everything", "settings_defaults", "split_file",
           "step_command", "to_device", "versions"]
