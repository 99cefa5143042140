"""Pruning approaches of the artifact (docs/design.md §5), with nni 2.2's one-shot mask rules re-implemented by hand.

The artifact pruned with nni 2.2 (`LevelPruner`, `L1FilterPruner`, `L2FilterPruner`, `SlimPruner`); those
classes are gone from nni 3, whose SlimPruner is a different algorithm (it trains extra L1-penalised scale
factors before masking; nni 2.2's is one global |gamma| threshold, no training) and whose `'default'` op type
matches nothing. We compute the masks ourselves, reproducing nni 2.2's maskers line for line in their effect:

* the number pruned is `int(n * sparsity)` (rounded down), where torch.nn.utils.prune would use round();
* the cut is a threshold, the k-th smallest score (nni: `torch.topk(score, k, largest=False)[0].max()`),
  and only scores strictly greater than it are kept (nni: `torch.gt(score, threshold)`), so every element
  tied with the k-th smallest is pruned as well and a layer can lose more than k elements when scores tie;
* layers are selected like nni's op_types: by class name, `type(module).__name__`.

Sources: nni 2.2 `finegrained_pruning_masker.LevelPrunerMasker.calc_mask`, `structured_pruning_masker.
StructuredWeightMasker._normal_calc_mask`, `L1FilterPrunerMasker` / `L2FilterPrunerMasker.get_mask`,
`SlimPrunerMasker`. The filter pruners use the same threshold-and-gt rule, not "exactly k filters by a stable
argsort": when norms tie at the k-th smallest (in practice: identical or all-zero filters) all tied filters
go. Pretrained real-valued weights practically never tie otherwise, so the two rules agree in real runs.

The masks are then attached with `torch.nn.utils.prune.custom_from_mask`, which renames each masked
Parameter to `<name>_orig`, adds a `<name>_mask` buffer and recomputes `<name> = <name>_orig * <name>_mask`
before every forward. Gradients at masked positions are therefore exactly zero (nni 2.2 instead re-zeroed the
weights in place at each forward; the effective weights are the same). Masks are computed once, from the
pretrained weights, and stay fixed through fine-tuning.

Iterative pruning (WeMem, NDSS '25; docs/wemem.md): `iter_pruning` (every LEVEL_OP_TYPES layer, like
l1unstructure) and `iter_prunetxt` (every Linear but the output layer: fc1 and fc2 of columnfc) re-implement
nni 2.3's LotteryTicketPruner with reset_weights=False, i.e. iterative magnitude pruning with continued
fine-tuning, no rewind. Round k of R (k = 0..R-1) targets the layer sparsity s_k = 1-(1-s)^(k/(R-1)) (nni:
keep_ratio_once ** k with prune_iterations = R-1); round 0 is dense. The round's mask is nni 2.3's
LevelPrunerMasker applied to weight * current mask: k = int(numel * s_k) over ALL the layer's weights, the
already-pruned ones included (they are the zeros, the smallest |w|, so they fill the first slots of k and
are never counted twice); everything <= the k-th smallest |w * mask| is pruned. So round k leaves exactly
int(numel * s_k) zeros per layer (more only on ties), and a pruned weight stays pruned. `iterative_prune`
runs the rounds on the one training loop.

Public API: PRUNERS (the registry; `one_shot_names`, `iterative_names`), validate_pruner_name, validate_sparsity,
compute_masks, apply_masks, update_masks, prune_model, bake, load_pruned, measure_sparsity, iterative_schedule,
iterative_prune.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from core.errors import UserError
from core.registry import Registry
from core.storage import log
from core.training import FitResult, SplitTensors, TrainConfig, TrainHooks, fit

Masks = dict[str, Tensor]  # "module_name.weight" / "module_name.bias" -> 0/1 tensor of the parameter's shape

# nni 2.2 `default_layers.weighted_modules`, what LevelPruner's op_types ['default'] expands to.
LEVEL_OP_TYPES = frozenset({"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
                            "ConvTranspose3d", "Linear", "Bilinear", "PReLU", "Embedding", "EmbeddingBag"})
FILTER_OP_TYPES = frozenset({"Conv2d"})      # L1FilterPruner / L2FilterPruner op_types ['Conv2d']
SLIM_OP_TYPES = frozenset({"BatchNorm2d"})   # SlimPruner op_types ['BatchNorm2d']

# Error-message hint shared by every "model has nothing this approach prunes" error.
_FC_HINT = "use l1unstructure for fully connected models"


# --------------------------------------------------------------------------------------------- helpers
def _key(module_name: str, tensor_name: str) -> str:
    return f"{module_name}.{tensor_name}" if module_name else tensor_name


def _split_key(key: str) -> tuple[str, str]:
    module_name, _, tensor_name = key.rpartition(".")
    return module_name, tensor_name


def _pruning_hook(module: nn.Module, tensor_name: str) -> prune.BasePruningMethod | None:
    """The torch.nn.utils.prune hook masking `module.<tensor_name>`, if any."""
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, prune.BasePruningMethod) and hook._tensor_name == tensor_name:
            return hook
    return None


def _masked_tensors(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """(module name, module, tensor name) for every tensor masked through torch.nn.utils.prune."""
    for module_name, module in model.named_modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                yield module_name, module, hook._tensor_name


def _current(module: nn.Module, tensor_name: str) -> Tensor:
    """The effective tensor: orig with masked positions zeroed when masked, else the plain parameter.

    `module.weight` of a masked module is only refreshed at the next forward, so after optimiser steps it can
    be stale; orig and mask are always current.
    """
    if _pruning_hook(module, tensor_name) is None:
        return getattr(module, tensor_name).detach()
    orig = getattr(module, tensor_name + "_orig").detach()
    mask = getattr(module, tensor_name + "_mask")
    return orig.masked_fill(mask == 0, 0.0)


def _layers(model: nn.Module, op_types: frozenset[str]) -> list[tuple[str, nn.Module]]:
    """Modules whose class name is in op_types and that have a weight (a BN with affine=False has none)."""
    return [(name, m) for name, m in model.named_modules()
            if type(m).__name__ in op_types and isinstance(getattr(m, "weight", None), Tensor)]


def _num_prune(n: int, sparsity: float) -> int:
    """nni 2.2 rounds down with int(); torch.nn.utils.prune's float amount would use round()."""
    return int(n * sparsity)


def _keep_above_kth(scores: Tensor, k: int) -> Tensor:
    """Bool keep-mask: scores strictly above the k-th smallest (k >= 1), so ties with it are pruned too."""
    threshold = torch.kthvalue(scores.flatten(), k).values
    return scores > threshold


# ----------------------------------------------------------------------------------------- the approaches
def level_masks(model: nn.Module, sparsity: float) -> Masks:
    """`l1unstructure` = nni 2.2 LevelPruner, op_types ['default'] (LevelPrunerMasker.calc_mask).

    Per layer of LEVEL_OP_TYPES (so the final classifier too): k = int(numel * s); if k == 0 the mask is all
    ones, else keep only |w| > the k-th smallest |w|. Weight masks only: biases and BatchNorm are untouched.
    """
    masks: Masks = {}
    for name, module in _layers(model, LEVEL_OP_TYPES):
        w = _current(module, "weight")
        k = _num_prune(w.numel(), sparsity)
        keep = torch.ones_like(w, dtype=torch.bool) if k == 0 else _keep_above_kth(w.abs(), k)
        masks[_key(name, "weight")] = keep.to(w.dtype)
    return masks


def _filter_masks(model: nn.Module, sparsity: float, filter_norm: Callable[[Tensor], Tensor]) -> Masks:
    """nni 2.2 StructuredWeightMasker._normal_calc_mask + L1/L2FilterPrunerMasker.get_mask.

    Per Conv2d (stem and 1x1 downsample convs included; not dependency-aware): k = int(out_channels * s);
    a layer with fewer than 2 filters or k < 1 keeps everything; otherwise keep the filters whose norm is
    strictly above the k-th smallest norm (filters tied with it are pruned too). A pruned filter's bias
    entry is masked with it. Linear layers stay dense.
    """
    masks: Masks = {}
    for name, module in _layers(model, FILTER_OP_TYPES):
        w = _current(module, "weight")
        n_out = w.shape[0]
        k = _num_prune(n_out, sparsity)
        if n_out < 2 or k < 1:
            keep = torch.ones(n_out, dtype=torch.bool, device=w.device)
        else:
            keep = _keep_above_kth(filter_norm(w.reshape(n_out, -1)), k)
        shape = (n_out,) + (1,) * (w.dim() - 1)
        masks[_key(name, "weight")] = keep.reshape(shape).expand_as(w).to(w.dtype).contiguous()
        if isinstance(module.bias, Tensor) or _pruning_hook(module, "bias") is not None:
            masks[_key(name, "bias")] = keep.to(w.dtype)
    return masks


def _l1_norm(rows: Tensor) -> Tensor:
    return rows.abs().sum(dim=1)  # nni: w.abs().view(filters, -1).sum(dim=1)


def _l2_norm(rows: Tensor) -> Tensor:
    return torch.sqrt((rows ** 2).sum(dim=1))  # nni: torch.sqrt((w ** 2).sum(dim=1))


def l1_filter_masks(model: nn.Module, sparsity: float) -> Masks:
    """`l1structure` = nni 2.2 L1FilterPruner, op_types ['Conv2d']: filters ranked by sum |w|."""
    return _filter_masks(model, sparsity, _l1_norm)


def l2_filter_masks(model: nn.Module, sparsity: float) -> Masks:
    """`l2structure` = nni 2.2 L2FilterPruner, op_types ['Conv2d']: filters ranked by sqrt(sum w^2)."""
    return _filter_masks(model, sparsity, _l2_norm)


def slim_masks(model: nn.Module, sparsity: float) -> Masks:
    """`slim` = nni 2.2 SlimPruner (SlimPrunerMasker), one-shot: no L1 sparsity training of the gammas.

    One global threshold = the k-th smallest |gamma| over all BatchNorm2d channels, k = int(total * s).
    Each BN layer with >= 2 channels and int(channels * s) >= 1 gets gamma and beta masked wherever
    |gamma| <= threshold (so a whole layer can be wiped out); other BN layers keep everything. With k == 0
    nothing is pruned (nni itself rejects sparsity 0 and would fail on an empty topk).
    """
    layers = _layers(model, SLIM_OP_TYPES)
    gammas = [_current(module, "weight").abs() for _, module in layers]
    k = _num_prune(sum(g.numel() for g in gammas), sparsity)
    threshold = torch.kthvalue(torch.cat([g.flatten() for g in gammas]), k).values if k >= 1 else None
    masks: Masks = {}
    for (name, module), gamma in zip(layers, gammas):
        channels = gamma.numel()
        if threshold is not None and channels >= 2 and _num_prune(channels, sparsity) >= 1:
            keep = gamma > threshold
        else:
            keep = torch.ones_like(gamma, dtype=torch.bool)
        masks[_key(name, "weight")] = keep.to(gamma.dtype)
        if isinstance(module.bias, Tensor) or _pruning_hook(module, "bias") is not None:
            masks[_key(name, "bias")] = keep.to(gamma.dtype)
    return masks


def _hidden_linears(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every nn.Linear but the last one in module order (the output layer): fc1, fc2 of columnfc."""
    return _layers(model, frozenset({"Linear"}))[:-1]


def _iterative_level_masks(layers: list[tuple[str, nn.Module]], sparsity: float) -> Masks:
    """nni 2.3 LevelPrunerMasker on weight * current mask (see the module docstring), per layer.

    k == 0 keeps the current mask (nni returns all ones there, which only happens while nothing is pruned
    yet, so the two agree whenever the schedule is followed; here a mask can never grow back).
    """
    masks: Masks = {}
    for name, module in layers:
        w = _current(module, "weight")  # masked positions are exactly 0
        hook = _pruning_hook(module, "weight")
        kept = torch.ones_like(w, dtype=torch.bool) if hook is None else module.weight_mask != 0
        k = _num_prune(w.numel(), sparsity)
        keep = kept if k == 0 else kept & _keep_above_kth(w.abs(), k)
        masks[_key(name, "weight")] = keep.to(w.dtype)
    return masks


def iter_level_masks(model: nn.Module, sparsity: float) -> Masks:
    """`iter_pruning`: one round of WeMem's LotteryTicketPruner, op_types 'default' (stem, shortcuts, classifier)."""
    return _iterative_level_masks(_layers(model, LEVEL_OP_TYPES), sparsity)


def iter_hidden_masks(model: nn.Module, sparsity: float) -> Masks:
    """`iter_prunetxt`: one round on fc1 and fc2 only (WeMem's op_names for ColumnFC); the output layer stays dense."""
    return _iterative_level_masks(_hidden_linears(model), sparsity)


@dataclass(frozen=True)
class Pruner:
    """A pruning approach: its mask rule (for an iterative approach: one round's), the layer types it touches
    (also the denominator of the measured `pruned_layers` sparsity), how to name them in an error message,
    and whether prune.py runs it one-shot or in WeMem's rounds."""

    name: str
    compute: Callable[[nn.Module, float], Masks]
    op_types: frozenset[str]
    what: str
    iterative: bool = False
    select: Callable[[nn.Module], list[tuple[str, nn.Module]]] | None = None  # default: layers of op_types
    hint: str = _FC_HINT  # what to use instead when a model has none of its targets
    # False for an approach that removes channels by masking BatchNorm (slim): it zeroes no Conv/Linear weight,
    # so its `overall` sparsity is the share of channels it removed (else it would read 0).
    removes_weights: bool = True

    def targets(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        return self.select(model) if self.select else _layers(model, self.op_types)


PRUNERS: Registry[Pruner] = Registry("pruner")
register_pruner = PRUNERS.register

register_pruner(Pruner("l1unstructure", level_masks, LEVEL_OP_TYPES, "Conv/Linear/Embedding weights"))
register_pruner(Pruner("l1structure", l1_filter_masks, FILTER_OP_TYPES, "Conv2d filters"))
register_pruner(Pruner("l2structure", l2_filter_masks, FILTER_OP_TYPES, "Conv2d filters"))
register_pruner(Pruner("slim", slim_masks, SLIM_OP_TYPES, "BatchNorm2d channels", removes_weights=False))
register_pruner(Pruner("iter_pruning", iter_level_masks, LEVEL_OP_TYPES, "Conv/Linear/Embedding weights",
                       iterative=True))
register_pruner(Pruner("iter_prunetxt", iter_hidden_masks, frozenset({"Linear"}),
                       "hidden Linear layers (all but the output layer)", iterative=True, select=_hidden_linears,
                       hint="use iter_pruning for CNNs"))


def one_shot_names() -> tuple[str, ...]:
    return tuple(p.name for p in PRUNERS if not p.iterative)


def iterative_names() -> tuple[str, ...]:
    return tuple(p.name for p in PRUNERS if p.iterative)


# ------------------------------------------------------------------------------------------- validation
def validate_pruner_name(name: str) -> str:
    """The name itself, or UserError listing the valid names."""
    return PRUNERS.get(name).name


def validate_sparsity(sparsity: float) -> float:
    """Sparsity as a float in [0, 1), or UserError. 0 prunes nothing; 1 would delete every target."""
    ok = isinstance(sparsity, numbers.Real) and not isinstance(sparsity, bool) and math.isfinite(sparsity)
    if not ok or not 0 <= sparsity < 1:
        raise UserError(f"prune sparsity must be a number in [0, 1), got {sparsity!r}",
                        "e.g. --prune_sparsity 0.7 prunes 70% of the targeted weights")
    return float(sparsity)


def require_targets(model: nn.Module, pruner_name: str, model_name: str | None) -> None:
    """UserError when the model has nothing this approach prunes (e.g. l1structure on the columnfc MLP)."""
    entry = PRUNERS.get(pruner_name)
    if not entry.targets(model):
        shown = model_name or type(model).__name__
        raise UserError(f"{pruner_name} prunes {entry.what} but model {shown} has none", entry.hint)


# ------------------------------------------------------------------------------------------- public API
def compute_masks(model: nn.Module, pruner_name: str, sparsity: float, *,
                  model_name: str | None = None) -> Masks:
    """Masks of `pruner_name` at `sparsity` from the model's current (pretrained) weights; model unchanged.

    For an iterative approach these are one round's masks from the weights entering the round (current
    masks tightened to layer sparsity `sparsity`); apply them with update_masks.

    Every layer the approach targets gets a mask (all ones where nothing is pruned), like nni's wrappers.
    `model_name` (e.g. the config's "columnfc") only makes error messages readable.
    """
    validate_pruner_name(pruner_name)
    sparsity = validate_sparsity(sparsity)
    require_targets(model, pruner_name, model_name)
    with torch.no_grad():
        return PRUNERS.get(pruner_name).compute(model, sparsity)


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Attach fixed masks with torch.nn.utils.prune.custom_from_mask, in place.

    Afterwards `module.weight` is recomputed as weight_orig * weight_mask before each forward, the gradient
    of weight_orig is zero at masked positions, and weight_orig itself is zeroed there now, so that with a
    zero gradient Adam/SGD (with or without weight decay) leave it at exactly 0 too.

    Create the optimizer AFTER this call. The Parameter objects are kept (re-registered as `weight_orig`),
    but their order in model.parameters() and all state_dict names change, so an optimizer, or optimizer
    state, from before pruning no longer lines up; the artifact also starts fine-tuning with a fresh Adam.

    copy.deepcopy(model) works after this call and after forwards run under torch.no_grad(), but not right
    after a forward with grad enabled (torch.nn.utils.prune keeps a non-leaf `module.weight`): to snapshot a
    model during training, deepcopy its state_dict (which holds weight_orig / weight_mask) instead.

    Raises KeyError for a key naming no parameter and RuntimeError for a shape mismatch or a tensor that is
    already masked (the exception types load_state_dict uses, so callers treat both alike).
    """
    for key, mask in masks.items():
        module_name, tensor_name = _split_key(key)
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            raise KeyError(f"mask {key}: the model has no module '{module_name}'") from None
        if _pruning_hook(module, tensor_name) is not None:
            raise RuntimeError(f"mask {key}: this tensor is already masked")
        param = module._parameters.get(tensor_name)
        if param is None:
            raise KeyError(f"mask {key}: the model has no parameter '{key}'")
        if mask.shape != param.shape:
            raise RuntimeError(f"mask {key}: shape {tuple(mask.shape)} does not match {tuple(param.shape)}")
        mask = mask.to(device=param.device, dtype=param.dtype)
        with torch.no_grad():
            param.masked_fill_(mask == 0, 0.0)
        prune.custom_from_mask(module, tensor_name, mask)
        # torch sets module.<name> to orig * mask with grad history, a non-leaf tensor that copy.deepcopy
        # refuses; the pre-hook recomputes it before every forward anyway, so a detached value is safe here.
        setattr(module, tensor_name, getattr(module, tensor_name).detach())


def prune_model(model: nn.Module, pruner_name: str, sparsity: float, *,
                model_name: str | None = None) -> Masks:
    """compute_masks then apply_masks; returns the masks. Build the optimizer after this call."""
    masks = compute_masks(model, pruner_name, sparsity, model_name=model_name)
    apply_masks(model, masks)
    return masks


def bake(model: nn.Module) -> tuple[dict[str, Tensor], Masks]:
    """(plain state_dict, masks) of a masked model, for saving; the model and its training are untouched.

    The state_dict has the plain parameter names (`conv.weight`, no `_orig` / `_mask` keys) and exact zeros
    (+0.0) at masked positions, like nni 2.2's export_model; it holds copies, so later training of the model
    does not change it. Masks are keyed like compute_masks'. A model without masks gives an empty dict.
    """
    renames: dict[str, str] = {}  # state_dict key of <name>_orig -> plain key
    for module_name, _, tensor_name in _masked_tensors(model):
        renames[_key(module_name, tensor_name + "_orig")] = _key(module_name, tensor_name)
    state = model.state_dict()
    plain: dict[str, Tensor] = {}
    masks: Masks = {}
    mask_keys = {key[: -len("_orig")] + "_mask" for key in renames}
    for key, value in state.items():
        if key in renames:
            mask = state[key[: -len("_orig")] + "_mask"]
            plain[renames[key]] = value.masked_fill(mask == 0, 0.0)
            masks[renames[key]] = mask.clone()
        elif key not in mask_keys:
            plain[key] = value.clone()
    return plain, masks


def load_pruned(model: nn.Module, state_dict: dict[str, Tensor], masks: Masks) -> nn.Module:
    """Load a baked state_dict into a freshly built model and re-attach its masks; returns the model.

    Further training keeps the zeros (see apply_masks; build the optimizer after this call). Raises
    RuntimeError / KeyError, like load_state_dict, when the checkpoint does not fit the model.
    """
    if any(True for _ in _masked_tensors(model)):
        raise RuntimeError("load_pruned needs a freshly built model, this one is already masked")
    model.load_state_dict(state_dict)
    apply_masks(model, masks)
    return model


def _zero_fraction(counts: list[tuple[int, int]]) -> float:
    """counts: (zeros, numel) per tensor."""
    total = sum(n for _, n in counts)
    return sum(z for z, _ in counts) / total if total else 0.0


def measure_sparsity(model: nn.Module, pruner_name: str, *, model_name: str | None = None) -> dict[str, float]:
    """Fraction of exactly-zero weights, for masked and baked models alike.

    - `overall`: over the weights of every layer type any approach can prune weights of, i.e. all
      LEVEL_OP_TYPES (every Conv/ConvTranspose, Linear incl. the classifier, Bilinear, PReLU, Embedding);
      BatchNorm and biases are not counted. Independent of the approach, so comparable across approaches.
    - `pruned_layers`: over the tensors the approach prunes: those same weights for l1unstructure, Conv2d
      weights only for l1structure / l2structure (the paper's footnote 4), BatchNorm2d gammas for slim,
      fc1 + fc2 for iter_prunetxt.

    A pruner that removes channels rather than weights (`slim`, `removes_weights=False`) leaves every
    Conv/Linear weight in place, so for it `overall` is the share of BatchNorm2d channels removed, the same
    as `pruned_layers` (the weight share would read 0 for any sparsity).
    """
    validate_pruner_name(pruner_name)
    require_targets(model, pruner_name, model_name)
    op_types = PRUNERS.get(pruner_name).op_types
    counts: dict[str, tuple[int, int]] = {}  # module name -> (zeros, numel) of its weight, each counted once
    for name, module in _layers(model, LEVEL_OP_TYPES | op_types):
        weight = _current(module, "weight")
        counts[name] = (int((weight == 0).sum()), weight.numel())
    overall = [counts[name] for name, _ in _layers(model, LEVEL_OP_TYPES)]
    targeted = [counts[name] for name, _ in PRUNERS.get(pruner_name).targets(model)]
    removed = _zero_fraction(targeted)
    return {"overall": _zero_fraction(overall) if PRUNERS.get(pruner_name).removes_weights else removed,
            "pruned_layers": removed}


def update_masks(model: nn.Module, masks: Masks) -> None:
    """Tighten the masks of an iterative round in place; tensors not masked yet get apply_masks.

    The mask buffers are overwritten in place and weight_orig is zeroed where a weight newly goes, so the
    Parameter objects, and an optimizer holding them with its Adam moments, carry on unchanged (nni 2.3 kept
    the optimizer across rounds too). A mask may only shrink: RuntimeError if it would revive a weight.
    """
    fresh: Masks = {}
    for key, mask in masks.items():
        module_name, tensor_name = _split_key(key)
        module = model.get_submodule(module_name)
        if _pruning_hook(module, tensor_name) is None:
            fresh[key] = mask
            continue
        old = getattr(module, tensor_name + "_mask")
        mask = mask.to(device=old.device, dtype=old.dtype)
        if mask.shape != old.shape:
            raise RuntimeError(f"mask {key}: shape {tuple(mask.shape)} does not match {tuple(old.shape)}")
        if bool(((mask != 0) & (old == 0)).any()):
            raise RuntimeError(f"mask {key}: a pruned weight would come back")
        with torch.no_grad():
            old.copy_(mask)
            getattr(module, tensor_name + "_orig").masked_fill_(mask == 0, 0.0)
            setattr(module, tensor_name, getattr(module, tensor_name + "_orig") * mask)
    apply_masks(model, fresh)


# ------------------------------------------------------------------------------------- iterative rounds
def iterative_schedule(sparsity: float, rounds: int) -> list[float]:
    """Per-round layer sparsity 1-(1-s)^(k/(R-1)), k = 0..R-1 (nni 2.3 `_calc_sparsity`); round 0 is dense.

    R = 1 is a single dense round (nni would divide by zero; WeMem requires prune_iter >= 2 in effect).
    """
    sparsity = validate_sparsity(sparsity)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 2:
        raise UserError(f"--prune_iter must be an integer >= 2, got {rounds!r}",
                        "round 0 is dense fine-tuning, the last round reaches the target sparsity")
    return [1 - (1 - sparsity) ** (k / (rounds - 1)) for k in range(rounds)]


@dataclass
class RoundLog:
    """One iterative round: its target layer sparsity, what was measured, and how its fine-tuning went."""

    round: int
    target: float
    sparsity: dict[str, float]
    best_epoch: int
    epochs_run: int
    dev_acc: float
    test_acc: float
    seconds: float

    def line(self) -> str:
        return (f"iter {self.round}: target layer sparsity {self.target:.4f}, measured "
                f"{self.sparsity['pruned_layers']:.4f} of pruned layers ({self.sparsity['overall']:.4f} of all "
                f"weights); best model: dev {self.dev_acc:.3f} test {self.test_acc:.3f} at epoch {self.best_epoch} "
                f"of {self.epochs_run}, {self.seconds:.1f} s")


def iterative_prune(model: nn.Module, data: SplitTensors, train_cfg: TrainConfig, rounds: int, sparsity: float,
                    pruner_name: str, hooks_factory: Callable[[], TrainHooks], generator: torch.Generator, *,
                    model_name: str | None = None, label: str = "") -> tuple[FitResult, list[RoundLog]]:
    """WeMem's iterative pruning (docs/wemem.md) on training.fit; returns (last round's result, per-round log).

    - `hooks_factory()` is called ONCE: one hooks object (a defense) serves every round, so its state
      (RMR's second Adam, a DP ledger) carries over like the optimizer; fit calls its setup per round.
    - One optimizer from `hooks.make_optimizer`, built after round 0's all-ones masks, passes through all rounds
      with its state (WeMem kept its Adam).
    - Each round: tighten the masks from the weights entering the round, then fit `train_cfg.epochs` epochs
      with its own early stopping (best dev accuracy reset to 0). Rounds before the last leave the model
      at their LAST epoch's weights (the next round starts there); the last round restores its best-dev epoch,
      the released model. The returned FitResult is the last round's; `seconds` of all rounds are summed
      into `extras["rounds_seconds"]` (WeMem's defense time: the whole round loop, preparation excluded).
    """
    entry = PRUNERS.get(pruner_name)
    if not entry.iterative:
        raise UserError(f"iterative pruning needs one of {', '.join(iterative_names())}, got '{pruner_name}'")
    schedule = iterative_schedule(sparsity, rounds)
    require_targets(model, pruner_name, model_name)
    hooks = hooks_factory()
    optimizer: torch.optim.Optimizer | None = None
    logs: list[RoundLog] = []
    result: FitResult | None = None
    for k, target in enumerate(schedule):
        with torch.no_grad():
            update_masks(model, entry.compute(model, target))
        if optimizer is None:
            optimizer = hooks.make_optimizer(model, train_cfg)
        last = k == len(schedule) - 1
        result = fit(model, data, train_cfg, hooks=hooks, generator=generator, label=f"{label}Iter {k} ",
                     desc=f"round {k}", optimizer=optimizer, restore_best=last)
        logs.append(RoundLog(k, target, measure_sparsity(model, pruner_name, model_name=model_name),
                             result.best_epoch, result.epochs_run, result.dev_acc, result.test_acc, result.seconds))
        log.info(f"{label}{logs[-1].line()}")
    assert result is not None  # schedule has >= 2 rounds
    result.extras = dict(result.extras) | {"rounds_seconds": sum(r.seconds for r in logs), "schedule": schedule}
    return result, logs
