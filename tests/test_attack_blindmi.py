"""attackers/blindmi.py: closed-form moves == the BlindMI script's loop, toy answer, generator, leaky vs null."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from attackers.blindmi import (
    BlindMIAttack,
    BlindMIConfig,
    differential_comparison,
    generate_nonmembers,
    kernel_row_sums,
)
from attackers.nn import TrainConfig
from test_attack_features import assert_leaky_vs_null, make_attack_input  # noqa: E402

# hyhmia/BlindMI BlindMIUtil.mmd_loss widths, typed in again so the oracle shares no code with the module
WIDTHS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 5, 10, 15, 20, 25, 30, 35, 100, 1e3, 1e4, 1e5, 1e6]


def _mmd(a: np.ndarray, b: np.ndarray) -> float:
    def k(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        d2 = cdist(u, v, "sqeuclidean")
        return sum(np.exp(-d2 / (2.0 * s)) for s in WIDTHS)
    return float(k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean())


def script_loop(target: np.ndarray, reference: np.ndarray, batch_size: int, seed: int) -> tuple[np.ndarray, ...]:
    """Oracle: BlindMI_Diff_W.py's per-candidate loop (MMD recomputed for every move), same batches."""
    order = np.random.default_rng(seed).permutation(len(target))
    decisions, scores = np.zeros(len(target), int), np.zeros(len(target))
    for batch in np.array_split(order, -(-len(order) // batch_size)):
        pred = np.ones(batch.size, bool)
        changed = True
        while changed and pred.sum() >= 2:  # an empty M' has no MMD: the script never moves a lone row
            changed = False
            before = _mmd(reference, target[batch[pred]])
            new_pred = pred.copy()
            for i in np.flatnonzero(pred):
                rest = pred.copy()
                rest[i] = False
                delta = _mmd(np.vstack([reference, target[batch[i]]]), target[batch[rest]]) - before
                scores[batch[i]] = -delta
                if delta > 0:
                    new_pred[i], changed = False, True
            pred = new_pred
        decisions[batch] = pred
    return decisions, scores


def _top3(rng: np.random.Generator, n: int, alpha: float) -> np.ndarray:
    return -np.sort(-rng.dirichlet([alpha] * 5, n), axis=1)[:, :3]


@pytest.mark.parametrize("seed", range(4))
def test_closed_form_equals_script_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    target = np.vstack([_top3(rng, 15, 0.2), _top3(rng, 14, 3.0)])
    reference = _top3(rng, 6, 3.0)
    fast = differential_comparison(target, reference, batch_size=7, seed=seed)
    slow = script_loop(target, reference, batch_size=7, seed=seed)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-7, atol=1e-10)
    assert 0 < fast[0].sum() < len(target)  # the case exercised moves (and kept some rows)


def test_toy_members_separated_from_nonmembers() -> None:
    rng = np.random.default_rng(0)
    members = np.array([0.98, 0.01, 0.01]) + rng.normal(0, 0.003, (40, 3))
    nonmembers = np.array([0.4, 0.35, 0.25]) + rng.normal(0, 0.02, (40, 3))
    reference = np.array([0.4, 0.35, 0.25]) + rng.normal(0, 0.02, (20, 3))
    decisions, scores = differential_comparison(np.vstack([members, nonmembers]), reference, batch_size=20)
    np.testing.assert_array_equal(decisions, [1] * 40 + [0] * 40)
    np.testing.assert_array_equal(decisions, (scores >= 0).astype(int))


def test_generate_nonmembers_shuffles_positions_per_sample() -> None:
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)  # distinct values
    out = generate_nonmembers(x, 5, torch.Generator().manual_seed(0))
    again = generate_nonmembers(x, 5, torch.Generator().manual_seed(0))
    assert out.shape == (5, 3, 2, 2)
    torch.testing.assert_close(out, again)
    for row in out:
        source = x[int(row[0].min()) // 12]  # values identify the source image
        pixels = {tuple(p) for p in source.reshape(3, -1).T.tolist()}
        assert {tuple(p) for p in row.reshape(3, -1).T.tolist()} == pixels  # colours kept, positions moved
    tab = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]] * 3)
    out_tab = generate_nonmembers(tab, 50, torch.Generator().manual_seed(1))
    assert (out_tab.sum(dim=1) == 3).all() and ((out_tab == 0) | (out_tab == 1)).all()
    assert len({tuple(r) for r in out_tab.tolist()}) > 5  # rows really are reshuffled


@pytest.mark.parametrize("leaky", [True, False])
def test_blindmi_leaky_vs_null(leaky: bool) -> None:
    data = make_attack_input(leaky)
    (result,) = BlindMIAttack(BlindMIConfig()).run(data)
    assert_leaky_vs_null(data, result, leaky)


def test_blindmi_needs_reference() -> None:
    data = make_attack_input(True, n_shadow=10, n_target=10)
    data.reference_probs = None
    with pytest.raises(ValueError, match="reference_probs"):
        BlindMIAttack().run(data)


def test_kernel_row_sums_blocks_and_config_handling() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((50, 3)), rng.random((7, 3))
    direct = sum(np.exp(-cdist(a, b, "sqeuclidean") / (2.0 * s)) for s in WIDTHS).sum(axis=1)
    np.testing.assert_allclose(kernel_row_sums(a, b, rows_per_block=6), direct, rtol=1e-12)
    # a learned attack's config carries only its seed over; extra references beyond n_reference are unused
    assert BlindMIAttack(TrainConfig(batch_size=128, seed=3)).config == BlindMIConfig(seed=3)
    data = make_attack_input(True, n_shadow=10, n_target=30)
    (first,) = BlindMIAttack().run(data)
    data.reference_probs = np.vstack([data.reference_probs, np.eye(5)])
    (again,) = BlindMIAttack().run(data)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert again.extra["n_reference"] == 20
