"""SAMIA, the self-attention MIA (paper §4.2, Fig. 5; the artifact's `transformer`), on features [p, PS, one-hot(y)].

Architecture (the artifact's `transformer`):
  BatchNorm1d over the 3C inputs
  -> C per-class tokens, token c = (p_c, PS_c, onehot_c)
  -> Linear 3->64 + GELU
  -> 3 x TransformerEncoderLayer(d_model 64, 4 heads, FFN 128, dropout 0.2, GELU, post-LN); no positional
     encoding, so the class identity reaches attention only through onehot_c
  -> flatten (64C) -> Linear 64C->64 -> ReLU -> Linear 64->2.
Parameters: 4102*C + 100866 (141,886 at C=10; 511,066 at C=100). The artifact ran torch's
nn.TransformerEncoder sequence-first; we run our own encoder layer with the same math and parameter names
(attackers/samia_reference.py keeps the nn.TransformerEncoder version: equal outputs with dropout off,
state dicts load both ways, same initial weights under a seed). Only the dropout random stream differs.
Training: the shared trainer of attackers/nn.py (SGD lr 1e-3 -> 1e-4 -> 1e-5, the code's schedule).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from attackers.features import one_hot
from attackers.nn import LearnedAttack

D_MODEL, N_HEAD, D_FF, N_LAYERS, DROPOUT = 64, 4, 128, 3, 0.2


def samia_features(probs: np.ndarray, sens: np.ndarray, labels: np.ndarray, num_cls: int) -> np.ndarray:
    """[p (C), PS (C), one-hot (C)] per row, in this order (the layout `SamiaTransformer.tokens` expects)."""
    return np.concatenate([probs, sens, one_hot(labels, num_cls)], axis=1)


class _SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names, shapes and init."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_dim, self.num_heads = D_MODEL, N_HEAD
        self.in_proj_weight = nn.Parameter(torch.empty(3 * D_MODEL, D_MODEL))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * D_MODEL))
        self.out_proj = nn.Linear(D_MODEL, D_MODEL)
        nn.init.xavier_uniform_(self.in_proj_weight)  # after out_proj, as torch does: same RNG stream
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
        """x (B, L, D); `drop` is the scaled keep mask of the attention weights (H*B, L, L) or None."""
        b, n, _ = x.shape
        bh, d_head = b * N_HEAD, D_MODEL // N_HEAD
        # One 3-D transpose copy makes q, k, v head-major, heads outermost: (3*H, B*L, d_head); then each
        # is an (H*B, L, d_head) view, so the batched matmuls need no further copy. (A 5-D permute to
        # torch's (B, H, L, d_head) order cost 2x more here, measured.)
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b * n, 3 * N_HEAD, d_head)
        q, k, v = qkv.transpose(0, 1).contiguous().view(3, bh, n, d_head)
        if drop is None:  # fused kernel (CPU flash attention); it cannot take our own dropout mask
            out = F.scaled_dot_product_attention(q, k, v)
        else:  # softmax(q k^T / sqrt(d_head)), the scale inside the matmul, then dropout, then @ v
            scores = torch.baddbmm(q.new_empty(()).expand(bh, n, n), q, k.transpose(1, 2), beta=0.0,
                                   alpha=d_head ** -0.5)
            out = torch.bmm(torch.softmax(scores, dim=-1) * drop, v)
        return self.out_proj(out.view(N_HEAD, b * n, d_head).transpose(0, 1).reshape(b, n, D_MODEL))


class _EncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer(D_MODEL, N_HEAD, D_FF, DROPOUT, gelu, post-LN): same math, same names."""

    norm_first = False

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.self_attn = _SelfAttention()
        self.linear1 = nn.Linear(D_MODEL, D_FF)
        self.dropout = nn.Dropout(dropout)  # holds p; the masks come from `dropout_masks`
        self.linear2 = nn.Linear(D_FF, D_MODEL)
        self.norm1 = nn.LayerNorm(D_MODEL)
        self.norm2 = nn.LayerNorm(D_MODEL)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | None) -> torch.Tensor:
        """masks: the scaled keep masks (attention weights, attention output, FFN hidden, FFN output)."""
        m_attn, m_sa, m_ff, m_out = masks if masks is not None else (None,) * 4
        sa = self.self_attn(x, m_attn)
        x = self.norm1(x + sa if m_sa is None else torch.addcmul(x, sa, m_sa))  # x + sa * mask, one op
        hidden = F.gelu(self.linear1(x))
        ff = self.linear2(hidden if m_ff is None else hidden * m_ff)
        return self.norm2(x + ff if m_out is None else torch.addcmul(x, ff, m_out))


class MaskStorage:
    """Memory reused by every step's dropout masks (10 MB at 128 rows x 20 classes).

    Fresh tensors of that size come from mmap and page-fault on first touch every step: reusing them cut
    the epoch by 4 % (measured, 5,400 x 20, one thread). Safe: every mask is saved for backward, so
    overwriting it before that backward (two training forwards, then the first backward) raises autograd's
    in-place modification error instead of using wrong masks (tests/test_samia_speed.py).
    """

    def __init__(self) -> None:
        self.bits = torch.empty(0, dtype=torch.int64)
        self.keep = torch.empty(0)

    def take(self, total: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(random words, float masks) for `total` mask elements; grows, never shrinks (last batch)."""
        words = (total + 3) // 4
        if self.keep.numel() < total or self.keep.dtype != like.dtype or self.keep.device != like.device:
            self.bits = torch.empty(words, dtype=torch.int64, device=like.device)
            self.keep = torch.empty(total, dtype=like.dtype, device=like.device)
        return self.bits[:words], self.keep[:total]


def dropout_masks(shapes: list[tuple[int, ...]], p: float, like: torch.Tensor,
                  storage: MaskStorage | None = None) -> list[torch.Tensor]:
    """Every dropout mask of one forward pass from ONE random draw: 0 where dropped, 1/keep where kept.

    Each element gets a uniform 16-bit number (four per 64-bit draw) and is dropped when it falls in the
    lowest round(p * 2^16) values, so the drop rate is round(p * 2^16) / 2^16 (0.2 -> 0.19999695; torch's
    float32 draws are not exact either), and the scale 1/keep keeps every mask's mean at exactly 1, as
    nn.Dropout's. A different random stream from nn.Dropout's. Measured on one CPU thread, 2.6M mask
    elements (one SAMIA step at C=20): bernoulli_ 24 ms, torch.rand + in-place ge/mul 11 ms, this 5 ms.
    The masks are views of `storage` (fresh memory when None).
    """
    sizes = [math.prod(s) for s in shapes]
    total = sum(sizes)
    bits, keep = (storage or MaskStorage()).take(total, like)
    bits.random_(-2 ** 63, None)
    drop = round(p * 2 ** 16)
    # int16 -> float is exact and, measured, 2.5x cheaper than comparing first and converting the bools;
    # each int16 field is uniform over [-2^15, 2^15)
    keep.copy_(bits.view(torch.int16)[:total]).ge_(drop - 2 ** 15).mul_(2 ** 16 / (2 ** 16 - drop))
    return [m.view(s) for m, s in zip(keep.split(sizes), shapes)]


class _Encoder(nn.Module):
    """N_LAYERS clones of one layer (deep copies, as nn.TransformerEncoder makes them)."""

    def __init__(self, layer: _EncoderLayer) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(N_LAYERS))
        self.mask_storage = MaskStorage()  # a plain attribute: not in the state_dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.layers[0].dropout.p
        masks = None
        if self.training and p > 0:
            b, n, _ = x.shape
            masks = dropout_masks([(N_HEAD * b, n, n), (b, n, D_MODEL), (b, n, D_FF), (b, n, D_MODEL)] * N_LAYERS,
                                  p, x, self.mask_storage)
        for i, layer in enumerate(self.layers):
            x = layer(x, None if masks is None else masks[4 * i:4 * i + 4])
        return x


class SamiaTransformer(nn.Module):
    """The SAMIA attack model for C classes (input width 3C, two output logits).

    The encoder is our own post-LN layer rather than nn.TransformerEncoder: the same parameters under the
    same names (a state_dict of either loads into the other), the same construction order (the same
    initial weights under a seed), the same outputs with dropout off; the dropout masks of a step come
    from one draw. On one CPU thread an epoch is ~1.5x faster (bench.py --sections samia; the matrix
    products, already near the core's peak, are half of what is left).
    """

    def __init__(self, num_cls: int, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.num_cls = num_cls
        self.norm = nn.BatchNorm1d(3 * num_cls)
        self.embed = nn.Sequential(nn.Linear(3, D_MODEL), nn.GELU())
        self.encoder = _Encoder(_EncoderLayer(dropout))
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
    reads = ("shadow_probs", "shadow_sens", "shadow_labels", "shadow_member", "target_sens")

    def features(self, probs: np.ndarray, sens: np.ndarray, labels: np.ndarray, num_cls: int) -> np.ndarray:
        return samia_features(probs, sens, labels, num_cls)

    def build(self, in_dim: int, num_cls: int) -> nn.Module:
        return SamiaTransformer(num_cls)
