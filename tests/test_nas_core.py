"""nas/: ops, supernet gradient, splits, search resume, AMIA null / leaky cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attackers.base import AttackInput
from core.errors import UserError
from nas import amia as M
from nas.ops import PRIMITIVES, MixedOp
from nas.search import SearchConfig, arch_gradient, search
from nas.splits import SPLIT_NAMES, check_total, make_nas_splits, nas_splits_for
from nas.supernet import SpaceConfig, SuperNet


@pytest.mark.parametrize("chosen", range(len(PRIMITIVES)))
def test_mixed_op_with_one_hot_weights_is_the_chosen_op(chosen: int) -> None:
    torch.manual_seed(0)
    op = MixedOp(3, PRIMITIVES, "elu", bn=False)
    x = torch.randn(2, 3, 6, 6)
    w = F.one_hot(torch.tensor(chosen), len(PRIMITIVES)).float()
    expected = op.ops[chosen](x)
    assert expected.shape == x.shape
    torch.testing.assert_close(op(x, w), expected)
    if PRIMITIVES[chosen] == "skip_connect":
        torch.testing.assert_close(op(x, w), x)
    if PRIMITIVES[chosen] == "none":
        assert op(x, w).abs().max() == 0


def test_arch_gradient_equals_central_finite_differences() -> None:
    torch.manual_seed(1)
    net = SuperNet(SpaceConfig(P=3, C=2, activation="tanh", batchnorm=False), 1, 4).double()
    x, y = torch.randn(1, 1, 4, 4, dtype=torch.double), torch.tensor([2])
    g = arch_gradient(net, x, y)
    flat = torch.cat([p.detach().reshape(-1) for p in net.arch_parameters()])
    fd, h = torch.zeros_like(flat), 1e-6
    for i in range(len(flat)):
        vals = []
        for s in (h, -h):
            v = flat.clone()
            v[i] += s
            with torch.no_grad():
                net.alpha.copy_(v[:net.alpha.numel()].view_as(net.alpha))
                net.beta.copy_(v[net.alpha.numel():].view_as(net.beta))
                vals.append(F.cross_entropy(net(x), y).item())
        fd[i] = (vals[0] - vals[1]) / (2 * h)
    with torch.no_grad():
        net.alpha.copy_(flat[:net.alpha.numel()].view_as(net.alpha))
        net.beta.copy_(flat[net.alpha.numel():].view_as(net.beta))
    torch.testing.assert_close(g, fd, atol=1e-7, rtol=1e-5)
    assert g.abs().max() > 1e-4  # not a vacuous all-zero match
    # masked edges (node p reads only f_0..f_p) get exactly zero gradient
    assert torch.all(g[net.alpha.numel():].view(3, 3).triu(1) == 0)


def test_splits_are_disjoint_sized_and_saved(tmp_path) -> None:
    fr = {"theta": 0.2, "alpha": 0.2, "shadow_train": 0.15, "shadow_test": 0.15, "unseen": 0.2, "reference": 0.1}
    s = make_nas_splits(1797, fr, seed=3)
    allidx = np.concatenate([s[k] for k in SPLIT_NAMES])
    assert len(allidx) == len(set(allidx.tolist()))
    assert [len(s[k]) for k in SPLIT_NAMES] == [int(fr[k] * 1797) for k in SPLIT_NAMES]
    path = tmp_path / "data_index.json"
    nas_splits_for(1797, fr, 3, path)
    assert np.array_equal(nas_splits_for(1797, fr, 3, path)["alpha"], s["alpha"])
    with pytest.raises(UserError, match="disagrees"):
        nas_splits_for(1797, fr, 4, path)
    with pytest.raises(UserError, match="overlap"):
        check_total(fr | {"theta": 0.4}, "cfg")


def _tiny_search(tmp_path, epochs: int, ckpt_name: str, fingerprint: str = "a") -> SuperNet:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(48, 1, 6, 6, generator=g), torch.randint(0, 3, (48,), generator=g)
    net = SuperNet(SpaceConfig(P=2, C=3), 1, 3)
    search(net, (x[:24], y[:24]), (x[24:], y[24:]), SearchConfig(epochs=epochs, batch_size=8, arch_grad_noise=0.01),
           seed=1, ckpt_path=tmp_path / ckpt_name, fingerprint=fingerprint, remedy="rerun with --overwrite")
    return net


def test_killed_search_resumes_bit_for_bit(tmp_path) -> None:
    full = _tiny_search(tmp_path, 2, "full.pt")
    _tiny_search(tmp_path, 1, "part.pt")                # "killed" after epoch 1: its checkpoint stays
    resumed = _tiny_search(tmp_path, 2, "part.pt")      # a fresh process state, resumed from the file
    for (n, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), n
    one = _tiny_search(tmp_path, 1, "one.pt")
    assert not torch.equal(one.alpha, full.alpha)       # the second epoch did move alpha
    with pytest.raises(UserError, match="other settings or rows"):
        _tiny_search(tmp_path, 2, "part.pt", fingerprint="b")


def _amia(shadow_in, shadow_out, target_in, target_out) -> dict:
    probs = np.concatenate
    sp, tp = probs([shadow_in, shadow_out]), probs([target_in, target_out])
    sm = np.r_[np.ones(len(shadow_in)), np.zeros(len(shadow_out))].astype(np.int64)
    tm = np.r_[np.ones(len(target_in)), np.zeros(len(target_out))].astype(np.int64)
    data = AttackInput(sp, np.zeros_like(sp), sp.argmax(1), sm, tp, np.zeros_like(tp), tp.argmax(1), tm, 5)
    res = M.run_attacks(data, M.AmiaConfig(attack_epochs=30), torch.Generator().manual_seed(0))
    return {r["attack"]: r for _, r in res}


def _dirichlet(rng, n, conc):
    return rng.dirichlet(np.full(5, conc), size=n)


def test_amia_near_chance_when_members_and_nonmembers_share_a_distribution() -> None:
    rng = np.random.default_rng(0)
    res = _amia(*(_dirichlet(rng, 400, 0.5) for _ in range(4)))
    for name in ("ffn", "conf", "entr"):
        assert abs(res[name]["auc"] - 50) < 6, (name, res[name]["auc"])
        assert abs(res[name]["attack_acc_2p1"]) < 0.12


def test_amia_clearly_above_chance_on_a_leaky_case() -> None:
    rng = np.random.default_rng(1)
    members = lambda: _dirichlet(rng, 400, 0.1)
    others = lambda: _dirichlet(rng, 400, 2.0)
    res = _amia(members(), others(), members(), others())
    assert res["ffn"]["auc"] > 85 and res["ffn"]["attack_acc_2p1"] > 0.5
    assert res["entr"]["auc"] > 85


def test_paper_metrics_by_hand() -> None:
    member = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    dec = np.array([1, 1, 1, 0, 1, 0, 0, 0])     # P = 6/8; precision 3/4, recall 3/4
    m = M.paper_metrics(member, dec)
    assert m["attack_acc_2p1"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.75)


def test_report_tables() -> None:
    from reporting.markdown import to_markdown
    from reporting.nas import ADRA_BOUNDS, ADRA_COLS, AMIA_BOUNDS, AMIA_COLS, nas_table
    amia = [{"setting": "nas_amia_fixed_shadow", "dataset_name": "digits", "P": 4, "defense": "none",
             "membership_set": "alpha", "attack": "ffn", "attack_acc_2p1": 0.125, "f1": 0.5}]
    adra = [{"setting": "nas_adra", "dataset_name": "digits", "P": 4, "activation": "elu", "batch": 1, "sr": 50.0,
             "mse": 0.25}]
    assert "| digits | 4 | none | nas_amia_fixed_shadow | alpha | ffn | 0.125 | 0.500 |" in \
        to_markdown(nas_table(amia, AMIA_COLS, AMIA_BOUNDS))
    assert "| 50.0 | 0.25 |" in to_markdown(nas_table(adra, ADRA_COLS, ADRA_BOUNDS))  # the report's number rule


def test_genotype_bits_count_every_derivable_genotype() -> None:
    # Enumerate the genotypes derive_genotype can return (ops without 'none', two strongest predecessors).
    import itertools
    import math

    space = SpaceConfig(P=3, C=2, primitives=("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3"))
    count = sum(1 for _ in itertools.product(
        itertools.product(space.derivable_ops(), repeat=space.P),
        *[itertools.combinations(range(p + 1), min(2, p + 1)) for p in range(space.P)]))
    assert count == 3 ** 3 * 1 * 1 * 3
    assert math.isclose(space.genotype_bits(), math.log2(count))
    # The quick space (8 operations, P 4): 7^4 * 1 * 1 * 3 * 6 genotypes, 15.4 bits.
    assert math.isclose(SpaceConfig(P=4).genotype_bits(), math.log2(7 ** 4 * 18))


def test_amia_accuracy_cap_solves_fanos_bound() -> None:
    from scipy.stats import entropy

    bits, pairs = SpaceConfig(P=4).genotype_bits(), 359   # the quick slice: 359 members of D^alpha
    cap = M.accuracy_cap(bits, pairs)
    assert 0.5 < cap < 1 and abs(entropy([cap, 1 - cap], base=2) - (1 - bits / pairs)) < 1e-10
    assert round(cap, 2) == 0.62                          # the audit's figure
    assert M.accuracy_cap(0.0, 100) == 0.5 and M.accuracy_cap(200.0, 100) == 1.0
    assert M.accuracy_cap(bits, 10 * pairs) < cap          # more pairs, the same bits: a tighter cap


def test_second_order_step_keeps_darts_weight_decay_and_momentum() -> None:
    # The exact gradient of L_alpha(theta - xi (mu m + g + wd theta), alpha) w.r.t. alpha by double autograd
    # (Hessian-vector product exact), against unrolled_arch_grads' finite-difference form, in float64.
    from torch.func import functional_call

    from nas.search import ARCH_NAMES, unrolled_arch_grads

    torch.manual_seed(2)
    net = SuperNet(SpaceConfig(P=2, C=2, activation="tanh", batchnorm=False), 1, 3).double()
    g = torch.Generator().manual_seed(3)
    xt, xa = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.double), torch.randn(6, 1, 4, 4, generator=g,
                                                                                   dtype=torch.double)
    yt, ya = torch.randint(0, 3, (6,), generator=g), torch.randint(0, 3, (6,), generator=g)
    opt = torch.optim.SGD(net.weights(), lr=0.1, momentum=0.9, weight_decay=0.05)
    F.cross_entropy(net(xt), yt).backward()
    opt.step()                                            # leaves a momentum buffer, as mid-search
    opt.zero_grad()
    xi, wd = 0.1, 0.05
    names = [n for n, _ in net.named_parameters() if n not in ARCH_NAMES]
    w = [p for n, p in net.named_parameters() if n not in ARCH_NAMES]
    arch = net.arch_parameters()
    gw = torch.autograd.grad(F.cross_entropy(net(xt), yt), w, create_graph=True)
    bufs = [opt.state[p]["momentum_buffer"] for p in w]
    w1 = [p - xi * (0.9 * b + gi + wd * p) for p, b, gi in zip(w, bufs, gw)]
    out = functional_call(net, dict(zip(names, w1)) | dict(zip(ARCH_NAMES, arch)), (xa,))
    exact = torch.autograd.grad(F.cross_entropy(out, ya), arch)
    got = unrolled_arch_grads(net, xt, yt, xa, ya, xi, wd, opt)
    for e, u in zip(exact, got):
        torch.testing.assert_close(u, e, atol=1e-6, rtol=1e-4)
    without = unrolled_arch_grads(net, xt, yt, xa, ya, xi)  # the dropped terms matter at this scale
    assert max(float((a - b).abs().max()) for a, b in zip(without, exact)) > 1e-4


def test_arch_lr_has_one_default_darts_3e4() -> None:
    from nas import config as nas_config

    assert SearchConfig().arch_lr == nas_config.NasConfig().search.arch_lr == 3e-4
