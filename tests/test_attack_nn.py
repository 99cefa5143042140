"""attackers/nn.py (mia_fc, the shared trainer, nn / nn_top3 / nn_cls) and the registry in attackers/__init__."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from attackers import ATTACKS, create_attack, resolve_attacks
from attackers.base import AttackInput
from attackers.nn import NNAttack, NNClsAttack, NNTop3Attack, TrainConfig, _batches, mia_fc, train_attack_model
from core.errors import UserError
from test_attack_features import assert_leaky_vs_null, make_attack_input  # noqa: E402

# few epochs, a larger lr and smaller data than the artifact so the whole file runs in seconds
FAST = TrainConfig(epochs=8, lr=0.05)
SMALL = {"n_shadow": 500, "n_target": 300}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and they slow down badly on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def check_learned_attack(attack_cls: type, config: object, leaky: bool) -> None:
    """One learned attack on the small leaky / null synthetic input."""
    data: AttackInput = make_attack_input(leaky, **SMALL)
    (result,) = attack_cls(config).run(data)
    assert_leaky_vs_null(data, result, leaky)


def test_mia_fc_layout_and_param_count() -> None:
    model = mia_fc(10)
    expected = (10 * 512 + 512) + (512 * 256 + 256) + (256 * 128 + 128) + (128 * 2 + 2)
    assert sum(p.numel() for p in model.parameters()) == expected == 170_114
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout",
                                                "Linear", "ReLU", "Linear"]
    assert model(torch.zeros(3, 10)).shape == (3, 2)


def test_batches_cover_every_row_once_and_never_leave_a_single_row() -> None:
    parts = _batches(257, 128, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert [p.numel() for p in parts] == [128, 129]  # 128 + 128 + 1 -> the lone row joins the last batch
    assert sorted(torch.cat(parts).tolist()) == list(range(257))


def test_trainer_is_reproducible_and_returns_last_epoch_accuracy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] > 0).astype(np.int64)

    def fit() -> tuple[float, np.ndarray, np.ndarray]:
        torch.manual_seed(1)
        return train_attack_model(mia_fc(4), x, y, x[:100], y[:100], epochs=20, lr=0.05, seed=3)

    a, b = fit(), fit()
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.paper_acc == pytest.approx(100 * np.mean(a.decisions == y[:100]))
    np.testing.assert_array_equal(a.decisions, (a.scores > 0.5).astype(int))
    assert a.paper_acc > 90  # a linearly separable toy problem


@pytest.mark.parametrize("leaky", [True, False])
@pytest.mark.parametrize("attack_cls", [NNAttack, NNTop3Attack, NNClsAttack])
def test_nn_attacks_leaky_vs_null(attack_cls: type, leaky: bool) -> None:
    check_learned_attack(attack_cls, FAST, leaky)


def test_feature_widths() -> None:
    probs, labels = np.full((2, 5), 0.2), np.array([0, 4])
    assert NNAttack().features(probs, probs, labels, 5).shape == (2, 5)
    assert NNTop3Attack().features(probs, probs, labels, 5).shape == (2, 3)
    cls = NNClsAttack().features(probs, probs, labels, 5)
    np.testing.assert_array_equal(cls[:, 5:], [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]])


def test_registry_and_resolve() -> None:
    assert set(ATTACKS.names()) == {"samia", "threshold", "nn", "nn_top3", "nn_cls", "blindmi", "lira_online",
                                    "lira_offline", "rmia_online", "rmia_offline", "loss"}
    assert resolve_attacks("all") == list(ATTACKS.names())
    assert resolve_attacks("nn_cls, samia,nn_cls") == ["nn_cls", "samia"]
    # a family name stands for its variants, in registry order, after what came before it
    assert resolve_attacks("samia,lira,rmia_offline,rmia") == ["samia", "lira_online", "lira_offline",
                                                                "rmia_offline", "rmia_online"]
    with pytest.raises(UserError) as err:
        resolve_attacks("all,liar")   # an unknown name is never swallowed by "all"
    assert "liar" in err.value.what and "blindmi" in (err.value.hint or "") and "lira" in (err.value.hint or "")
    with pytest.raises(UserError):
        resolve_attacks(" , ")
    for name in ATTACKS.names():
        attack = create_attack(name, epochs=3, lr=0.5, device="cpu", seed=1, batch_size=64)
        assert isinstance(attack, ATTACKS.get(name)) and attack.name == name
    assert create_attack("nn", epochs=3).config.epochs == 3
    assert create_attack("blindmi", batch_size=50).config.batch_size == 50
