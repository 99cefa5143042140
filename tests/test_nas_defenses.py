"""The four defenses of §5 (Table 6): each acts where it should and changes what it should, by the stated amount."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.training import TrainConfig
from nas.defenses import SoftLabelHooks, distill, dmp_reference, noisy
from nas.search import BilevelHooks, SearchConfig
from nas.supernet import SpaceConfig, SuperNet


def _arch_grads(cfg: SearchConfig, net: SuperNet, seed: int = 3) -> list[torch.Tensor]:
    """The architecture gradient one BilevelHooks step leaves on (alpha, beta) of a copy of `net`."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 5, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
    net = copy.deepcopy(net)
    hooks = BilevelHooks(x, y, cfg, seed)
    optimizer = hooks.make_optimizer(net, TrainConfig(epochs=1))
    hooks._arch_step(net, x[:8], y[:8], optimizer)
    return [a.grad.clone() for a in net.arch_parameters()]


@pytest.fixture(scope="module")
def net() -> SuperNet:
    torch.manual_seed(0)
    model = SuperNet(SpaceConfig(P=6, C=2, batchnorm=False), 1, 3)
    with torch.no_grad():
        model.alpha.normal_()  # away from 0, so the L2 term is visible
        model.beta.normal_()
    return model


def test_arch_grad_noise_adds_the_seeded_gaussian_of_the_stated_std(net: SuperNet) -> None:
    std, seed = 0.3, 3
    clean = _arch_grads(SearchConfig(), net, seed)
    noisy_grads = _arch_grads(SearchConfig(arch_grad_noise=std), net, seed)
    gen = torch.Generator().manual_seed(seed + 2)  # BilevelHooks' noise stream
    for c, n in zip(clean, noisy_grads):
        assert torch.allclose(n - c, std * torch.randn(c.shape, generator=gen), atol=1e-6)
    diff = torch.cat([(n - c).flatten() for c, n in zip(clean, noisy_grads)])
    assert 0.2 < float(diff.std()) < 0.4  # 84 draws of N(0, 0.3^2)


def test_arch_l2_adds_two_lambda_alpha(net: SuperNet) -> None:
    lam = 0.05
    clean = _arch_grads(SearchConfig(), net)
    l2 = _arch_grads(SearchConfig(arch_l2=lam), net)
    for c, r, a in zip(clean, l2, net.arch_parameters()):
        assert torch.allclose(r - c, 2 * lam * a.detach(), atol=1e-6)  # d/da lam * a^2


def test_noisy_is_gaussian_of_the_stated_std_and_zero_is_identity() -> None:
    x = torch.zeros(20000)
    out = noisy(x, 0.1, torch.Generator().manual_seed(0))
    assert abs(float(out.std()) - 0.1) < 0.003 and abs(float(out.mean())) < 0.003
    assert noisy(x, 0.0, torch.Generator()) is x


def test_dmp_keeps_the_lowest_entropy_share() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 9.0, 0.0]])
    x, soft = dmp_reference(nn.Identity(), logits, keep=0.5)
    assert torch.equal(x, logits[[3, 1]])  # the two most confident rows, most confident first
    assert torch.allclose(soft, F.softmax(logits[[3, 1]], 1))


def test_soft_label_loss_is_kl_plus_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    soft = F.softmax(torch.randn(10, 4, generator=g), 1)
    hooks = SoftLabelHooks(soft)
    idx = next(iter(hooks.batches(10, 4, torch.Generator().manual_seed(2))))
    model = nn.Linear(3, 4)
    x = torch.randn(len(idx), 3, generator=g)
    loss = hooks.loss(model, x, soft[idx].argmax(1), 0)[0]
    p = soft[idx]
    kl = F.kl_div(F.log_softmax(model(x), 1), p, reduction="batchmean")
    entropy = -(p * p.log()).sum(1).mean()
    assert float(loss.detach()) == pytest.approx(float(kl + entropy), rel=1e-5)


def test_distilled_student_matches_the_teachers_soft_labels() -> None:
    """Trained on soft labels, the student reproduces the teacher's probabilities (hard labels could not:
    they would push it towards one-hot outputs)."""
    torch.manual_seed(0)
    teacher = nn.Linear(5, 3)
    with torch.no_grad():
        teacher.weight.mul_(0.5)  # soft outputs: max probability well below 1
    ref = torch.randn(256, 5, generator=torch.Generator().manual_seed(1))
    student = nn.Linear(5, 3)
    cfg = TrainConfig(epochs=150, batch_size=64, early_stop=150, optimizer="adam", lr=0.05, weight_decay=0.0,
                      progress=False)
    distill(teacher, student, ref, 1.0, (ref[:8], torch.zeros(8, dtype=torch.long)), cfg,
            torch.Generator().manual_seed(2))
    with torch.no_grad():
        t, s = F.softmax(teacher(ref), 1), F.softmax(student(ref), 1)
    assert float(t.max(1).values.mean()) < 0.8
    assert float((t - s).abs().max()) < 0.05


def test_sample_noise_touches_only_the_private_splits(in_tmp) -> None:
    import nas_privacy

    raw = {"dataset_name": "digits", "defense": {"name": "sample_noise", "arg": 0.2}}
    (in_tmp / "c.json").write_text(json.dumps(raw))
    run = nas_privacy.Run(nas_privacy.parse(["search", "cpu", "c.json"]))
    for name in ("theta", "alpha"):
        diff = (run.private(name)[0] - run.part(name)[0]).numpy()
        assert abs(diff.std() - 0.2) < 0.01
        assert np.array_equal(run.private(name)[1].numpy(), run.part(name)[1].numpy())
    for name in ("shadow_train", "unseen", "reference"):
        assert torch.equal(run.private(name)[0], run.part(name)[0])
    assert run.search_folder("target").name == "sample_noise_0.2" and run.search_folder("shadow").name == "none"
