"""WeMem defenses (docs/wemem.md): each epoch's composition (which indices, which optimizer) against hand-built
expectations on an 11-row score table, WeMem's window bug vs the fix, the per-round window replay, and the
two Adams of RMR carried through iterative rounds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pruner
from core.errors import UserError
from core.training import SplitTensors, StepStats, TrainConfig, fit
from defenses.wemem import WEMEM_DEFENSES, make_wemem_defense, risky_split, sort_by_class, window_indices

# position:       0    1    2    3    4  |  5    6  |  7    8    9    10
LABELS = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
SCORES = np.array([.9, .1, .5, .7, .3, .2, .8, .6, .4, .95, .05])
# ranked per class by hand:  H->L c0 [0,3,2,4,1] c1 [6,5] c2 [9,7,8,10];  L->H c0 [1,4,2,3,0] c1 [5,6] c2 [10,8,7,9]
RISKY_06 = {0, 3, 6, 7, 9}  # score >= 0.6


def window(order: str, epoch: int, bug: bool = False, stride: int = 1, width: int = 3) -> set[int]:
    ranked = sort_by_class(LABELS, SCORES, order)
    return set(window_indices(ranked, epoch, stride, width, carry_clipped_end=bug).tolist())


def test_class_ranking_by_hand() -> None:
    assert [r.tolist() for r in sort_by_class(LABELS, SCORES, "desc")] == [[0, 3, 2, 4, 1], [6, 5], [9, 7, 8, 10]]
    assert [r.tolist() for r in sort_by_class(LABELS, SCORES, "asc")] == [[1, 4, 2, 3, 0], [5, 6], [10, 8, 7, 9]]
    assert [r.tolist() for r in sort_by_class(LABELS, None, "split")] == [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9, 10]]


def test_windows_fixed_vs_wemem_bug() -> None:
    # stride 1, width 3: epoch 0 = ranks 0..2 of every class. Class 1 has only 2 rows, so WeMem clips `end` to 2
    # and class 2, processed after it, loses its rank 2 (row 8).
    assert window("desc", 0) == {0, 3, 2, 6, 5, 9, 7, 8}
    assert window("desc", 0, bug=True) == {0, 3, 2, 6, 5, 9, 7}
    # epoch 1 = ranks 1..3: class 1 keeps rank 1 only (clip to 2); the bug cuts class 2 to rank 1 only.
    assert window("desc", 1) == {3, 2, 4, 5, 7, 8, 10}
    assert window("desc", 1, bug=True) == {3, 2, 4, 5, 7}
    # epoch 2: class 1 is skipped (start 2 >= size 2) before any clip, so the bug changes nothing.
    assert window("desc", 2) == window("desc", 2, bug=True) == {2, 4, 1, 8, 10}
    # epoch 5: every class is exhausted.
    assert window("desc", 5) == set()
    assert window("asc", 0) == {1, 4, 2, 5, 6, 10, 8, 7}
    assert window("split", 0) == {0, 1, 2, 5, 6, 7, 8, 9}
    assert window("desc", 1, stride=2, width=2) == {2, 4, 8, 10}


def test_risky_split_by_hand() -> None:
    assert set(np.flatnonzero(risky_split(SCORES, 0.6)).tolist()) == RISKY_06


# name -> epoch 0's (group, positions) by hand, stride 1 width 3 thr 0.6
EXPECTED_EPOCH0 = {
    "slide": [("all", {0, 3, 2, 6, 5, 9, 7, 8})],
    "slide_re": [("all", {1, 4, 2, 5, 6, 10, 8, 7})],
    "random": [("all", {0, 1, 2, 5, 6, 7, 8, 9})],
    "ml2": [("risky", RISKY_06), ("general", set(range(11)) - RISKY_06)],
    "slide_ml2": [("risky", {0, 3, 6, 9, 7}), ("general", {2, 5, 8})],
    "slide_re_ml2": [("risky", {6, 7}), ("general", {1, 4, 2, 5, 10, 8})],
}


def table_data() -> SplitTensors:
    """x[:, 0] is the row's position, so a batch tells which rows it holds."""
    x = torch.stack([torch.arange(11, dtype=torch.float32), torch.linspace(-1, 1, 11)], 1)
    y = torch.from_numpy(LABELS)
    return SplitTensors(x, y, x.clone(), y.clone(), x.clone(), y.clone())


def recording(name: str, **kw) -> tuple:
    hooks = make_wemem_defense(name, SCORES, stride=1, width=3, mem_thre=0.6, weight_decay_mem=0.1, **kw)
    seen: list[tuple[int, int, list[int]]] = []  # (epoch, id of optimizer, positions)
    step = type(hooks).train_step

    def train_step(model, optimizer, x, y, epoch) -> StepStats:
        out = step(hooks, model, optimizer, x, y, epoch)
        used = hooks.risk_optimizer if hooks.group == "risky" else optimizer
        seen.append((epoch, id(used), x[:, 0].long().tolist()))
        return out
    hooks.train_step = train_step  # type: ignore[method-assign]
    return hooks, seen


@pytest.mark.parametrize("name", list(EXPECTED_EPOCH0))
def test_epoch_composition_and_optimizer_choice(name: str) -> None:
    hooks, seen = recording(name)
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    cfg = TrainConfig(epochs=2, batch_size=2, early_stop=5, progress=False)
    fit(model, table_data(), cfg, hooks=hooks, generator=torch.Generator().manual_seed(0))
    main = [s for s in seen if s[1] != id(hooks.risk_optimizer)]
    epoch0 = [s for s in seen if s[0] == 0]
    groups, current = [], None  # consecutive batches of one optimizer form one group
    for _, opt, pos in epoch0:
        if opt != current:
            groups.append((opt, set()))
            current = opt
        assert not groups[-1][1] & set(pos)  # each row once per epoch
        groups[-1][1].update(pos)
    want = EXPECTED_EPOCH0[name]
    assert [g[1] for g in groups] == [w[1] for w in want]  # the sets, in order: risky pass first
    for (opt, _), (group, _) in zip(groups, want):
        assert (opt == id(hooks.risk_optimizer)) == (group == "risky")
    if hooks.rmr:
        risky_batches = sum(1 for s in seen if s[1] == id(hooks.risk_optimizer))
        assert hooks.risk_optimizer.param_groups[0]["weight_decay"] == 0.1
        assert {int(st["step"]) for st in hooks.risk_optimizer.state.values()} == {risky_batches}
        assert len(main) == len(seen) - risky_batches
    else:
        assert hooks.risk_optimizer is None


def test_window_replays_in_every_iterative_round() -> None:
    hooks, seen = recording("slide_ml2")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    cfg = TrainConfig(epochs=2, batch_size=4, early_stop=5, progress=False)
    pruner.iterative_prune(model, table_data(), cfg, 3, 0.5, "iter_pruning", lambda: hooks,
                           torch.Generator().manual_seed(0))
    per_round = [seen[i * len(seen) // 3:(i + 1) * len(seen) // 3] for i in range(3)]
    for r in per_round:  # each round: epochs 0 and 1, with the same windows as round 0
        assert sorted({s[0] for s in r}) == [0, 1]
        for e in (0, 1):
            rows = sorted(p for s in r if s[0] == e for p in s[2])
            assert rows == sorted(window("desc", e))
    # one risky Adam through all rounds: its steps are every round's risky batches
    risky = sum(1 for s in seen if s[1] == id(hooks.risk_optimizer))
    assert {int(st["step"]) for st in hooks.risk_optimizer.state.values()} == {risky}


def test_scores_must_match_the_split() -> None:
    hooks = make_wemem_defense("ml2", SCORES[:5])
    with pytest.raises(UserError, match="5 mem-scores"):
        fit(nn.Linear(2, 3), table_data(), TrainConfig(epochs=1, progress=False), hooks=hooks,
            generator=torch.Generator())
    with pytest.raises(UserError):
        make_wemem_defense("slide", SCORES, stride=0)
    with pytest.raises(UserError):
        make_wemem_defense("nope", SCORES)


def test_registry_and_folder_names_carry_every_hyper_parameter() -> None:
    assert set(WEMEM_DEFENSES) == {"slide", "slide_re", "random", "ml2", "slide_ml2", "slide_re_ml2"}
    a = make_wemem_defense("slide_ml2", SCORES, stride=100, width=500, mem_thre=0.5, weight_decay_mem=0.1)
    b = make_wemem_defense("slide_ml2", SCORES, stride=100, width=500, mem_thre=0.6, weight_decay_mem=0.1)
    assert a.folder_suffix() == "s100-w500-thr0.5-wdm0.1" and a.folder_suffix() != b.folder_suffix()
    assert make_wemem_defense("slide_re", SCORES, stride=1, width=15).folder_suffix() == "s1-w15"
    assert make_wemem_defense("ml2", SCORES).settings() == {"mem_thre": 0.6, "weight_decay_mem": 5e-4}
