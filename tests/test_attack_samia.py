"""attackers/samia.py: parameter count by hand, per-class token layout, leaky vs null."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attackers.samia import SamiaAttack, SamiaTransformer, samia_features, samia_param_count
from test_attack_nn import FAST, check_learned_attack, one_thread  # noqa: E402,F401


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_param_count_by_hand() -> None:
    # C=10: BN 2*30 + embed 3*64+64 + 3 * (in_proj 3*64*64+192 + out_proj 64*64+64 + FFN 64*128+128
    #       + 128*64+64 + 2 LayerNorms 256) + head 640*64+64 + 64*2+2
    by_hand = 60 + 256 + 3 * (12_480 + 4_160 + 8_320 + 8_256 + 256) + 41_024 + 130
    assert by_hand == 141_886
    assert _count(SamiaTransformer(10)) == samia_param_count(10) == by_hand
    assert _count(SamiaTransformer(100)) == samia_param_count(100) == 4102 * 100 + 100_866 == 511_066


def test_architecture_settings() -> None:
    model = SamiaTransformer(4)
    layers = model.encoder.layers
    assert len(layers) == 3
    layer = layers[0]
    assert layer.self_attn.num_heads == 4 and layer.self_attn.embed_dim == 64
    assert layer.linear1.out_features == 128 and layer.dropout.p == 0.2
    assert not layer.norm_first  # post-LN
    assert model.norm.num_features == 12


def test_token_c_holds_confidence_sensitivity_and_label_of_class_c() -> None:
    probs = np.array([[0.7, 0.2, 0.1]])
    sens = np.array([[5.0, 6.0, 7.0]])
    feats = samia_features(probs, sens, np.array([1]), 3)
    tokens = SamiaTransformer(3).tokens(torch.as_tensor(feats))
    expected = [[0.7, 5.0, 0.0], [0.2, 6.0, 1.0], [0.1, 7.0, 0.0]]
    np.testing.assert_array_equal(tokens[0].numpy(), expected)


def test_no_positional_encoding_tokens_are_permutation_equivariant() -> None:
    """Class identity reaches attention only through onehot_c: permuting the tokens permutes the output."""
    torch.manual_seed(0)
    model = SamiaTransformer(3).eval()
    x = torch.rand(4, 9)
    assert model(x).shape == (4, 2)
    tokens, perm = model.tokens(x), torch.tensor([2, 0, 1])
    with torch.no_grad():
        h = model.encoder(model.embed(tokens))
        h_perm = model.encoder(model.embed(tokens[:, perm]))
    torch.testing.assert_close(h_perm, h[:, perm])


@pytest.mark.parametrize("leaky", [True, False])
def test_samia_leaky_vs_null(leaky: bool) -> None:
    check_learned_attack(SamiaAttack, FAST, leaky)
