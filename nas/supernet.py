"""The searchable network of eq. (2): P computational cells (nodes) in a DAG with weights over edges and ops.

f_0 is the stem's output; node p (1..P) reads sum_{j<p} softmax(beta_p)_j f_j and applies a MixedOp whose
weights are softmax(alpha_p). alpha (P x |ops|) and beta (P x P, the lower triangle used: the paper's
alpha in R^{P x P / 2} over connections) form the architecture; everything else is theta. The classifier
pools f_P globally, so one network takes 8x8 digits and 28x28 / 32x32 images (stem_stride 2 halves those).
`Genotype` is the derived discrete architecture and `DiscreteNet` the network it denotes.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core import provenance
from core.errors import UserError
from core.storage import atomic_write
from core.version import code_version
from nas.ops import PRIMITIVES, MixedOp, make_activation, make_op


@dataclass(frozen=True)
class SpaceConfig:
    """The search space: P cells of C channels, one activation, the candidate operations."""

    P: int = 4
    C: int = 8
    activation: str = "elu"
    primitives: tuple[str, ...] = PRIMITIVES
    stem_stride: int = 1
    batchnorm: bool = True


class Stem(nn.Sequential):
    def __init__(self, in_ch: int, space: SpaceConfig) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_ch, space.C, 3, space.stem_stride, 1)]
        super().__init__(*layers, *([nn.BatchNorm2d(space.C)] if space.batchnorm else []))


class Head(nn.Module):
    """activation, global average pool, linear classifier."""

    def __init__(self, space: SpaceConfig, num_cls: int) -> None:
        super().__init__()
        self.act = make_activation(space.activation)
        self.fc = nn.Linear(space.C, num_cls)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(f).mean(dim=(2, 3)))


class SuperNet(nn.Module):
    def __init__(self, space: SpaceConfig, in_ch: int, num_cls: int) -> None:
        super().__init__()
        if space.P < 1:
            raise UserError(f"P must be >= 1, got {space.P}")
        self.space = space
        self.stem = Stem(in_ch, space)
        self.cells = nn.ModuleList(MixedOp(space.C, space.primitives, space.activation, space.batchnorm)
                                   for _ in range(space.P))
        self.head = Head(space, num_cls)
        self.alpha = nn.Parameter(1e-3 * torch.randn(space.P, len(space.primitives)))  # DARTS' init scale
        self.beta = nn.Parameter(1e-3 * torch.randn(space.P, space.P))
        # Node p (0-based) reads f_0..f_p: entries j > p of beta's row p are masked out of the softmax.
        self.register_buffer("edge_mask", torch.ones(space.P, space.P).tril().bool(), persistent=False)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha, self.beta]

    def weights(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n not in ("alpha", "beta")]

    def edge_weights(self) -> torch.Tensor:
        return F.softmax(self.beta.masked_fill(~self.edge_mask, float("-inf")), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op_w, edge_w = F.softmax(self.alpha, dim=1), self.edge_weights()
        states = [self.stem(x)]
        for p, cell in enumerate(self.cells):
            mixed = sum(edge_w[p, j] * states[j] for j in range(p + 1))
            states.append(cell(mixed, op_w[p]))
        return self.head(states[-1])


def uniform_weights_(model: nn.Module, bound: float, generator: torch.Generator) -> None:
    """theta ~ U(-bound, bound) for every weight (Appendix A: the attacker's stand-in weights)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in ("alpha", "beta"):
                p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)


# ---------------------------------------------------------------------------------------------- genotype

@dataclass(frozen=True)
class Genotype:
    """The discrete architecture: per node its operation and the predecessors it reads (indices into f_0..)."""

    P: int
    C: int
    activation: str
    ops: tuple[str, ...]
    inputs: tuple[tuple[int, ...], ...]
    stem_stride: int = 1
    batchnorm: bool = True

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Genotype:
        return cls(P=d["P"], C=d["C"], activation=d["activation"], ops=tuple(d["ops"]),
                   inputs=tuple(tuple(i) for i in d["inputs"]), stem_stride=d["stem_stride"],
                   batchnorm=d["batchnorm"])


def derive_genotype(net: SuperNet, max_inputs: int = 2) -> Genotype:
    """DARTS' rule: the strongest non-zero operation per node, and its `max_inputs` strongest edges."""
    space, prims = net.space, net.space.primitives
    alpha = net.alpha.detach().clone()
    if "none" in prims and len(prims) > 1:
        alpha[:, prims.index("none")] = float("-inf")
    edges = net.edge_weights().detach()
    ops = tuple(prims[int(i)] for i in alpha.argmax(1))
    inputs = tuple(tuple(sorted(int(j) for j in edges[p, :p + 1].topk(min(max_inputs, p + 1)).indices))
                   for p in range(space.P))
    return Genotype(space.P, space.C, space.activation, ops, inputs, space.stem_stride, space.batchnorm)


def save_genotype(g: Genotype, path: Path, fingerprint: str | None = None) -> None:
    """The architecture as JSON, with the fingerprint of the search settings that found it (when given) and the
    code that found it."""
    data = g.to_json() | ({"fingerprint": fingerprint} if fingerprint is not None else {}) | {"code": code_version()}
    atomic_write(path, lambda f: json.dump(data, f, indent=1), mode="w")


def load_genotype(path: Path, make_hint: str, fingerprint: str | None = None) -> Genotype:
    """The architecture at `path`; with `fingerprint` (nas_privacy.Run.fingerprint, JSON of the settings that
    shape the search), one found under other settings, or saved before fingerprints were, is refused naming
    the first setting that differs, not silently reused."""
    if not path.is_file():
        raise UserError(f"architecture {path} not found", f"make it with: {make_hint}")
    try:
        data = json.loads(path.read_text())
        genotype = Genotype.from_json(data)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"architecture {path} is unreadable ({type(e).__name__})", f"rerun: {make_hint}") from None
    if fingerprint is not None and data.get("fingerprint") != fingerprint:
        remedy = f"search again: {make_hint} --overwrite"
        if not isinstance(data.get("fingerprint"), str):
            raise UserError(f"architecture {path} predates settings records", remedy)
        key, old, new = provenance.first_difference(json.loads(data["fingerprint"]), json.loads(fingerprint)) or \
            ("settings", "", "")
        raise UserError(f"architecture {path} was searched with {key} {provenance.shown(old)}, this run asks for "
                        f"{provenance.shown(new)}", remedy)
    if fingerprint is not None:
        provenance.REUSE.reused(str(path), data, f"search again: {make_hint} --overwrite")
    return genotype


class DiscreteNet(nn.Module):
    """The network a genotype denotes: node p = op_p(mean of its inputs), trained from scratch."""

    def __init__(self, g: Genotype, in_ch: int, num_cls: int) -> None:
        super().__init__()
        space = SpaceConfig(P=g.P, C=g.C, activation=g.activation, stem_stride=g.stem_stride, batchnorm=g.batchnorm)
        self.genotype = g
        self.stem = Stem(in_ch, space)
        self.cells = nn.ModuleList(make_op(op, g.C, g.activation, g.batchnorm) for op in g.ops)
        self.head = Head(space, num_cls)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [self.stem(x)]
        for cell, inputs in zip(self.cells, self.genotype.inputs):
            states.append(cell(sum(states[j] for j in inputs) / len(inputs)))
        return self.head(states[-1])
