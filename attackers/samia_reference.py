"""The SAMIA transformer as first written, on torch's nn.TransformerEncoder (kept for two uses only).

`attackers/samia.py` now runs its own encoder layer (same math, same parameter names, cheaper dropout);
this module is the independent route the tests compare it with (equal outputs with dropout off, state
dicts loading both ways) and the "old" side of `bench.py --sections samia`.
"""
from __future__ import annotations

import torch
from torch import nn

from attackers.samia import D_FF, D_MODEL, DROPOUT, N_HEAD, N_LAYERS


class ReferenceSamiaTransformer(nn.Module):
    """The SAMIA attack model for C classes on nn.TransformerEncoder (the previous implementation)."""

    def __init__(self, num_cls: int) -> None:
        super().__init__()
        self.num_cls = num_cls
        self.norm = nn.BatchNorm1d(3 * num_cls)
        self.embed = nn.Sequential(nn.Linear(3, D_MODEL), nn.GELU())
        layer = nn.TransformerEncoderLayer(D_MODEL, N_HEAD, dim_feedforward=D_FF, dropout=DROPOUT,
                                           activation="gelu", batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, N_LAYERS, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(D_MODEL * num_cls, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(x).reshape(x.shape[0], 3, self.num_cls).transpose(1, 2)
        return self.head(self.encoder(self.embed(tokens)).flatten(1))
