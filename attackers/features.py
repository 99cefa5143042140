"""Attack features (paper §4.1, docs/design.md §7.1): prediction confidence, prediction sensitivity, labels, gaps.

Pure functions. Models are queried in eval mode without gradients (their previous mode is restored), in
batches moved to the model's device; results come back as float64 numpy arrays on the CPU. Softmax is
taken in float64 so the log-based threshold scores see tiny probabilities exactly.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode + no grad, restoring the caller's train/eval mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


@contextmanager
def strict_fp32() -> Iterator[None]:
    """TF32 off for the block (CUDA matmuls and cuDNN convolutions, 'highest' matmul precision), the
    caller's settings restored afterwards, also on error.

    The precision rule: prediction sensitivity differences outputs perturbed by eps = 1e-3; TF32 keeps
    10 mantissa bits (relative rounding ~5e-4 per product), larger than the effect being measured, so
    `sensitivity` always runs in strict fp32 even when --fast turned TF32 on for training.
    """
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def _softmax64(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.to(torch.float64), dim=1)


def predict_proba(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> np.ndarray:
    """Prediction confidence PC = f_p(x) (paper §4.1): softmax outputs, shape (n, C)."""
    device = model_device(model)
    out: list[torch.Tensor] = []
    with _inference(model):
        for start in range(0, x.shape[0], batch_size):
            out.append(_softmax64(model(x[start:start + batch_size].to(device))).cpu())
    return torch.cat(out).numpy()


def sensitivity(model: nn.Module, x: torch.Tensor, *, n: int = 10, eps: float = 1e-3, batch_size: int = 512,
                generator: torch.Generator | None = None) -> np.ndarray:
    """Prediction sensitivity PS (paper eq. 2) per class, as the artifact computes it; shape (n_samples, C).

    PS(x) = 1/n * sum_i |f_p(x + eps * delta_i) - f_p(x)| / eps with delta_i ~ N(0, I) drawn in the
    normalised input space (also for binary tabular inputs, as in the artifact), per class, with no further
    normalisation. The samples are processed in chunks of `batch_size`; each chunk's clean rows and its n
    noisy copies go through ONE forward pass ((n + 1) * batch_size rows at most, so memory is bounded).
    The noise of a chunk is drawn on the CPU from `generator` as a tensor of shape (n, chunk, *x.shape[1:])
    (copy i of sample j gets noise[i, j]) and then moved to the device, so the result is reproducible on
    any device for a given (seed, batch_size). generator=None uses torch's global CPU RNG (the artifact's
    behaviour). Runs under `strict_fp32()` (TF32 off), whatever the caller's precision settings.
    """
    device = model_device(model)
    out: list[torch.Tensor] = []
    with _inference(model), strict_fp32():
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start:start + batch_size].to(device)
            b = chunk.shape[0]
            noise = torch.randn((n, *chunk.shape), generator=generator, dtype=chunk.dtype).to(device)
            # row layout: [clean chunk, copy 0 of the chunk, ..., copy n-1]
            rows = torch.cat([chunk, (chunk.unsqueeze(0) + eps * noise).reshape(n * b, *chunk.shape[1:])])
            probs = _softmax64(model(rows))
            clean, noisy = probs[:b], probs[b:].reshape(n, b, -1)
            out.append(((noisy - clean).abs().mean(dim=0) / eps).cpu())
    return torch.cat(out).numpy()


def one_hot(labels: np.ndarray, num_cls: int) -> np.ndarray:
    """(n, num_cls) float64 one-hot encoding of integer class labels."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.zeros((labels.size, num_cls), dtype=np.float64)
    out[np.arange(labels.size), labels] = 1.0
    return out


def top_k_sorted(probs: np.ndarray, k: int = 3) -> np.ndarray:
    """The k largest confidences of each row in descending order (Salem et al.'s Top-3 feature).

    With fewer than k classes all C confidences are returned (sorted), so the width is min(k, C).
    """
    k = min(k, probs.shape[1])
    return -np.sort(-probs, axis=1)[:, :k]


def true_class(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """values[i, y_i]: the ground-truth-class entry of each row (f_p^{y_i} or PS^{y_i})."""
    labels = np.asarray(labels, dtype=np.int64)
    return values[np.arange(labels.size), labels]


def _mean_true_class_gap(v_in: np.ndarray, y_in: np.ndarray, v_out: np.ndarray, y_out: np.ndarray) -> float:
    return float(true_class(v_in, y_in).mean() - true_class(v_out, y_out).mean())


def confidence_gap(probs_in: np.ndarray, y_in: np.ndarray, probs_out: np.ndarray, y_out: np.ndarray) -> float:
    """Confidence gap (paper eq. 3): mean f_p^{y}(x) over members minus mean over non-members.

    Members are D_train, non-members D_test; a fraction in [-1, 1].
    """
    return _mean_true_class_gap(probs_in, y_in, probs_out, y_out)


def sensitivity_gap(sens_in: np.ndarray, y_in: np.ndarray, sens_out: np.ndarray, y_out: np.ndarray) -> float:
    """Sensitivity gap (paper eq. 4): mean PS^{y}(x) over members minus mean over non-members.

    Eq. 4 takes the ground-truth-class entry PS^{y_i} of the per-class sensitivity vector (eq. 2) and
    subtracts the non-member average from the member average (members first, as in eq. 3), so its sign is
    kept: a negative gap means members are less sensitive than non-members.
    """
    return _mean_true_class_gap(sens_in, y_in, sens_out, y_out)


def generalization_gap(train_acc: float, test_acc: float) -> float:
    """Generalisation gap: train accuracy minus test accuracy (in whatever unit both are given)."""
    return float(train_acc - test_acc)
