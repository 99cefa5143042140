"""What each record field the report reads holds: its kind gives the values a record may carry (checked when the
record is read, reporting/records.py) and the number format of its Markdown column (reporting/markdown.py), so
the range a value is refused outside of and the way it is printed come from one table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.results import FIELD_NAMES, AttackRecord


@dataclass(frozen=True)
class Kind:
    """A number kind: finite values in [low, high] (infinity too when `infinite`), whole numbers when
    `integer`, printed with `fmt` in Markdown tables."""

    low: float
    high: float
    fmt: str
    integer: bool = False
    infinite: bool = False

    def problem(self, value: object) -> str | None:
        """Why `value` is not of this kind (None: it is). Booleans are not numbers; an integer too large for a
        float (a 309-digit accuracy) is out of range like any other."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"not a number ({type(value).__name__})"
        if self.integer and not isinstance(value, int):
            return "not a whole number"
        try:
            number = float(value)
        except OverflowError:
            return "out of range"
        if math.isnan(number):
            return "not a number (NaN)"
        if math.isinf(number) and not (self.infinite and number > 0):
            return "infinite"
        if not self.low <= number <= self.high:
            return f"outside [{self.low:g}, {self.high:g}]"
        return None


BIG = 1e15  # a bound for quantities without a natural one (seconds, MSE, PSNR): far above any real run's
PERCENT = Kind(0.0, 100.0, ".1f")            # accuracies, AUC, TPR, success rates (87.7)
SIGNED_PERCENT = Kind(-100.0, 100.0, ".1f")  # a difference of two percentages (generalization gap)
SPARSITY = Kind(0.0, 1.0, "g")               # as configured (0.6)
FRACTION = Kind(0.0, 1.0, ".3f")             # a share that is not a percentage (F1, a measured sparsity)
SIGNED_FRACTION = Kind(-1.0, 1.0, ".3f")     # a difference of two fractions (confidence gap, 2P-1)
SETTING = Kind(0.0, BIG, "g")                # a defense argument or noise level as configured (16, 0.1)
COUNT = Kind(0, 2**63, "g", integer=True)    # rows, references, rounds
SEED = Kind(-(2**63), 2**63, "g", integer=True)
EPSILON = Kind(0.0, BIG, ".2f", infinite=True)  # DP epsilon; infinite without noise
SECONDS = Kind(0.0, BIG, ".1f")
REAL = Kind(-BIG, BIG, ".4g")                # finite, no natural range (sensitivity gap, MSE, PSNR, losses)
DEFAULT_FORMAT = ".4g"  # a float column the table below does not know: four significant digits, never an error

# The numbers of a record, by JSON key. AttackRecord's own fields first, then the keys nas_privacy.py adds.
NUMBERS: dict[str, Kind] = {
    **dict.fromkeys(("paper_acc", "acc", "balanced_acc", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr",
                     "tpr_at_0.01pct_fpr", "auc_ci_low", "auc_ci_high", "tpr_at_0.1pct_fpr_ci_low",
                     "tpr_at_0.1pct_fpr_ci_high", "victim_train_acc", "victim_test_acc", "pretrained_test_acc",
                     "pruned_test_acc", "accuracy_cap", "target_theta_acc", "target_alpha_acc",
                     "target_unseen_acc", "sr"), PERCENT),
    "generalization_gap": SIGNED_PERCENT,
    **dict.fromkeys(("prune_sparsity", "shadow_prune_sparsity"), SPARSITY),
    **dict.fromkeys(("victim_sparsity", "victim_sparsity_pruned_layers", "delta", "f1", "mem_score_tie_share"),
                    FRACTION),
    **dict.fromkeys(("confidence_gap", "attack_acc_2p1"), SIGNED_FRACTION),
    **dict.fromkeys(("defend_arg", "grad_noise", "eta", "channel_bits"), SETTING),
    **dict.fromkeys(("n_members", "n_nonmembers", "n_bootstrap", "n_references", "shadow_num", "attack_epochs",
                     "prune_iter", "dp_steps", "version", "P", "batch", "n", "arch_grad_rank", "unknowns",
                     "mem_score_unknown"), COUNT),
    "seed": SEED,
    "epsilon": EPSILON,
    **dict.fromkeys(("attack_seconds", "feature_seconds", "defense_seconds"), SECONDS),
    **dict.fromkeys(("sensitivity_gap", "mse", "psnr", "psnr_threshold", "match_loss"), REAL),
}
# Names that become part of a path (a figure's file name, a folder to read from) or of a figure's text: plain
# file-name components (records.safe_name). The empty string means "none" for `defend`.
NAMES = ("config", "setting", "attack", "pruner_name", "shadow_pruner_name", "shadow_prefix", "defend",
         "dataset_name", "model_name", "defense_mode", "dp_accountant", "split_scheme", "activation", "defense",
         "membership_set", "attacker_theta", "shadow_model")
TEXTS = ("time", "privacy_note")  # free text: one line, bounded
PATHS = ("scores_file", "grid")   # files under the results root (reporting/files.py reads them)
FLAGS = ("original", "adaptive")
# Nested fields: key -> kind of their values (None: any short text or number, nested at most MAX_DEPTH deep)
MAPPINGS: dict[str, Kind | None] = {"split": FRACTION, "sensitivity": REAL, "versions": None,
                                    "defense_options": None, "provenance": None}
MAX_DEPTH = 4           # levels of nesting a record may hold (provenance's parents are 2 deep)
MAX_TEXT = 2000         # characters of one text value
MAX_NAME = 128          # characters of one name

INTEGER = Kind(-(2**63), 2**63, ".4g", integer=True)


def schema_kind(key: str) -> str | Kind | None:
    """The kind of an AttackRecord field this module does not list, from its annotation (a field added to the
    schema later is checked as what it is declared to be): a Kind, "text", "flag", "mapping", or None for a key
    that is not a schema field."""
    field = AttackRecord.__dataclass_fields__.get(FIELD_NAMES.get(key, key))
    if field is None or field.name == "extra":
        return None
    declared = str(field.type)
    for prefix, kind in (("float", REAL), ("int", INTEGER), ("str", "text"), ("bool", "flag"), ("dict", "mapping")):
        if declared.startswith(prefix):
            return kind
    return None
