"""The searchable network of eq. (2): P computational cells (nodes) in a DAG with weights over edges and ops.

f_0 is the stem's output; node p (1..P) reads sum_{j<p} softmax(beta_p)_j f_j and applies a MixedOp whose
weights are softmax(alpha_p). alpha (P x |ops|) and beta (P x P, the lower triangle used: the paper's
alpha in R^{P x P / 2} over connections) form the architecture; everything else is theta. The classifier
pools f_P globally, so one network takes 8x8 digits and 28x28 / 32x32 images (stem_stride 2 halves those).
`Genotype` is the derived discrete architecture and `DiscreteNet` the network it denotes.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core import provenance
from core.config_schema import items, key, read_json_object
from core.errors import UserError
from core.storage import atomic_write
from nas.ops import ACTIVATIONS, PRIMITIVES, MixedOp, make_activation, make_op

MAX_CELLS = 256  # the paper's largest network (Table 3)


@dataclass(frozen=True)
class SpaceConfig:
    """The search space: P cells of C channels, one activation, the candidate operations (the config's
    `space` object; `nas.config.load` parses it by these fields' rules)."""

    P: int = key(4, help="cells (nodes) of the network", kind=int, minimum=1, maximum=MAX_CELLS)
    C: int = key(8, help="channels of every cell", kind=int, minimum=1, maximum=4096)
    activation: str = key("elu", help="the cells' activation", kind=str, choices=tuple(ACTIVATIONS))
    primitives: tuple[str, ...] = key(PRIMITIVES, help="candidate operations (Appendix A's eight)", kind=list,
                                      item=items(str, choices=PRIMITIVES))
    stem_stride: int = key(1, help="stride of the stem convolution (2 halves 28x28 / 32x32 inputs)", kind=int,
                           minimum=1, maximum=2)
    batchnorm: bool = key(True, help="BatchNorm (without affine parameters) after convolutions and pools",
                          kind=bool)

    def check(self, where: str) -> None:
        """What the field rules cannot say: operations named once, at least one that is not 'none'."""
        if len(set(self.primitives)) != len(self.primitives):
            raise UserError(f"{where}: 'space.primitives' names an operation twice", "name each operation once")
        if not set(self.primitives) - {"none"}:
            raise UserError(f"{where}: 'space.primitives' holds only 'none'", "name at least one real operation")

    def derivable_ops(self) -> tuple[str, ...]:
        """The operations a derived genotype may hold: 'none' is never chosen while another one exists."""
        return tuple(p for p in self.primitives if p != "none") or self.primitives

    def genotype_bits(self, max_inputs: int = 2) -> float:
        """log2 of the number of genotypes `derive_genotype` can return in this space: each node's operation
        among the derivable ones, and its `max_inputs` strongest predecessors among f_0..f_p. The most
        information an architecture found by a search can carry about its data (AMIA's cap)."""
        ops = len(self.derivable_ops())
        return self.P * math.log2(ops) + sum(math.log2(math.comb(p + 1, min(max_inputs, p + 1)))
                                             for p in range(self.P))


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

    def content_hash(self) -> str:
        """16 hex digits of the architecture's canonical JSON: its search's record names it, so an edit shows."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def checked(cls, d: object, space: SpaceConfig, max_inputs: int = 2) -> Genotype:
        """The genotype a JSON object describes, if it is one `derive_genotype` can return in `space`: the space's
        P, C, activation, stem stride and BatchNorm; one derivable operation per node; node p reading
        min(max_inputs, p + 1) distinct predecessors among f_0..f_p, ascending. ValueError saying what is off."""
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        for name in ("P", "C", "activation", "stem_stride", "batchnorm"):
            if name not in d or type(d[name]) is not type(getattr(space, name)) or d[name] != getattr(space, name):
                raise ValueError(f"{name} {d.get(name)!r} where the space has {getattr(space, name)!r}")
        ops, inputs = d.get("ops"), d.get("inputs")
        if not isinstance(ops, list) or len(ops) != space.P or any(op not in space.derivable_ops() for op in ops):
            raise ValueError(f"ops must list one of {', '.join(space.derivable_ops())} for each of the {space.P} "
                             "nodes")
        if not isinstance(inputs, list) or len(inputs) != space.P:
            raise ValueError(f"inputs must list the predecessors of each of the {space.P} nodes")
        for p, reads in enumerate(inputs):
            wanted = min(max_inputs, p + 1)
            if not (isinstance(reads, list) and len(reads) == wanted and all(type(j) is int for j in reads)
                    and reads == sorted(set(reads)) and all(0 <= j <= p for j in reads)):
                raise ValueError(f"node {p} must read {wanted} distinct predecessors among 0..{p}, ascending; "
                                 f"it has {reads!r}")
        return cls(P=space.P, C=space.C, activation=space.activation, ops=tuple(ops),
                   inputs=tuple(tuple(r) for r in inputs), stem_stride=space.stem_stride, batchnorm=space.batchnorm)


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


def save_genotype(g: Genotype, path: Path, record: dict) -> None:
    """The architecture as JSON with the provenance record of the search that found it (its settings, split
    and model_id) and the architecture's own hash in it (`Genotype.content_hash`)."""
    data = g.to_json() | {RECORD: record | {"genotype": g.content_hash()}}
    atomic_write(path, lambda f: json.dump(data, f, indent=1), mode="w")


RECORD = "provenance"


def load_genotype(path: Path, space: SpaceConfig, make_hint: str,
                  expected: provenance.Expected | None = None) -> tuple[Genotype, dict]:
    """(architecture, its search's record) at `path`. Refused with one line: a file that is no genotype of
    `space` (a truncated ops list, an input index out of range, other channels), one edited after its
    search (its hash differs from the record's), and, given `expected` (the settings and split of the search
    this run would make), one found under other settings or rows, or saved before records existed."""
    if not path.is_file():
        raise UserError(f"architecture {path} not found", f"make it with: {make_hint}")
    remedy = f"search again: {make_hint} --overwrite"
    data = read_json_object(path)
    record = data.get(RECORD) if isinstance(data, dict) else None
    if expected is not None:  # the settings first: a search made otherwise says which setting differs
        provenance.verify(str(path), record, expected, remedy, made="searched")
    try:
        genotype = Genotype.checked(data, space)
    except ValueError as e:
        raise UserError(f"architecture {path} is not a genotype of this search space ({e})", remedy) from None
    if expected is not None:
        assert isinstance(record, dict)  # verify refused anything else
        if record.get("genotype") != genotype.content_hash():
            raise UserError(f"architecture {path} was edited after its search (it no longer matches its record)",
                            remedy)
    return genotype, record if isinstance(record, dict) else {}


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
