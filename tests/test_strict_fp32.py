"""attackers.features.sensitivity runs with TF32 off even when the caller turned it on (issue 18)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attackers.features import sensitivity, strict_fp32


def _flags() -> tuple[bool, bool, str]:
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.get_float32_matmul_precision())


class FlagRecorder(nn.Module):
    """A small model that records the precision flags at every forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))
        self.seen: list[tuple[bool, bool, str]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(_flags())
        return self.net(x)


def _fast_flags() -> tuple[bool, bool, str]:
    """What --fast sets (TF32 everywhere); returns the previous flags to restore."""
    before = _flags()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    return before


def _restore(flags: tuple[bool, bool, str]) -> None:
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags[:2]
    torch.set_float32_matmul_precision(flags[2])


def test_sensitivity_turns_tf32_off_inside_and_restores_the_fast_flags_after() -> None:
    x = torch.randn(40, 6)
    before = _fast_flags()
    try:
        model = FlagRecorder()
        fast = sensitivity(model, x, n=3, batch_size=16, generator=torch.Generator().manual_seed(1))
        assert model.seen and set(model.seen) == {(False, False, "highest")}  # every forward, 3 chunks
        assert _flags() == (True, True, "high")  # --fast's settings are back
    finally:
        _restore(before)
    strict = sensitivity(FlagRecorder(), x, n=3, batch_size=16, generator=torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(fast, strict)  # on the CPU the flags change nothing: equal values
    assert strict.shape == (40, 4) and strict.min() > 0


def test_strict_fp32_restores_on_error() -> None:
    before = _fast_flags()
    try:
        try:
            with strict_fp32():
                assert _flags() == (False, False, "highest")
                raise KeyError("boom")
        except KeyError:
            pass
        assert _flags() == (True, True, "high")
    finally:
        _restore(before)
