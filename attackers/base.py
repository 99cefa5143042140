"""The one input dataclass every attack reads, the result it returns, and the attack interface.

Convention used everywhere in attackers/: a larger score means "more likely a member".
Shadow rows are the pooled shadow models' train (member=1) and test (member=0) samples;
target rows are the victim's train (member=1) and test (member=0) samples.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch


@dataclass
class AttackInput:
    """Features of the shadow models (to fit the attack) and of the victim (to attack).

    probs: (n, C) softmax confidences; sens: (n, C) prediction sensitivity (paper eq. 2);
    labels: (n,) int ground-truth classes; member: (n,) 0/1 membership.
    reference_probs: softmax outputs of the *victim* on generated non-members (BlindMI), or None.

    Reference-model attacks (lira, rmia, loss) read the logit-scaled true-class confidence
    phi = log(p_y / (1 - p_y)) (`attackers.lira.lira_statistic`; RMIA's p_y is sigmoid(phi)):
    target_stat: (n,) the victim's phi on the target rows (None: computed from target_probs);
    reference_stats: (n, R) reference model r's phi on target row i; reference_in: (n, R) bool, whether
    reference r trained on target row i (None: no reference saw any target row, the offline setting);
    population_stat: (m,) the victim's phi on population points z that the victim never saw;
    population_ref_stats / population_ref_in: (m, R) the same for the references (in None: all out).
    """

    shadow_probs: np.ndarray
    shadow_sens: np.ndarray
    shadow_labels: np.ndarray
    shadow_member: np.ndarray
    target_probs: np.ndarray
    target_sens: np.ndarray
    target_labels: np.ndarray
    target_member: np.ndarray
    num_cls: int
    reference_probs: np.ndarray | None = None
    target_stat: np.ndarray | None = None
    reference_stats: np.ndarray | None = None
    reference_in: np.ndarray | None = None
    population_stat: np.ndarray | None = None
    population_ref_stats: np.ndarray | None = None
    population_ref_in: np.ndarray | None = None


@dataclass
class AttackResult:
    """One attack's verdict on the victim: one score per target row, and hard decisions.

    paper_acc: the accuracy (%) the artifact printed for this attack (balanced accuracy for the
    threshold family, plain accuracy of the last epoch for the learned attacks).
    """

    name: str
    scores: np.ndarray
    decisions: np.ndarray
    paper_acc: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TargetAccess:
    """What an attack may do with the victim before it runs (`Attack.prepare`): query it as a black box on
    inputs of its own making. `inputs` are the victim's target rows (members then non-members)."""

    inputs: torch.Tensor
    query: Callable[[torch.Tensor], np.ndarray]  # inputs -> softmax outputs (n, C)


class Attack:
    """An attack is a small class with a config and `run` (LeakPro style); see attackers/__init__.py.

    Its class attributes are everything a caller needs, so no caller branches on an attack's name:
    `result_names` (what `run` returns, default just `name`), `artifact_lines` (the artifact's log line per
    result), `headline` (the results the report's headline table shows), `reference_set` / `min_references`
    (the reference models it reads), `reads` (the AttackInput fields `run` reads) and `prepare` (work before
    `run` that needs the victim itself; its dict is merged into the AttackInput).
    """

    name: ClassVar[str] = ""
    config_cls: ClassVar[type | None] = None  # the settings dataclass its __init__ takes, if any
    result_names: ClassVar[tuple[str, ...]] = ()
    artifact_lines: ClassVar[dict[str, str]] = {}
    headline: ClassVar[tuple[str, ...]] = ()
    proposed: ClassVar[tuple[str, ...]] = ()  # the paper's own attack (the report's default main attack)
    baseline: ClassVar[tuple[str, ...]] = ()  # the simple attack other results are compared with (Fig 10)
    classic: ClassVar[tuple[str, ...]] = ()   # the strongest classic attack, shown beside the reference attacks
    family: ClassVar[str] = ""  # a name for several registered variants (`--attacks lira` = online + offline)
    # Reference-model attacks: which reference set fills the AttackInput's reference fields ("online": models
    # trained on halves of a population holding the targets, refs.py; "offline": models that never saw the
    # victim's data, the shadows), and how many references the attack needs at the least.
    reference_set: ClassVar[str | None] = None
    min_references: ClassVar[int] = 0
    # The AttackInput fields `run` reads besides the victim's outputs, labels and membership on the targets
    # (target_probs, target_labels, target_member, num_cls, which every caller gives): a caller holding only
    # some arrays (attackers/api.py) names the one an attack lacks. Default: the classic shadow-model attack's.
    reads: ClassVar[tuple[str, ...]] = ("shadow_probs", "shadow_labels", "shadow_member")

    def __init__(self, config: Any = None) -> None:
        """`config`: an instance of `config_cls` (its defaults when None); attacks without settings keep None."""
        self.config = config if config is not None else (self.config_cls() if self.config_cls else None)

    @classmethod
    def results(cls) -> tuple[str, ...]:
        return cls.result_names or (cls.name,)

    @classmethod
    def create(cls, **settings: Any) -> Attack:
        """An attack with its config built from the `settings` its config dataclass knows (others ignored),
        so a caller can pass one pool of settings (epochs, lr, device, seed, ...) to every attack."""
        if cls.config_cls is None:
            return cls()
        known = {f.name for f in dataclasses.fields(cls.config_cls)}
        return cls(cls.config_cls(**{k: v for k, v in settings.items() if k in known}))  # type: ignore[call-arg]

    def prepare(self, target: TargetAccess) -> dict[str, Any]:
        """Extra AttackInput fields computed from the victim itself; most attacks need none."""
        del target
        return {}

    def run(self, data: AttackInput) -> list[AttackResult]:
        raise NotImplementedError
