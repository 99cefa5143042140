"""Tests for pruner.py: every expected mask comes from an independent NumPy route or is written by hand.

The NumPy route ranks by counting rather than thresholding: an element (weight, filter norm, BN gamma) is
pruned iff fewer than k scores are strictly smaller than its own, k = floor(n * s). That is the nni 2.2 rule
"keep only scores > the k-th smallest" (ties with the k-th smallest pruned too) stated another way.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.nn.utils import prune

import pruner  # noqa: E402
from core.errors import UserError  # noqa: E402

SPARSITIES = (0.0, 0.3, 0.55, 0.7, 0.9)


# ------------------------------------------------------------------------------------------ NumPy oracles
def np_keep(scores: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep iff at least k = floor(n*s) scores are strictly smaller (k = 0 keeps everything)."""
    k = math.floor(scores.size * sparsity)
    flat = scores.reshape(-1)
    order = np.argsort(flat)  # any order: ties are resolved by value through searchsorted below
    n_smaller = np.empty(flat.size, dtype=np.int64)
    n_smaller[order] = np.searchsorted(flat[order], flat[order], side="left")  # sorted queries: fast
    return (n_smaller >= k).reshape(scores.shape)


def np_level(w: np.ndarray, s: float) -> np.ndarray:
    return np_keep(np.abs(w), s).astype(np.float32)  # |w| is exact in float32


def np_filter(w: np.ndarray, s: float, norm: str) -> np.ndarray:
    """Filter keep-vector (one entry per output channel)."""
    rows = w.astype(np.float64).reshape(w.shape[0], -1)
    scores = np.abs(rows).sum(1) if norm == "l1" else np.sqrt((rows ** 2).sum(1))
    if w.shape[0] < 2:
        return np.ones(w.shape[0], dtype=bool)
    return np_keep(scores, s)


def np_slim(gammas: list[np.ndarray], s: float) -> list[np.ndarray]:
    """Global count over all channels; a layer qualifies only with >= 2 channels and floor(ch*s) >= 1."""
    everything = np.sort(np.abs(np.concatenate(gammas)).astype(np.float64))
    k = math.floor(everything.size * s)
    out = []
    for g in gammas:
        qualifies = g.size >= 2 and math.floor(g.size * s) >= 1
        keep = np.searchsorted(everything, np.abs(g), side="left") >= k
        out.append(keep if qualifies else np.ones(g.size, dtype=bool))
    return out


# ------------------------------------------------------------------------------------------------ models
def small_cnn(seed: int = 0) -> nn.Sequential:
    """Conv(bias) / BN / PReLU / 1x1 Conv(no bias) / BN / single-filter Conv / BN(1) / Linear; 3x8x8 input."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.PReLU(8),
        nn.Conv2d(8, 6, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 1, 3), nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(16, 5),
    )
    randomise_bn(model, seed)
    return model


def randomise_bn(model: nn.Module, seed: int) -> None:
    """Distinct random gammas/betas (a fresh BN has all gammas 1, i.e. every channel tied)."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) * 2 - 1)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)


def resnet18(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=10)
    randomise_bn(model, seed)
    return model


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))


def weights_of(model: nn.Module, types: tuple[type, ...]) -> dict[str, np.ndarray]:
    return {n: m.weight.detach().numpy().copy() for n, m in model.named_modules() if type(m) in types}


LEVEL_TYPES = (nn.Conv2d, nn.Linear, nn.PReLU)


def assert_same(actual: torch.Tensor, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(actual.numpy(), expected.astype(np.float32))


# ------------------------------------------------------------------------------------------ l1unstructure
@pytest.mark.parametrize("s", SPARSITIES)
def test_level_small_model_matches_numpy(s: float) -> None:
    model = small_cnn()
    masks = pruner.compute_masks(model, "l1unstructure", s)
    expected = {f"{n}.weight": np_level(w, s) for n, w in weights_of(model, LEVEL_TYPES).items()}
    # Conv, PReLU and the final Linear get weight masks; no biases, no BatchNorm.
    assert set(masks) == set(expected) == {"0.weight", "2.weight", "3.weight", "6.weight", "9.weight"}
    for key, want in expected.items():
        assert_same(masks[key], want)


def test_level_resnet18_matches_numpy_and_measures() -> None:
    model = resnet18()
    expected = weights_of(model, (nn.Conv2d, nn.Linear))
    masks = pruner.prune_model(model, "l1unstructure", 0.7)
    assert len(expected) == 21 and set(masks) == {f"{n}.weight" for n in expected}  # 20 convs + fc
    zeros = 0
    for name, w in expected.items():
        want = np_level(w, 0.7)
        assert_same(masks[f"{name}.weight"], want)
        zeros += int((want == 0).sum()) + int(((w == 0) & (want == 1)).sum())
    measured = pruner.measure_sparsity(model, "l1unstructure")
    total = sum(w.size for w in expected.values())
    assert measured == {"overall": zeros / total, "pruned_layers": zeros / total}
    assert measured["overall"] == pytest.approx(0.7, abs=1e-5)


def test_level_rounds_down_like_nni_not_like_torch() -> None:
    layer = nn.Linear(10, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.9, -0.1, 0.5, 0.3, -0.7, 0.2, 1.0, -0.4, 0.6, 0.8]]))
    mask = pruner.compute_masks(layer, "l1unstructure", 0.55)["weight"]
    # int(10 * 0.55) = 5: the five smallest |w| are 0.1 0.2 0.3 0.4 0.5.
    assert mask.tolist() == [[1, 0, 0, 0, 1, 0, 1, 0, 1, 1]]
    torch_mask = prune.l1_unstructured(nn.Linear(10, 1, bias=False), "weight", 0.55).weight_mask
    assert int((torch_mask == 0).sum()) == 6  # torch rounds 5.5 up: the reason we compute masks ourselves


def test_level_float_product_rounding() -> None:
    layer = nn.Linear(100, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(1, 101, dtype=torch.float32).reshape(1, 100))
    mask = pruner.compute_masks(layer, "l1unstructure", 0.29)["weight"]
    assert 100 * 0.29 < 29  # 28.999999999999996 in floating point, so nni's int() prunes 28
    assert int((mask == 0).sum()) == 28 and mask[0, :28].sum() == 0 and mask[0, 28:].min() == 1


def test_level_ties_at_kth_value_are_pruned() -> None:
    layer = nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, 0.2, -0.2, 0.2, 0.5, 0.6, 0.7, 0.8]]))
    # k = int(8 * 0.25) = 2; the 2nd smallest |w| is 0.2 and all three 0.2s go, so 4 are pruned, not 2.
    mask = pruner.compute_masks(layer, "l1unstructure", 0.25)["weight"]
    assert mask.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1]]


# ---------------------------------------------------------------------------------- l1/l2 structure
@pytest.mark.parametrize("name,norm", [("l1structure", "l1"), ("l2structure", "l2")])
@pytest.mark.parametrize("s", SPARSITIES)
def test_filter_small_model_matches_numpy(name: str, norm: str, s: float) -> None:
    model = small_cnn()
    masks = pruner.compute_masks(model, name, s)
    # Every Conv2d gets a weight mask, plus a bias mask where it has a bias; the Linear stays dense.
    assert set(masks) == {"0.weight", "0.bias", "3.weight", "6.weight", "6.bias"}
    for conv in ("0", "3", "6"):
        w = getattr(model, conv).weight.detach().numpy()
        keep = np_filter(w, s, norm)
        assert_same(masks[f"{conv}.weight"], np.broadcast_to(keep[:, None, None, None], w.shape))
        if f"{conv}.bias" in masks:
            assert_same(masks[f"{conv}.bias"], keep)
    assert masks["6.weight"].min() == 1  # a single filter is never pruned (nni: num_total < 2)


@pytest.mark.parametrize("name,norm", [("l1structure", "l1"), ("l2structure", "l2")])
def test_filter_resnet18_matches_numpy(name: str, norm: str) -> None:
    model = resnet18()
    masks = pruner.compute_masks(model, name, 0.7)
    convs = weights_of(model, (nn.Conv2d,))
    assert len(convs) == 20 and set(masks) == {f"{n}.weight" for n in convs}  # stem and downsample included
    for n, w in convs.items():
        keep = np_filter(w, 0.7, norm)
        assert keep.sum() == w.shape[0] - int(w.shape[0] * 0.7)
        assert_same(masks[f"{n}.weight"], np.broadcast_to(keep[:, None, None, None], w.shape))


def two_filter_conv(filters: list[list[float]]) -> nn.Conv2d:
    conv = nn.Conv2d(1, len(filters), (1, 4), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(filters).reshape(len(filters), 1, 1, 4))
    return conv


def filter_keep(model: nn.Module, name: str, s: float) -> list[int]:
    return pruner.compute_masks(model, name, s)["weight"][:, 0, 0, 0].int().tolist()


def test_l1_and_l2_rank_filters_differently() -> None:
    # filter 0: L1 4, L2 2; filter 1: L1 3, L2 3. One filter pruned (int(2 * 0.5) = 1).
    conv = two_filter_conv([[1, 1, -1, 1], [3, 0, 0, 0]])
    assert filter_keep(conv, "l1structure", 0.5) == [1, 0]
    assert filter_keep(conv, "l2structure", 0.5) == [0, 1]


def test_filter_ties_at_kth_norm_are_pruned() -> None:
    # nni 2.2 keeps only norms > the k-th smallest: k = 1 but three filters tie at the smallest L1 norm 2.
    conv = two_filter_conv([[1, 1, 0, 0], [0, -2, 0, 0], [5, 0, 0, 0], [0, 0, 1, -1]])
    assert filter_keep(conv, "l1structure", 0.25) == [0, 0, 1, 0]


def test_filter_rounds_down() -> None:
    conv = two_filter_conv([[v, 0, 0, 0] for v in (9, 1, 5, 3, 7, 2, 10, 4, 6, 8)])
    assert filter_keep(conv, "l1structure", 0.55) == [1, 0, 0, 0, 1, 0, 1, 0, 1, 1]  # int(5.5) = 5


# ------------------------------------------------------------------------------------------------- slim
def bn_stack(gammas: list[list[float]]) -> nn.Sequential:
    layers = [nn.BatchNorm2d(len(g)) for g in gammas]
    with torch.no_grad():
        for layer, g in zip(layers, gammas):
            layer.weight.copy_(torch.tensor(g))
            layer.bias.fill_(0.5)
    return nn.Sequential(*layers)


def test_slim_small_model_matches_numpy() -> None:
    model = small_cnn()
    for s in SPARSITIES:
        masks = pruner.compute_masks(model, "slim", s)
        bns = weights_of(model, (nn.BatchNorm2d,))
        assert set(masks) == {f"{n}.{t}" for n in bns for t in ("weight", "bias")}
        for (n, _), want in zip(bns.items(), np_slim(list(bns.values()), s)):
            assert_same(masks[f"{n}.weight"], want)
            assert_same(masks[f"{n}.bias"], want)


def test_slim_resnet18_matches_numpy() -> None:
    model = resnet18()
    masks = pruner.compute_masks(model, "slim", 0.7)
    bns = weights_of(model, (nn.BatchNorm2d,))
    assert len(bns) == 20
    expected = np_slim(list(bns.values()), 0.7)
    for (n, _), want in zip(bns.items(), expected):
        assert_same(masks[f"{n}.weight"], want)
        assert_same(masks[f"{n}.bias"], want)
    pruned = sum(int((~w).sum()) for w in expected)
    assert pruned == int(sum(w.size for w in bns.values()) * 0.7)  # random gammas: no ties


def test_slim_threshold_is_global() -> None:
    tiny = [0.01 * i for i in range(1, 9)]
    large = [10.0 + i for i in range(8)]
    medium = [1.0 + 0.1 * i for i in range(8)]
    model = bn_stack([large, tiny, medium])
    masks = pruner.compute_masks(model, "slim", 0.35)  # k = int(24 * 0.35) = 8: exactly the tiny layer
    for t in ("weight", "bias"):
        assert masks[f"1.{t}"].sum() == 0  # wiped out entirely, beta too
        assert masks[f"0.{t}"].min() == 1 and masks[f"2.{t}"].min() == 1


def test_slim_small_layers_are_skipped_but_counted() -> None:
    model = bn_stack([[0.001], [0.002, 0.003], [0.1 * i for i in range(1, 11)]])
    # s = 0.3: k = int(13 * 0.3) = 3, threshold 0.003. BN(1) has < 2 channels, BN(2) has int(0.6) = 0:
    # both skipped; BN(10) qualifies but has no gamma <= 0.003. So nothing at all is pruned.
    masks = pruner.compute_masks(model, "slim", 0.3)
    assert all(m.min() == 1 for m in masks.values())
    # s = 0.5: k = 6, threshold 0.3. BN(2) now qualifies (int(1.0) = 1) and is wiped; BN(10) loses 3.
    masks = pruner.compute_masks(model, "slim", 0.5)
    assert masks["0.weight"].tolist() == [1]
    assert masks["1.weight"].tolist() == [0, 0]
    assert masks["2.weight"].tolist() == [0, 0, 0] + [1] * 7


def test_slim_ties_at_threshold_are_pruned() -> None:
    model = bn_stack([[1.0, 1.0, 1.0, 2.0], [-1.0, 3.0, 4.0, 5.0]])  # |gamma| is ranked: -1 ties with 1
    masks = pruner.compute_masks(model, "slim", 0.25)  # k = 2, threshold 1.0: all four 1s go
    assert masks["0.weight"].tolist() == [0, 0, 0, 1] and masks["1.weight"].tolist() == [0, 1, 1, 1]


# ------------------------------------------------------------------------------------- masks in training
def effective(model: nn.Module) -> dict[str, torch.Tensor]:
    return pruner.bake(model)[0]


@pytest.mark.parametrize("name", list(pruner.one_shot_names()))
def test_masked_weights_stay_zero_through_adam_with_weight_decay(name: str) -> None:
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = pruner.prune_model(model, name, 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=5e-4)  # after pruning, as documented
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 5, (16,))
    model.train()
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        for key, mask in masks.items():
            grad = model.get_submodule(key.rpartition(".")[0]).get_parameter(key.rpartition(".")[2] + "_orig").grad
            assert torch.all(grad[mask == 0] == 0)  # masked positions get no gradient
        opt.step()
    model(x)  # refresh module.weight through the forward pre-hook
    after = effective(model)
    for key, mask in masks.items():
        module_name, tensor_name = key.rpartition(".")[0], key.rpartition(".")[2]
        assert torch.all(getattr(model.get_submodule(module_name), tensor_name)[mask == 0] == 0)
        assert torch.all(after[key][mask == 0] == 0)
        if mask.sum() > 0:  # training did move the kept entries
            assert not torch.equal(after[key][mask == 1], before[key][mask == 1])


def test_compute_masks_leaves_model_unchanged() -> None:
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in pruner.one_shot_names():
        pruner.compute_masks(model, name, 0.7)
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)


# ---------------------------------------------------------------------------------- bake / load_pruned
@pytest.mark.parametrize("name", list(pruner.one_shot_names()))
def test_bake_gives_plain_keys_exact_zeros_and_round_trips(name: str) -> None:
    model = small_cnn()
    masks = pruner.prune_model(model, name, 0.6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=5e-4)
    x = torch.randn(4, 3, 8, 8)
    model(x).sum().backward()
    opt.step()
    model.eval()
    out = model(x)

    state, baked_masks = pruner.bake(model)
    assert set(state) == set(small_cnn().state_dict())  # plain names, no *_orig / *_mask
    assert set(baked_masks) == set(masks) and all(torch.equal(baked_masks[k], masks[k]) for k in masks)
    for key, mask in masks.items():
        zeros = state[key][mask == 0]
        assert torch.all(zeros == 0) and not torch.any(torch.signbit(zeros))  # exact +0.0
    # the model is still masked and in training shape; the baked copy does not alias it
    assert any(k.endswith("_orig") for k in model.state_dict())
    snapshot = {k: v.clone() for k, v in state.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert all(torch.equal(state[k], snapshot[k]) for k in state)

    fresh = small_cnn(seed=99)
    pruner.load_pruned(fresh, state, baked_masks)
    fresh.eval()
    again, _ = pruner.bake(fresh)
    assert all(torch.equal(again[k], state[k]) for k in state)
    model_copy = small_cnn(seed=5)
    model_copy.load_state_dict(state)
    model_copy.eval()
    torch.testing.assert_close(fresh(x), model_copy(x), rtol=0, atol=0)
    torch.testing.assert_close(fresh(x), out)
    # further training of the reloaded model keeps the zeros
    opt = torch.optim.Adam(fresh.parameters(), lr=1e-2, weight_decay=5e-4)
    fresh.train()
    for _ in range(3):
        opt.zero_grad()
        fresh(x).square().mean().backward()
        opt.step()
    final, _ = pruner.bake(fresh)
    assert all(torch.all(final[k][m == 0] == 0) for k, m in masks.items())


def test_masked_model_can_be_deep_copied_for_inference() -> None:
    model = small_cnn()
    pruner.prune_model(model, "l1structure", 0.5)
    x = torch.randn(2, 3, 8, 8)
    twin = copy.deepcopy(model)  # e.g. a loaded pruned victim handed to an attack
    with torch.no_grad():
        model.eval(), twin.eval()
        torch.testing.assert_close(twin(x), model(x), rtol=0, atol=0)
        copy.deepcopy(model)  # still fine after a no-grad forward
    # a training snapshot via the state_dict reloads into the masked model
    snapshot = copy.deepcopy(model.state_dict())
    model.train()
    model(x).sum().backward()
    model.load_state_dict(snapshot)


def test_bake_of_unmasked_model_is_plain_state() -> None:
    model = small_cnn()
    state, masks = pruner.bake(model)
    assert masks == {} and all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_load_pruned_and_apply_masks_reject_mismatches() -> None:
    model = small_cnn()
    masks = pruner.prune_model(model, "l1unstructure", 0.5)
    state, _ = pruner.bake(model)
    with pytest.raises(RuntimeError):
        pruner.apply_masks(model, masks)  # already masked
    with pytest.raises(RuntimeError):
        pruner.load_pruned(mlp(), state, masks)  # checkpoint of another model
    with pytest.raises(KeyError):
        pruner.apply_masks(small_cnn(), {"5.weight": torch.ones(3)})  # module 5 is a ReLU
    with pytest.raises(KeyError):
        pruner.apply_masks(small_cnn(), {"42.weight": torch.ones(3)})  # no module 42
    with pytest.raises(RuntimeError):
        pruner.apply_masks(small_cnn(), {"0.weight": torch.ones(8, 3, 2, 2)})


# ------------------------------------------------------------------------------------ measure_sparsity
def hand_model() -> nn.Sequential:
    """Conv 2x1x2x2 (8 weights, 3 zero), BN(2) (1 zero gamma), Linear 3x4 (12 weights, 6 zero)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.BatchNorm2d(2), nn.Flatten(),
                          nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([0.0, 1, 0, 2, 3, 0, 4, 5]).reshape(2, 1, 2, 2))
        model[1].weight.copy_(torch.tensor([0.0, 0.7]))
        model[3].weight.copy_(torch.tensor([[0.0, 1, 0, 1], [0, 1, 0, 1], [0, 1, 0, 1]]))
    return model


EXPECTED_SPARSITY = {
    "l1unstructure": {"overall": 9 / 20, "pruned_layers": 9 / 20},
    "l1structure": {"overall": 9 / 20, "pruned_layers": 3 / 8},
    "l2structure": {"overall": 9 / 20, "pruned_layers": 3 / 8},
    "slim": {"overall": 1 / 2, "pruned_layers": 1 / 2},  # slim zeroes no weight: overall = channels removed
}


@pytest.mark.parametrize("name", list(pruner.one_shot_names()))
def test_measure_sparsity_hand_computed_plain_and_masked(name: str) -> None:
    plain = hand_model()
    assert pruner.measure_sparsity(plain, name) == EXPECTED_SPARSITY[name]
    # The same zeros expressed as masks over dense weights, then trained: the masked model measures the same.
    masked = hand_model()
    masks = {k: (v != 0).float() for k, v in plain.state_dict().items()
             if k in ("0.weight", "1.weight", "3.weight")}
    with torch.no_grad():
        for m in (masked[0], masked[1], masked[3]):
            m.weight.add_(0.25)  # dense underneath: only the masks carry the zeros
    pruner.apply_masks(masked, masks)
    opt = torch.optim.Adam(masked.parameters(), lr=0.1, weight_decay=5e-4)
    for _ in range(3):
        opt.zero_grad()
        masked(torch.randn(4, 1, 3, 2)).sum().backward()
        opt.step()
    assert pruner.measure_sparsity(masked, name) == EXPECTED_SPARSITY[name]
    baked_model = hand_model()
    baked_model.load_state_dict(pruner.bake(masked)[0])
    assert pruner.measure_sparsity(baked_model, name) == EXPECTED_SPARSITY[name]


# -------------------------------------------------------------------------------------------- user errors
def test_unknown_pruner_lists_valid_names() -> None:
    with pytest.raises(UserError) as err:
        pruner.compute_masks(small_cnn(), "l1_unstructured", 0.5)
    assert "l1_unstructured" in err.value.what
    assert all(n in err.value.hint for n in ("l1unstructure", "l1structure", "l2structure", "slim"))
    with pytest.raises(UserError):
        pruner.measure_sparsity(small_cnn(), "level")


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.5", None, True])
def test_sparsity_outside_range_is_user_error(bad: object) -> None:
    with pytest.raises(UserError) as err:
        pruner.compute_masks(small_cnn(), "l1unstructure", bad)  # type: ignore[arg-type]
    assert "[0, 1)" in err.value.what


def test_sparsity_zero_prunes_nothing() -> None:
    for name in pruner.one_shot_names():
        assert all(m.min() == 1 for m in pruner.compute_masks(small_cnn(), name, 0).values())


@pytest.mark.parametrize("name,what", [("l1structure", "Conv2d filters"), ("l2structure", "Conv2d filters"),
                                       ("slim", "BatchNorm2d channels")])
def test_structured_on_mlp_is_user_error(name: str, what: str) -> None:
    with pytest.raises(UserError) as err:
        pruner.compute_masks(mlp(), name, 0.5, model_name="columnfc")
    assert err.value.what == f"{name} prunes {what} but model columnfc has none"
    assert err.value.hint == "use l1unstructure for fully connected models"
    with pytest.raises(UserError):
        pruner.prune_model(mlp(), name, 0.5)
    with pytest.raises(UserError):
        pruner.measure_sparsity(mlp(), name)
    masks = pruner.prune_model(mlp(), "l1unstructure", 0.5)  # the hint's suggestion works
    assert set(masks) == {"1.weight", "3.weight"}


def test_validate_sparsity_accepts_any_real_number() -> None:
    assert pruner.validate_sparsity(np.float32(0.5)) == 0.5 and pruner.validate_sparsity(0) == 0.0


def test_slim_records_the_share_of_channels_it_removed_not_zero() -> None:
    # ResNet18 with distinct gammas: the global threshold removes k = int(0.7 * total) BN2d channels, and no
    # Conv/Linear weight; before, `overall` (what results.jsonl records as victim_sparsity) read 0.0000002.
    from models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", 10, 1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    total = sum(bn.num_features for bn in bns)
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.1, 1.0)
    pruner.prune_model(model, "slim", 0.7, model_name="resnet18")
    measured = pruner.measure_sparsity(model, "slim", model_name="resnet18")
    assert measured["overall"] == measured["pruned_layers"] == int(0.7 * total) / total

