"""attackers.features.sensitivity runs with TF32 off even when the caller turned it on (docs/speed.md)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attackers.features import sensitivity, strict_fp32
from experiment import configure_backends


def _flags() -> tuple[bool, bool, str, str]:
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.fp32_precision)


STRICT = (False, False, "highest", "ieee")


class FlagRecorder(nn.Module):
    """A small model that records the precision flags at every forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))
        self.seen: list[tuple[bool, bool, str, str]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(_flags())
        return self.net(x)


def _backend_state() -> tuple[object, ...]:
    return (*_flags()[:2], torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic)


def _fast_flags() -> tuple[object, ...]:
    """What --fast sets, through its own code path (experiment.configure_backends); returns the state to
    restore. Asserts that --fast does turn TF32 on, so the checks below are not vacuous."""
    before = _backend_state()
    configure_backends(fast=True)
    assert _flags() == (True, True, "high", "tf32")
    return before


def _restore(state: tuple[object, ...]) -> None:
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = state[:2]
    torch.set_float32_matmul_precision(state[2])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = state[3:]


def test_sensitivity_turns_tf32_off_inside_and_restores_the_fast_flags_after() -> None:
    x = torch.randn(40, 6)
    before = _fast_flags()
    try:
        model = FlagRecorder()
        fast = sensitivity(model, x, n=3, batch_size=16, generator=torch.Generator().manual_seed(1))
        assert model.seen and set(model.seen) == {STRICT}  # every forward, 3 chunks
        assert _flags() == (True, True, "high", "tf32")  # --fast's settings are back
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
                assert _flags() == STRICT
                raise KeyError("boom")
        except KeyError:
            pass
        assert _flags() == (True, True, "high", "tf32")
    finally:
        _restore(before)
