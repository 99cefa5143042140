"""attackers/samia.py's own encoder layer against torch's nn.TransformerEncoder (samia_reference.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from attackers import samia
from attackers.samia import SamiaTransformer, dropout_masks
from attackers.samia_reference import ReferenceSamiaTransformer
from models import init_weights


def _reference_without_dropout(num_cls: int) -> ReferenceSamiaTransformer:
    ref = ReferenceSamiaTransformer(num_cls)
    for layer in ref.encoder.layers:
        layer.self_attn.dropout = 0.0  # MultiheadAttention keeps its attention dropout as a float
        for m in (layer.dropout, layer.dropout1, layer.dropout2):
            m.p = 0.0
    return ref


def test_same_parameter_names_and_initial_weights_under_a_seed() -> None:
    torch.manual_seed(3)
    new = init_weights(SamiaTransformer(5))
    torch.manual_seed(3)
    ref = init_weights(ReferenceSamiaTransformer(5))
    a, b = new.state_dict(), ref.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # torch's deep-copied layers start with the same in_proj weights; so do ours
    assert torch.equal(a["encoder.layers.0.self_attn.in_proj_weight"], a["encoder.layers.2.self_attn.in_proj_weight"])


@pytest.mark.parametrize("training", [True, False])
def test_outputs_and_gradients_equal_torch_transformer_encoder_with_dropout_off(training: bool) -> None:
    torch.manual_seed(0)
    ref = _reference_without_dropout(6).double()
    new = SamiaTransformer(6, dropout=0.0).double()
    for p in ref.parameters():  # non-trivial weights everywhere (LayerNorm/BN affine too)
        p.data.normal_(0, 0.3)
    new.load_state_dict(ref.state_dict())
    x = torch.randn(9, 18, dtype=torch.float64)
    ref.train(training), new.train(training)
    out_ref, out_new = ref(x), new(x)
    torch.testing.assert_close(out_new, out_ref, rtol=1e-10, atol=1e-12)
    if training:
        out_ref.square().sum().backward()
        out_new.square().sum().backward()
        for (name, p_ref), p_new in zip(ref.named_parameters(), new.parameters()):
            torch.testing.assert_close(p_new.grad, p_ref.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_masks_in_train_mode_sit_where_torch_puts_dropout(monkeypatch: pytest.MonkeyPatch) -> None:
    """All-ones masks give the no-dropout reference; zero FFN masks make each layer norm2(norm1(x + sa))."""
    torch.manual_seed(1)
    ref = _reference_without_dropout(4).double().train()
    new = SamiaTransformer(4).double().train()
    new.load_state_dict(ref.state_dict())
    x = torch.randn(7, 12, dtype=torch.float64)
    monkeypatch.setattr(samia, "dropout_masks", lambda shapes, p, like, storage: [torch.ones(s, dtype=like.dtype)
                                                                          for s in shapes])
    torch.testing.assert_close(new(x), ref(x), rtol=1e-10, atol=1e-12)

    def zero_ffn(shapes: list[tuple[int, ...]], p: float, like: torch.Tensor, storage: object) -> list[torch.Tensor]:
        return [torch.zeros(s, dtype=like.dtype) if i % 4 == 3 else torch.ones(s, dtype=like.dtype)
                for i, s in enumerate(shapes)]
    monkeypatch.setattr(samia, "dropout_masks", zero_ffn)
    for layer in ref.encoder.layers:  # the reference with its FFN output removed
        layer._ff_block = lambda h: torch.zeros_like(h)
    torch.testing.assert_close(new(x), ref(x), rtol=1e-10, atol=1e-12)


def test_dropout_masks_rate_scale_and_shapes() -> None:
    torch.manual_seed(0)
    shapes = [(300, 4, 20, 20), (300, 20, 64), (7,)]
    masks = dropout_masks(shapes, 0.2, torch.empty(0))
    assert [tuple(m.shape) for m in masks] == shapes
    flat = torch.cat([m.flatten() for m in masks])
    keep = 1 - 13107 / 65536  # round(0.2 * 2^16) of the 2^16 values are dropped
    assert flat.unique().tolist() == [0.0, pytest.approx(1 / keep, rel=1e-7)]
    n = flat.numel()
    dropped = (flat == 0).double().mean().item()
    sigma = (0.2 * 0.8 / n) ** 0.5
    assert abs(dropped - 13107 / 65536) < 5 * sigma  # ~1,4M draws: 5 sigma = 0.0017
    assert abs(flat.double().mean().item() - 1.0) < 5 * sigma / keep
    # p = 0.5 splits the int16 range exactly in half; the masks of one call are not copies of each other
    half = dropout_masks([(200_000,)], 0.5, torch.empty(0))[0]
    assert abs((half == 0).double().mean().item() - 0.5) < 5 * (0.25 / 200_000) ** 0.5
    assert not torch.equal(masks[1][:7].flatten(), masks[2])


def test_state_dicts_load_both_ways_strictly() -> None:
    """A state_dict saved from the nn.TransformerEncoder module loads strictly, and back."""
    ref = ReferenceSamiaTransformer(3)
    new = SamiaTransformer(3)
    assert new.load_state_dict(ref.state_dict(), strict=True)
    assert ref.load_state_dict(new.state_dict(), strict=True)
    assert isinstance(new.encoder.layers[0].dropout, nn.Dropout) and new.encoder.layers[0].dropout.p == 0.2


def test_mask_storage_is_reused_and_a_stale_backward_is_refused() -> None:
    """The masks live in one storage per model; a second training forward before the first backward
    overwrites them, and autograd must refuse that backward rather than use the wrong masks."""
    torch.manual_seed(0)
    model = SamiaTransformer(3).train()
    x = torch.rand(8, 9)
    model(x).sum().backward()
    storage = model.encoder.mask_storage
    ptr = storage.keep.data_ptr()
    first = model(x).sum()
    assert storage.keep.data_ptr() == ptr  # same memory, new masks
    model(x[:5])  # a smaller batch: same storage again
    assert storage.keep.data_ptr() == ptr
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        first.backward()
