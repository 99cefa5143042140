"""Defenses (docs/design.md §6): each loss and update is checked against an independent hand computation
(numpy, or a one-sample-at-a-time autograd loop), and each defense runs through `training.fit`."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from torch import nn
from torch.nn.utils import prune

from core.errors import UserError
from core.training import SplitTensors, TrainConfig, fit, train_one_epoch
from defenses import DEFENSES, Defense, DefenseOptions, create_defense
from defenses.adv import AdvReg, attack_features, loader_batches
from defenses.dp import DPSGD, MicrobatchDP, poisson_batches
from defenses.ppb import ppb_loss
from defenses.relaxloss import relax_loss

D, C = 6, 3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one intra-op thread is fastest, and far faster on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_split(n: int = 64, seed: int = 0, dtype: torch.dtype = torch.float32) -> SplitTensors:
    """Learnable 3-class data: the label is the argmax of the first C features."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3 * n, D, generator=g, dtype=dtype)
    y = x[:, :C].argmax(1)
    return SplitTensors(x[:n], y[:n], x[n:2 * n], y[n:2 * n], x[2 * n:], y[2 * n:])


def mlp(bn: bool = False, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 8), nn.BatchNorm1d(8) if bn else nn.Identity(), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(8, C))


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# ---------------------------------------------------------------- PPB

@pytest.mark.parametrize("batch", [6, 7, 1])
def test_ppb_loss_matches_hand_computation(batch: int) -> None:
    z = torch.randn(batch, 4, dtype=torch.float64, generator=gen(batch))
    y = torch.randint(0, 4, (batch,), generator=gen(batch + 1))
    lam = 3.0
    total, ce, kl = ppb_loss(z, y, lam)
    zn, yn = z.numpy(), y.numpy()
    ce_hand = -np.mean(np_log_softmax(zn)[np.arange(batch), yn])
    half = batch // 2  # row i pairs with row i + half; with an odd batch the last row sits out
    kls = []
    for i in range(half):
        log_p = np_log_softmax(np.sort(zn[i])[::-1])
        log_q = np_log_softmax(np.sort(zn[i + half])[::-1])
        kls.append(np.sum(np.exp(log_q) * (log_q - log_p)))  # KL(second || first)
    kl_hand = float(np.mean(kls)) if kls else 0.0
    assert ce.item() == pytest.approx(ce_hand, abs=1e-12)
    assert kl.item() == pytest.approx(kl_hand, abs=1e-12)
    assert total.item() == pytest.approx(ce_hand + lam * kl_hand, abs=1e-12)
    # Analytic gradient == numeric gradient: nothing in the loss is detached.
    assert torch.autograd.gradcheck(lambda t: ppb_loss(t, y, lam)[0], z.clone().requires_grad_())
    # The paper's eq. 6 sums CE over the rows and KL over the pairs: B * this loss is eq. 6 at lambda_paper =
    # 2 * lambda (the README's difference 16), for an even batch where every row is in a pair.
    if batch % 2 == 0:
        eq6 = -np.sum(np_log_softmax(zn)[np.arange(batch), yn]) + 2 * lam * float(np.sum(kls))
        assert batch * total.item() == pytest.approx(eq6, abs=1e-10)


# ---------------------------------------------------------------- RelaxLoss

def relax_hand(z: np.ndarray, y: np.ndarray, alpha: float, epoch: int) -> float:
    """RelaxLoss Algorithm 1 (Chen et al. ICLR '22), written out in numpy."""
    log_p = np_log_softmax(z)
    ce_rows = -log_p[np.arange(len(y)), y]
    ce = ce_rows.mean()
    if epoch % 2 == 0:
        return abs(ce - alpha)
    if ce > alpha:
        return ce
    p_true = np.exp(log_p[np.arange(len(y)), y])
    soft = np.tile(((1 - p_true) / (z.shape[1] - 1))[:, None], (1, z.shape[1]))
    soft[np.arange(len(y)), y] = p_true
    wrong = (z.argmax(1) != y).astype(float)
    return float(np.mean(wrong * -(soft * log_p).sum(1) - ce_rows))


@pytest.mark.parametrize("epoch", [0, 1, 2, 3])
@pytest.mark.parametrize("above", [True, False])
def test_relaxloss_matches_hand_computation(epoch: int, above: bool) -> None:
    z = 2 * torch.randn(10, 4, dtype=torch.float64, generator=gen(epoch))
    y = torch.randint(0, 4, (10,), generator=gen(epoch + 10))
    y[:4] = z[:4].argmax(1)  # some rows right, some wrong, so both parts of the flattening term count
    zn, yn = z.numpy(), y.numpy()
    assert 0 < (zn.argmax(1) == yn).sum() < len(yn)
    ce = -np.mean(np_log_softmax(zn)[np.arange(10), yn])
    alpha = ce - 0.3 if above else ce + 0.3
    total, ce_t = relax_loss(z, y, alpha, epoch)
    assert ce_t.item() == pytest.approx(ce, abs=1e-12)
    assert total.item() == pytest.approx(relax_hand(zn, yn, alpha, epoch), abs=1e-12)
    # The soft target p_y is not detached (as in the RelaxLoss code): analytic == numeric gradient.
    assert torch.autograd.gradcheck(lambda t: relax_loss(t, y, alpha, epoch)[0], z.clone().requires_grad_())


# ---------------------------------------------------------------- DP-SGD (per example)

def pruned_bn_mlp() -> nn.Module:
    """Linear-BN-ReLU-Linear in float64, BN running stats warmed up, the first Linear pruned by a mask."""
    model = mlp(bn=True).double()
    model.train()
    model(torch.randn(32, D, dtype=torch.float64, generator=gen(5)))  # non-trivial running statistics
    mask = (torch.rand(8, D, generator=gen(6)) > 0.5).double()
    prune.custom_from_mask(model[0], "weight", mask)
    return model


def loop_clipped_sum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: list[slice],
                     clip: float) -> dict[str, torch.Tensor]:
    """For each group of rows (one sample, or one microbatch) in a Python loop: the mean-CE gradient, clipped
    to `clip` by its global norm, summed over the groups. The caller sets the model's mode."""
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for rows in groups:
        loss = F.cross_entropy(model(x[rows]), y[rows])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads))
        assert norm > clip  # the tiny clipping norm is active for every group
        for n, g in zip(total, grads):
            total[n] += g * min(1.0, clip / (norm + 1e-6))
    return total


def test_dpsgd_step_equals_loop_of_clipped_per_sample_gradients() -> None:
    model = pruned_bn_mlp()
    data = make_split(40, dtype=torch.float64)
    cfg = TrainConfig(epochs=1, batch_size=10, lr=1.0, weight_decay=0.0)
    hooks = DPSGD(sigma=0.0, clip=1e-3, lr=1.0)  # the step is the DP lr, not the config's
    hooks.setup(model, data, cfg, gen())
    hooks.chunk = 3  # several vmap chunks for 7 samples, the last one partial
    optimizer = hooks.make_optimizer(model, cfg)
    x, y = data.train_x[:7], data.train_y[:7]
    reference = pruned_bn_mlp()  # an identical twin (a pruned module cannot be deep-copied after a forward)
    before, running = params_of(model), model[1].running_mean.clone()
    model.train()
    hooks.train_step(model, optimizer, x, y, 0)
    expected_batch = 10 / 40 * 40  # q * N
    reference.eval()  # per-example DP-SGD runs BatchNorm on its running statistics
    clipped = loop_clipped_sum(reference, x, y, [slice(i, i + 1) for i in range(7)], clip=1e-3)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach() - before[n], -1.0 * clipped[n] / expected_batch, atol=1e-12, rtol=1e-9)
    mask = model[0].weight_mask.bool()
    assert torch.all(model[0].weight_orig[~mask] == before["0.weight_orig"][~mask])  # masked: zero gradient
    assert torch.equal(model[1].running_mean, running)


def test_dpsgd_freezes_batchnorm_keeps_pruned_weights_zero_and_trains_affine() -> None:
    model = pruned_bn_mlp().float()
    bn_before = {k: v.clone() for k, v in model[1].state_dict().items()}
    hooks = create_defense("dpsgd", 1.0)
    fit(model, make_split(64), TrainConfig(epochs=2, batch_size=16, progress=False), hooks=hooks, generator=gen())
    mask = model[0].weight_mask.bool()
    assert torch.all(model[0].weight[~mask] == 0) and torch.all(model[0].weight[mask] != 0)
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(model[1].state_dict()[key], bn_before[key])
    assert not torch.equal(model[1].weight.detach(), bn_before["weight"])


def test_dpsgd_runs_on_resnet18_with_batchnorm() -> None:
    from models import build_model
    torch.manual_seed(0)
    model = build_model("resnet18", 4, 1)
    prune.l1_unstructured(model.conv1, "weight", amount=0.5)
    x, y = torch.randn(4, 1, 8, 8, generator=gen()), torch.tensor([0, 1, 2, 3])
    data = SplitTensors(x, y, x, y, x, y)
    cfg = TrainConfig(epochs=1, batch_size=4, lr=0.1)
    hooks = DPSGD(sigma=0.5)
    hooks.setup(model, data, cfg, gen())
    optimizer = hooks.make_optimizer(model, cfg)
    buffers = {k: v.clone() for k, v in model.named_buffers() if "running" in k}
    bn_weight = model.bn1.weight.detach().clone()
    model.train()
    stats = hooks.train_step(model, optimizer, x, y, 0)
    assert stats.count == 4 and math.isfinite(stats.loss_sum.item())
    assert all(torch.equal(v, dict(model.named_buffers())[k]) for k, v in buffers.items())
    assert not torch.equal(model.bn1.weight.detach(), bn_weight)
    assert torch.all(model.conv1.weight[model.conv1.weight_mask == 0] == 0)


def direct_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    orders = RDPAccountant.DEFAULT_ALPHAS
    eps, _ = get_privacy_spent(orders=orders, rdp=compute_rdp(q=q, noise_multiplier=sigma, steps=steps,
                                                               orders=orders), delta=delta)
    return float(eps)


def test_dpsgd_epsilon_matches_rdp_analysis() -> None:
    eps = {}
    for sigma in (1.0, 2.0):
        hooks = create_defense("dpsgd", sigma, DefenseOptions(dp_delta=1e-5))
        result = fit(mlp(), make_split(64), TrainConfig(epochs=2, batch_size=16, progress=False), hooks=hooks,
                     generator=gen())
        assert result.epochs_run == 2
        eps[sigma] = result.extras["last_epoch"]["epsilon"]
        # 2 epochs x (64 // 16) Poisson steps at q = 16/64
        assert eps[sigma] == pytest.approx(direct_epsilon(sigma, 0.25, 8, 1e-5), rel=1e-9)
        assert result.extras["last_epoch"]["delta"] == 1e-5
    assert eps[2.0] < eps[1.0]
    assert create_defense("dpsgd", 0.0).epsilon() == math.inf


def opacus_epsilon(accountant: type, sigma: float, q: float, steps: int, delta: float) -> float:
    """Opacus' own accountant fed the whole run at once: `steps` steps at (sigma, q)."""
    acc = accountant()
    acc.history = [(sigma, q, steps)]
    return float(acc.get_epsilon(delta))


@pytest.mark.parametrize("accountant, opacus_class", [("rdp", RDPAccountant), ("prv", PRVAccountant)])
def test_dpsgd_epsilon_counts_every_step_run_not_the_best_epochs(accountant: str, opacus_class: type) -> None:
    """The issue's run: N 1350, B 128 (q 128/1350, 10 steps an epoch), sigma 1; the dev accuracy never improves
    after epoch 1 (a step of 1e-9 changes nothing), so early stopping (5) runs 7 epochs and releases epoch 1.
    The released weights were chosen after all 70 steps: epsilon 6.42 (RDP) / 5.67 (PRV), not epoch 1's 3.31."""
    n, q = 1350, 128 / 1350
    hooks = create_defense("dpsgd", 1.0, DefenseOptions(dp_lr=1e-9, dp_accountant=accountant))
    result = fit(mlp(), make_split(n), TrainConfig(epochs=20, batch_size=128, early_stop=5, progress=False),
                 hooks=hooks, generator=gen())
    assert (result.best_epoch, result.epochs_run) == (1, 7)
    summary = hooks.summary()
    assert summary["dp_steps"] == 70 and summary["accountant"] == accountant and summary["delta"] == 1e-5
    assert summary["sample_rate"] == q and summary["noise_multiplier"] == 1.0
    assert summary["epsilon"] == pytest.approx(opacus_epsilon(opacus_class, 1.0, q, 70, 1e-5), rel=1e-6)
    assert summary["epsilon"] == pytest.approx({"rdp": 6.42, "prv": 5.67}[accountant], abs=0.01)
    assert result.extras["epsilon"] == pytest.approx(opacus_epsilon(opacus_class, 1.0, q, 10, 1e-5), rel=1e-6)
    assert result.extras["epsilon"] < summary["epsilon"] - 2  # best epoch's 3.31 (RDP) understated it
    assert "pretrained weights saw the same members without DP" in summary["privacy_note"]
    assert "dev split" in summary["privacy_note"]


def test_dp_options_name_the_optimiser_and_the_steps_per_epoch() -> None:
    """DP's own SGD: --dp_lr (the defense's default when unset), --dp_momentum; the config's lr is not used."""
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, weight_decay=5e-4)
    for name, options, lr, momentum in [("dp", DefenseOptions(), 0.005, 0.9), ("dpsgd", DefenseOptions(), 0.05, 0.9),
                                        ("dpsgd", DefenseOptions(dp_lr=0.2, dp_momentum=0.0), 0.2, 0.0)]:
        hooks = create_defense(name, None, options)
        group = hooks.make_optimizer(mlp(), cfg).param_groups[0]
        assert (group["lr"], group["momentum"], group["weight_decay"]) == (lr, momentum, 5e-4)
    hooks = create_defense("dp", None, DefenseOptions(dp_steps_per_epoch=5))
    assert len(list(hooks.batches(64, 16, gen()))) == 5  # instead of 64 // 16 = 4


# ---------------------------------------------------------------- DP (the artifact's microbatch DPSGD)

def test_microbatch_dp_step_equals_hand_loop() -> None:
    model = mlp(bn=True).double()
    data = make_split(256, dtype=torch.float64)
    cfg = TrainConfig(epochs=1, batch_size=128, lr=1.0, weight_decay=0.0)
    clip = 1e-2
    hooks = MicrobatchDP(sigma=0.0, clip=clip, lr=1.0)
    hooks.setup(model, data, cfg, gen())
    optimizer = hooks.make_optimizer(model, cfg)
    x, y = data.train_x[:130], data.train_y[:130]  # two microbatches of 64; the last 2 rows are dropped
    reference = copy.deepcopy(model)
    before, running = params_of(model), model[1].running_mean.clone()
    model.train()
    stats = hooks.train_step(model, optimizer, x, y, 0)
    assert stats.count == 128
    reference.train()
    total = loop_clipped_sum(reference, x, y, [slice(0, 64), slice(64, 128)], clip)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach() - before[n], -1.0 * total[n] * 64 / 128, atol=1e-12, rtol=1e-9)
    assert not torch.equal(model[1].running_mean, running)  # BatchNorm trained in train mode (artifact bug fixed)


def test_dp_epoch_is_one_expected_pass() -> None:
    hooks = MicrobatchDP(sigma=0.1)
    sizes = [len(b) for b in hooks.batches(1000, 100, gen())]
    assert len(sizes) == 10 and 700 < sum(sizes) < 1300


def test_dp_artifact_mode_runs_the_artifacts_steps_optimiser_and_eval_mode() -> None:
    """prune_dp.py: len(train) // B x epochs (the config's) Poisson draws per fine-tuning epoch, here
    100 // 32 = 3 x 4 = 12; the config's lr without momentum; microbatches of B // 2 = 16; train mode in epoch 0
    only (the artifact called train() once, and its evaluation left the model in eval mode)."""
    data = make_split(100)
    hooks = create_defense("dp", 0.1, DefenseOptions(defense_mode="artifact", config_epochs=4))
    assert len(list(hooks.batches(100, 32, gen()))) == 12
    model = mlp(dropout=0.1)
    modes: dict[int, set[bool]] = {}  # epoch -> the classifier's modes in its training forwards
    epoch_now = [0]
    hooks.begin_epoch = lambda epoch: epoch_now.__setitem__(0, epoch)  # type: ignore[method-assign]
    model.register_forward_hook(
        lambda m, i, o: modes.setdefault(epoch_now[0], set()).add(m.training) if torch.is_grad_enabled() else None)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=1e-3, early_stop=10, progress=False)
    result = fit(model, data, cfg, hooks=hooks, generator=gen())
    assert result.epochs_run == 2 and hooks.steps == 2 * 12
    assert hooks.microbatch == 16 and hooks.summary()["dp_steps_per_epoch"] == 12
    group = hooks.make_optimizer(model, cfg).param_groups[0]
    assert (group["lr"], group["momentum"]) == (1e-3, 0.0)
    assert modes == {0: {True}, 1: {False}}
    assert hooks.summary()["defense_mode"] == "artifact"


def test_artifact_poisson_sampler_skips_empty_draws() -> None:
    """pyvacy's IIDBatchSampler yields only non-empty draws; the fixed mode takes a noise-only step on them."""
    draws = [len(b) for b in poisson_batches(1000, 1, gen(), steps=200)]  # q = 1/1000: ~37% of draws empty
    kept = [len(b) for b in poisson_batches(1000, 1, gen(), steps=200, skip_empty=True)]
    assert len(draws) == 200 and draws.count(0) > 40
    assert kept == [d for d in draws if d > 0]  # the same draws, the empty ones left out


# ---------------------------------------------------------------- ADV

def test_adv_alternates_adversary_and_classifier_every_batch() -> None:
    model, data = mlp(dropout=0.1), make_split(64)
    cfg = TrainConfig(epochs=1, batch_size=16)
    hooks = AdvReg(alpha=1.0, steps=2)
    hooks.setup(model, data, cfg, gen())
    optimizer = hooks.make_optimizer(model, cfg)
    calls: list[tuple[bool, bool]] = []
    model.register_forward_hook(lambda m, i, o: calls.append((m.training, torch.is_grad_enabled())))
    train_one_epoch(model, optimizer, data.train_x, data.train_y, hooks=hooks, cfg=cfg, generator=gen(), epoch=0)
    # per batch: 2 adversary steps (classifier in eval mode, no grad), then 1 classifier step (train, grad)
    assert calls == ([(False, False)] * 2 + [(True, True)]) * 4
    assert (hooks.adversary_steps, hooks.classifier_steps) == (8, 4)
    assert model.training


def test_adv_artifact_mode_makes_7_adversary_steps_then_one_classifier_step_per_epoch() -> None:
    """base_model.train_defend_adv: per epoch 7 steps of h (classifier in eval mode, no grad), then ONE
    classifier step on one batch; h Xavier-initialised (zero biases) as the artifact's BaseModel did."""
    model, data = mlp(dropout=0.1), make_split(100)
    hooks = create_defense("adv", 1.0, DefenseOptions(defense_mode="artifact"))
    cfg = TrainConfig(epochs=3, batch_size=32, early_stop=10, progress=False)
    hooks.setup(model, data, cfg, gen())
    calls: list[tuple[bool, bool]] = []
    model.register_forward_hook(lambda m, i, o: calls.append((m.training, torch.is_grad_enabled())))
    linear = [m for m in hooks.adversary.modules() if isinstance(m, nn.Linear)]
    assert all(torch.all(m.bias == 0) for m in linear)  # PyTorch's default init draws non-zero biases
    first = linear[0].weight.detach()
    assert float(first.std()) == pytest.approx(math.sqrt(2 / (first.shape[0] + first.shape[1])), rel=0.05)
    optimizer = hooks.make_optimizer(model, cfg)
    for epoch in range(3):
        train_one_epoch(model, optimizer, data.train_x, data.train_y, hooks=hooks, cfg=cfg, generator=gen(epoch),
                        epoch=epoch)
    assert calls == ([(False, False)] * 7 + [(True, True)]) * 3
    assert (hooks.adversary_steps, hooks.classifier_steps) == (21, 3)
    assert hooks.summary() == {"defense_mode": "artifact", "adversary_steps": 21, "classifier_steps": 3}
    assert len(list(hooks.batches(100, 32, gen()))) == 1


def test_adv_artifact_loaders_restart_like_the_artifacts_iterators() -> None:
    """The dev loader is not shuffled: batches from dev's first row on, restarting at its end; the training
    loader reshuffles at each restart."""
    dev = loader_batches(70, 32, gen(), shuffle=False)
    assert [b.tolist() for b in (next(dev) for _ in range(4))] == [list(range(32)), list(range(32, 64)),
                                                                  list(range(64, 70)), list(range(32))]
    train = loader_batches(70, 32, gen(), shuffle=True)
    first_pass = torch.cat([next(train) for _ in range(3)])
    assert sorted(first_pass.tolist()) == list(range(70))
    assert len(next(train)) == 32


def adversary_accuracy(hooks: AdvReg, model: nn.Module, data: SplitTensors) -> float:
    model.eval()
    hooks.adversary.eval()
    with torch.no_grad():
        feats = torch.cat([attack_features(model(data.train_x), data.train_y),
                           attack_features(model(data.dev_x), data.dev_y)])
        member = torch.cat([torch.ones(len(data.train_y)), torch.zeros(len(data.dev_y))])
        return float((hooks.adversary(feats).argmax(1) == member).float().mean())


def test_adv_adversary_learns_membership_when_alpha_is_zero() -> None:
    """Members get confident outputs (large inputs), dev non-members flat ones: h must learn to tell them apart."""
    base = make_split(64)
    data = SplitTensors(4 * base.train_x, base.train_y, 0.05 * base.dev_x, base.dev_y, base.test_x, base.test_y)
    model = mlp()
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.0)  # a frozen classifier isolates h's learning
    hooks = AdvReg(alpha=0.0)
    hooks.setup(model, data, cfg, gen())
    optimizer = hooks.make_optimizer(model, cfg)
    start = adversary_accuracy(hooks, model, data)
    for epoch in range(30):
        train_one_epoch(model, optimizer, data.train_x, data.train_y, hooks=hooks, cfg=cfg, generator=gen(epoch),
                        epoch=epoch)
    assert adversary_accuracy(hooks, model, data) > max(0.85, start + 0.2)


# ---------------------------------------------------------------- registry and the training loop

@pytest.mark.parametrize("name", list(DEFENSES.names()))
def test_each_defense_fits_two_epochs(name: str) -> None:
    # WeMem's defenses read the model's own mem-score rows, which the experiment supplies (prune.py)
    options = DefenseOptions(mem_scores=np.linspace(0, 1, 64), stride=4, width=16) \
        if DEFENSES.get(name).needs_mem_scores else None
    hooks = create_defense(name, None, options)
    result = fit(mlp(bn=True, dropout=0.1), make_split(64), TrainConfig(epochs=2, batch_size=16, progress=False),
                 hooks=hooks, generator=gen())
    assert result.epochs_run == 2 and math.isfinite(result.test_loss)
    assert hooks.name == name
    assert hooks.summary().get("defense_mode") == (None if name == "basic" else "fixed")  # records say the mode


def test_create_defense_validates_name_and_argument() -> None:
    assert type(create_defense("", 4.0)) is Defense and type(create_defense("basic", 4.0)) is Defense
    assert create_defense("ppb", None).lam == 4.0
    with pytest.raises(UserError) as e:
        create_defense("ppbb", 4.0)
    assert all(name in e.value.hint for name in DEFENSES.names())
    for name, bad in [("ppb", -1.0), ("adv", -0.5), ("dp", -0.1), ("dpsgd", float("nan")), ("relaxloss", 0.0)]:
        with pytest.raises(UserError) as e:
            create_defense(name, bad)
        assert "--defend_arg" in e.value.what and "allowed" in e.value.hint
    with pytest.raises(UserError):
        create_defense("dpsgd", 1.0, DefenseOptions(dp_delta=0.0))
    with pytest.raises(UserError):
        create_defense("dp", 1.0, DefenseOptions(dp_clip=0.0))


def test_modes_and_dp_options_are_checked() -> None:
    """The artifact mode exists for dp and adv only; dp's artifact mode runs the artifact's optimiser, so a
    flag for ours is an error there, not ignored; each DP option has its range."""
    for name in ("", "ppb", "dpsgd", "relaxloss"):
        with pytest.raises(UserError) as e:
            create_defense(name, None, DefenseOptions(defense_mode="artifact"))
        assert "--defense_mode artifact does not apply" in e.value.what
    with pytest.raises(UserError) as e:
        create_defense("dp", None, DefenseOptions(defense_mode="artifact", dp_lr=0.01))
    assert "--dp_lr" in e.value.what
    for bad in (DefenseOptions(dp_lr=0.0), DefenseOptions(dp_lr=math.inf), DefenseOptions(dp_momentum=1.0),
                DefenseOptions(dp_steps_per_epoch=-1), DefenseOptions(dp_accountant="gdp"),
                DefenseOptions(defense_mode="paper")):
        with pytest.raises(UserError):
            create_defense("dpsgd", 1.0, bad)
    assert isinstance(create_defense("adv", None, DefenseOptions(defense_mode="artifact")), AdvReg)
