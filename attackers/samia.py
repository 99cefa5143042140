"""SAMIA, the self-attention MIA (paper §4.2, Fig. 5; facts §7), on features [p, PS, one-hot(y)].

Architecture (the artifact's `transformer`):
  BatchNorm1d over the 3C inputs
  -> C per-class tokens, token c = (p_c, PS_c, onehot_c)
  -> Linear 3->64 + GELU
  -> 3 x TransformerEncoderLayer(d_model 64, 4 heads, FFN 128, dropout 0.2, GELU, post-LN); no positional
     encoding, so the class identity reaches attention only through onehot_c
  -> flatten (64C) -> Linear 64C->64 -> ReLU -> Linear 64->2.
Parameters: 4102*C + 100866 (141,886 at C=10; 511,066 at C=100). The artifact ran the encoder
sequence-first; we use batch_first=True, which is the same computation on a transposed layout.
Training: the shared trainer of attackers/nn.py (SGD lr 1e-3 -> 1e-4 -> 1e-5, the code's schedule).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attackers.features import one_hot
from attackers.nn import LearnedAttack

D_MODEL, N_HEAD, D_FF, N_LAYERS, DROPOUT = 64, 4, 128, 3, 0.2


def samia_features(probs: np.ndarray, sens: np.ndarray, labels: np.ndarray, num_cls: int) -> np.ndarray:
    """[p (C), PS (C), one-hot (C)] per row, in this order (the layout `SamiaTransformer.tokens` expects)."""
    return np.concatenate([probs, sens, one_hot(labels, num_cls)], axis=1)


class SamiaTransformer(nn.Module):
    """The SAMIA attack model for C classes (input width 3C, two output logits)."""

    def __init__(self, num_cls: int) -> None:
        super().__init__()
        self.num_cls = num_cls
        self.norm = nn.BatchNorm1d(3 * num_cls)
        self.embed = nn.Sequential(nn.Linear(3, D_MODEL), nn.GELU())
        layer = nn.TransformerEncoderLayer(D_MODEL, N_HEAD, dim_feedforward=D_FF, dropout=DROPOUT,
                                           activation="gelu", batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, N_LAYERS, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(D_MODEL * num_cls, 64), nn.ReLU(), nn.Linear(64, 2))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3C) -> (B, C, 3): the block layout [p | PS | onehot] regrouped so token c = (p_c, PS_c, onehot_c)."""
        return x.reshape(x.shape[0], 3, self.num_cls).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(self.tokens(self.norm(x))))
        return self.head(h.flatten(1))


def samia_param_count(num_cls: int) -> int:
    """Closed form of the parameter count, term by term (used by the tests and the docs)."""
    bn = 2 * 3 * num_cls
    embed = 3 * D_MODEL + D_MODEL
    attn = 3 * D_MODEL * D_MODEL + 3 * D_MODEL + D_MODEL * D_MODEL + D_MODEL  # in_proj + out_proj
    ffn = D_MODEL * D_FF + D_FF + D_FF * D_MODEL + D_MODEL
    norms = 2 * 2 * D_MODEL
    head = D_MODEL * num_cls * 64 + 64 + 64 * 2 + 2
    return bn + embed + N_LAYERS * (attn + ffn + norms) + head


class SamiaAttack(LearnedAttack):
    """SAMIA: per-class tokens of confidence, sensitivity and label through self-attention."""

    name = "samia"
    artifact_lines = {"samia": "SAMIA attack accuracy {:.3f}"}
    headline = ("samia",)
    proposed = ("samia",)

    def features(self, probs: np.ndarray, sens: np.ndarray, labels: np.ndarray, num_cls: int) -> np.ndarray:
        return samia_features(probs, sens, labels, num_cls)

    def build(self, in_dim: int, num_cls: int) -> nn.Module:
        return SamiaTransformer(num_cls)
