"""attackers/features.py: confidence, sensitivity (paper eq. 2) against a plain per-copy loop, gaps.

Also home of `make_attack_input`, the synthetic AttackInput the other test_attack_* files share.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from attackers.base import AttackInput, AttackResult
from attackers.features import (
    confidence_gap,
    generalization_gap,
    one_hot,
    predict_proba,
    sensitivity,
    sensitivity_gap,
    top_k_sorted,
)
from attackers.metrics import roc_auc


def _synthetic_rows(rng: np.random.Generator, n: int, num_cls: int, boost: float) -> tuple[np.ndarray, ...]:
    """n rows whose true-class logit is raised by `boost` (bigger boost = more confident)."""
    labels = rng.integers(0, num_cls, n)
    logits = rng.normal(size=(n, num_cls))
    logits[np.arange(n), labels] += boost
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    sens = (1.0 - probs) * (0.5 + np.abs(rng.normal(size=probs.shape)))  # less confident = more sensitive
    return probs, sens, labels


def make_attack_input(leaky: bool, *, n_shadow: int = 1500, n_target: int = 500, num_cls: int = 5,
                      seed: int = 0) -> AttackInput:
    """Members have a true-class boost of 4 and non-members 1.5 when leaky; both 2.5 otherwise.

    reference_probs imitate the victim on generated non-members: no true-class boost at all.
    """
    rng = np.random.default_rng(seed)
    boost_in, boost_out = (4.0, 1.5) if leaky else (2.5, 2.5)

    def split(n: int) -> tuple[np.ndarray, ...]:
        rows_in, rows_out = _synthetic_rows(rng, n, num_cls, boost_in), _synthetic_rows(rng, n, num_cls, boost_out)
        member = np.r_[np.ones(n, np.int64), np.zeros(n, np.int64)]
        return (*(np.concatenate([a, b]) for a, b in zip(rows_in, rows_out)), member)

    sp, ss, sl, sm = split(n_shadow)
    tp, ts, tl, tm = split(n_target)
    reference = _synthetic_rows(rng, 20, num_cls, 0.0)[0]
    return AttackInput(sp, ss, sl, sm, tp, ts, tl, tm, num_cls, reference_probs=reference)


def assert_leaky_vs_null(data: AttackInput, result: AttackResult, leaky: bool) -> None:
    """Every attack's bar on make_attack_input: AUC > 65 and accuracy > 60 when leaky; both within
    [40, 60] when members and non-members are drawn alike."""
    assert result.scores.shape == data.target_member.shape, result.name
    auc = roc_auc(data.target_member, result.scores)
    if leaky:
        assert auc > 65 and result.paper_acc > 60, result.name
    else:
        assert 40 <= auc <= 60 and 40 <= result.paper_acc <= 60, result.name


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def sensitivity_loop(model: nn.Module, x: torch.Tensor, *, n: int, eps: float, batch_size: int,
                     generator: torch.Generator) -> np.ndarray:
    """Oracle: eq. 2 one noisy copy at a time, drawing the noise exactly as `sensitivity` documents."""
    model.eval()
    rows = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start:start + batch_size]
            noise = torch.randn((n, *chunk.shape), generator=generator, dtype=chunk.dtype)
            p = torch.softmax(model(chunk), dim=1)
            total = torch.zeros_like(p)
            for i in range(n):
                total += (torch.softmax(model(chunk + eps * noise[i]), dim=1) - p).abs()
            rows.append(total / n / eps)
    return torch.cat(rows).numpy()


@pytest.mark.parametrize("shape", [(13, 4), (13, 1, 2, 2)])
def test_sensitivity_matches_per_copy_loop(shape: tuple[int, ...]) -> None:
    model = _tiny_model()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fast = sensitivity(model, x, n=4, eps=1e-3, batch_size=5, generator=torch.Generator().manual_seed(3))
    slow = sensitivity_loop(model, x, n=4, eps=1e-3, batch_size=5, generator=torch.Generator().manual_seed(3))
    assert fast.shape == (13, 3)
    assert (fast > 0).all()
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_sensitivity_reproducible_and_seed_dependent() -> None:
    model = _tiny_model()
    x = torch.randn(6, 4, dtype=torch.float64)
    a = sensitivity(model, x, generator=torch.Generator().manual_seed(5))
    b = sensitivity(model, x, generator=torch.Generator().manual_seed(5))
    c = sensitivity(model, x, generator=torch.Generator().manual_seed(6))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_sensitivity_of_linear_softmax_matches_jacobian() -> None:
    """For small eps, |J delta| / eps averaged over many copies -> E|J delta| = sqrt(2/pi) * ||J row||."""
    model = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    x = torch.zeros(1, 2, dtype=torch.float64)  # p = (1/2, 1/2); dp_0/dx = (1/4, 0), dp_1/dx = (-1/4, 0)
    s = sensitivity(model, x, n=20000, eps=1e-6, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(s[0], [0.25 * np.sqrt(2 / np.pi)] * 2, rtol=0.02)


def test_sensitivity_zero_for_constant_model_and_restores_train_mode() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    with torch.no_grad():
        model[0].weight.zero_()
    model.train()
    s = sensitivity(model, torch.randn(7, 4), n=3)
    assert model.training
    np.testing.assert_array_equal(s, np.zeros((7, 3)))


def test_predict_proba_is_eval_softmax_in_batches() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.9))
    model.train()
    x = torch.randn(11, 4)
    p = predict_proba(model, x, batch_size=4)
    assert model.training
    model.eval()
    expected = torch.softmax(model(x).double(), dim=1).detach().numpy()
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_one_hot_and_top_k() -> None:
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    probs = np.array([[0.1, 0.6, 0.05, 0.25], [0.4, 0.3, 0.2, 0.1]])
    np.testing.assert_array_equal(top_k_sorted(probs, 3), [[0.6, 0.25, 0.1], [0.4, 0.3, 0.2]])
    np.testing.assert_array_equal(top_k_sorted(probs[:, :2], 3), [[0.6, 0.1], [0.4, 0.3]])


def test_gaps_hand_computed() -> None:
    probs_in, y_in = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1])  # mean p_y = 0.85
    probs_out, y_out = np.array([[0.6, 0.4]]), np.array([1])  # mean p_y = 0.4
    assert confidence_gap(probs_in, y_in, probs_out, y_out) == pytest.approx(0.45)
    sens_in, sens_out = np.array([[1.0, 5.0], [2.0, 3.0]]), np.array([[7.0, 4.0]])  # PS^y: 1, 3 vs 4
    assert sensitivity_gap(sens_in, y_in, sens_out, y_out) == pytest.approx(2.0 - 4.0)
    assert generalization_gap(95.0, 80.5) == pytest.approx(14.5)
