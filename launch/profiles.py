"""The experiment grid of run_all.sh: which commands each profile runs (QUICK, PAPER), as data.

Each `GridBlock` line below is one (config, settings) block; it expands into the commands of the steps.
Adding a setting is editing one line of QUICK or PAPER. The sweeps are data (names of registry entries);
`check_names` verifies them against the registries before anything runs. launch.tasks turns the commands
into a task graph (each task after the tasks whose outputs it reads) that the local, Ray or Slurm launcher
runs; grid.py is the step that does so (README "Running the grid on a cluster").
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from core.setting import ModelSetting
from launch.tasks import Task, build_tasks

ALL_PRUNERS = ("l1unstructure", "l1structure", "l2structure", "slim")  # the paper's four approaches
PAPER_SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9)
DEFENSE_SPARSITY = 0.6  # the paper's main defense figures (§6.3.2)
PAPER_DEFENSES = {"ppb": (1, 2, 4, 8, 16), "adv": (0.5, 1, 2, 4, 8, 16), "dp": (0.01, 0.1, 1, 10, 100),
                  "dpsgd": (0.5, 1, 2), "relaxloss": (0.5, 1, 2)}
QUICK_DEFENSES = {"ppb": (4,), "adv": (4,), "dp": (0.1,), "dpsgd": (1,), "relaxloss": (1,)}  # one point each


Options = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class WeMemStudy:
    """WeMem's grid on one config (its run_shell.sh / run_custom.sh): mem-scores once, iterative
    pruning at `sparsity` without a defense and with each WeMem defense (name, hyper-parameters), attacked
    with shadows pruned and defended the same way (`--adaptive`, as WeMem's scripts do)."""

    pruner: str                                    # iter_pruning (CNNs) | iter_prunetxt (columnfc)
    defenses: tuple[tuple[str, Options], ...] = ()
    sparsity: float = 0.6
    flags: str = ""                                # e.g. --prune_iter 3 (the config's prune_iter otherwise)
    memscore_flags: str = ""                       # e.g. --models 8 --memscore_epochs 10
    attacks: str = "threshold,samia"

    def models(self) -> tuple[ModelSetting, list[ModelSetting]]:
        """The undefended iterative model and the defended ones."""
        return (ModelSetting(self.pruner, self.sparsity),
                [ModelSetting(self.pruner, self.sparsity, d, None, o) for d, o in self.defenses])

    def commands(self, step: Callable[[str, str], str]) -> tuple[list[str], list[str]]:
        """(training commands, attack commands), `step(script, extra)` adding the block's config and flags."""
        plain, defended = self.models()
        train = [step("memscore.py", self.memscore_flags)] if defended else []
        train += [step("prune.py", f"{m.flags()} {self.flags}".strip()) for m in [plain, *defended]]
        attacks = [step("mia.py", f"{plain.flags()} {self.flags} --attacks {self.attacks}".replace("  ", " "))]
        attacks += [step("mia.py", f"{m.flags()} {self.flags} --adaptive --attacks {self.attacks}".replace("  ", " "))
                    for m in defended]
        return train, attacks


@dataclass(frozen=True)
class GridBlock:
    """One config's block of the grid: which approaches, sparsities, defenses and extra studies to run."""

    config: str
    pruners: tuple[str, ...] = ("l1unstructure",)
    sparsities: tuple[float, ...] = PAPER_SPARSITIES
    defenses: dict[str, tuple[float, ...]] = field(default_factory=dict)
    defense_pruners: tuple[str, ...] = ("l1unstructure",)
    unknown: int = 0               # Table 1: draws of a (victim, shadow) setting pair, independent, with replacement
    sparsity_matrix: tuple[float, ...] = ()  # Figs 12-13: victim x shadow sparsity (0 = unpruned), same approach
    matrix_pruners: tuple[str, ...] = ("l1unstructure",)  # the approaches of the matrix
    matrix_attacks: str | None = None  # attacks of the matrix runs (None: study_attacks)
    flags: str = ""                # extra flags for every step (the quick profile's reductions)
    study_attacks: str = "all"     # attacks of the defense and unknown-setting runs
    refs: bool = False             # refs.py for the original and the settings below (LiRA / RMIA online)
    ref_sparsities: tuple[float, ...] | None = None  # plain settings that get references (None: every one,
    #                                                  defended ones included)
    wemem: WeMemStudy | None = None  # WeMem's iterative pruning and defenses (NDSS '25)

    def commands(self) -> list[str]:
        """The steps in dependency order: pretrain, plain prunes, defended prunes, then the attacks."""
        cfg = f"config/{self.config}.json"

        def step(script: str, extra: str = "") -> str:
            return " ".join(p for p in (f"python {script} {cfg}", extra, self.flags) if p)
        plain = [ModelSetting(p, s) for p in self.pruners for s in self.sparsities]
        plain += [m for m in self.matrix_models() if m not in plain]  # the matrix's own sparsities
        defended = [ModelSetting(p, DEFENSE_SPARSITY, d, a) for p in self.defense_pruners
                    for d, args in self.defenses.items() for a in args]
        cmds = [step("pretrain.py")]
        cmds += [step("prune.py", m.flags()) for m in plain + defended]
        cmds += [step("refs.py", m.flags() or "--original") for m in self.ref_settings(plain, defended)]
        cmds.append(step("mia.py", "--original --attacks all"))
        cmds += [step("mia.py", f"{m.flags()} --attacks all") for m in plain]
        for m in defended:
            for adaptive in ("", " --adaptive"):
                cmds.append(step("mia.py", f"{m.flags()}{adaptive} --attacks {self.study_attacks}"))
        pairs = [*self.table1_draws(), *self.matrix_pairs()]
        unknown = [step("mia.py", unknown_flags(v, s, a)) for v, s, a in pairs if v != s]
        cmds += list(dict.fromkeys(unknown))  # a pair drawn twice, or in both studies, is attacked once
        if self.wemem is not None:  # its training steps before the block's attacks, in the same chain
            train, attacks = self.wemem.commands(step)
            first_attack = next(i for i, c in enumerate(cmds) if c.startswith("python mia.py"))
            cmds[first_attack:first_attack] = train
            cmds += attacks
        return cmds

    def table1_draws(self) -> list[tuple[ModelSetting, ModelSetting, str]]:
        """Table 1's `unknown` experiments (victim, shadows, attacks): "we randomly select the sparsity levels and
        pruning approaches for target models and shadow models, respectively" (paper §5.2.5), so each draw picks
        the victim's and the shadows' setting independently, uniformly, with replacement among the block's
        pruned settings. A draw may repeat an earlier one or give the shadows the victim's own setting (chance
        1 / settings): that draw is the known-setting attack, loss 0, as in the paper's average; it needs no
        command of its own. Seeded by the config name: the same draws on every run."""
        plain = [ModelSetting(p, s) for p in self.pruners for s in self.sparsities]
        rng = random.Random(self.config)
        return [(rng.choice(plain), rng.choice(plain), self.study_attacks) for _ in range(self.unknown)]

    def matrix_models(self) -> list[ModelSetting]:
        """The pruned models the sparsity matrix needs (its non-zero sparsities, for each of its approaches)."""
        return [ModelSetting(p, s) for p in self.matrix_pruners for s in self.sparsity_matrix if s != 0]

    def matrix_pairs(self) -> list[tuple[ModelSetting, ModelSetting, str]]:
        """Figs 12-13: every (victim sparsity, shadow sparsity) of `sparsity_matrix` per approach; sparsity 0 is
        the original model. The diagonal is the known-setting runs the block makes anyway."""
        attacks = self.matrix_attacks or self.study_attacks

        def model(pruner: str, s: float) -> ModelSetting:
            return ModelSetting(pruner, s) if s != 0 else ModelSetting.original()
        return [(model(p, v), model(p, s), attacks) for p in self.matrix_pruners
                for v in self.sparsity_matrix for s in self.sparsity_matrix]

    def ref_settings(self, plain: list[ModelSetting], defended: list[ModelSetting]) -> list[ModelSetting]:
        """The settings whose reference models the block trains (the original first: the others start from it)."""
        if not self.refs:
            return []
        if self.ref_sparsities is None:
            return [ModelSetting.original(), *plain, *defended]
        return [ModelSetting.original(), *(m for m in plain if m.sparsity in self.ref_sparsities)]

    def names(self) -> tuple[set[str], set[str], set[str]]:
        """(pruners, defenses, attacks) this block names, for `check_names`."""
        attacks = {a for a in self.study_attacks.split(",") if a != "all"}
        attacks |= {a for a in (self.matrix_attacks or "").split(",") if a and a != "all"}
        pruners, defenses = set(self.pruners) | set(self.defense_pruners) | set(self.matrix_pruners), set(self.defenses)
        if self.wemem is not None:
            pruners.add(self.wemem.pruner)
            defenses |= {d for d, _ in self.wemem.defenses}
            attacks |= {a for a in self.wemem.attacks.split(",") if a != "all"}
        return pruners, defenses, attacks

    def check(self) -> None:
        """Every pruner, defense and attack this block names exists in its registry."""
        from attackers import ATTACKS  # the registries import torch; grid.py's --help should not wait for it
        from defenses import DEFENSES
        from pruner import PRUNERS

        for registry, names in zip((PRUNERS, DEFENSES, ATTACKS), self.names()):
            for name in sorted(names):
                registry.get(name)


def unknown_flags(victim: ModelSetting, shadows: ModelSetting, attacks: str) -> str:
    """mia.py's flags attacking `victim` with `shadows` pruned otherwise (Table 1, Figs 12-13); an original on
    either side is sparsity 0 (--original for the victim, --shadow_prune_sparsity 0 for the shadows)."""
    if victim.is_original:
        return f"--original --shadow_pruner_name {shadows.pruner_name} --shadow_prune_sparsity {shadows.sparsity:g} " \
               f"--attacks {attacks}"
    if shadows.is_original:
        return f"{victim.flags()} --shadow_prune_sparsity 0 --attacks {attacks}"
    return f"{victim.flags()} --shadow_pruner_name {shadows.pruner_name} --shadow_prune_sparsity " \
           f"{shadows.sparsity:g} --attacks {attacks}"


@dataclass(frozen=True)
class NasBlock:
    """One config of nas_privacy.py (architecture-level privacy): the search, then AMIA and ADRA, which read
    the search's split and architecture; then per defense its own search (when the defense changes what the
    search sees) and AMIA. ADRA's arch-gradient noise is the config's adra.grad_noise list, not a flag."""

    config: str
    defenses: dict[str, tuple[float, ...]] = field(default_factory=dict)
    flags: str = ""

    def commands(self) -> list[str]:
        from nas.defenses import SEARCH_DEFENSES

        def step(sub: str, extra: str = "") -> str:
            return " ".join(p for p in (f"python nas_privacy.py {sub} config/{self.config}.json", extra, self.flags)
                            if p)
        cmds = [step("search"), step("amia"), step("adra")]
        for name, args in self.defenses.items():
            for arg in args:
                flag = f"--defense {name} --defense_arg {arg:g}"
                cmds += ([step("search", flag)] if name in SEARCH_DEFENSES else []) + [step("amia", flag)]
        return cmds

    def check(self) -> None:
        from nas.defenses import check_defense

        for name, args in self.defenses.items():
            for arg in args:
                check_defense(name, float(arg))


# The quick profile: 2-core CPU, embedded data, 15 minutes (README). Its reductions: 2 shadows (paper 5), 10
# attack epochs at the paper's SAMIA lr 0.01 (paper 100), digits_resnet18 at one sparsity, digits_columnfc at
# three (0.5, 0.7, 0.9) and one argument per defense (the artifact's default): with the reference, WeMem
# and NAS slices, five sparsities and two ppb / adv arguments ran 875 s + a 78 s report, over the 15
# minutes; and SAMIA + the threshold family only for the defense and unknown-setting runs.
# SAMIA dominates a CPU run (a transformer over C tokens per row), hence these cuts.
# LiRA / RMIA online on the synthetic config, original and l1unstructure 0.6, with 8 references (each
# columnfc reference trains in 1-2 s plus its fine-tuning: ~30 s per setting on an idle 2-core CPU; the other
# settings run the offline variants on the 2 shadows, and `--attacks all` skips the online ones there).
QUICK_FLAGS = "--shadow_num 2 --attack_epochs 10 --attack_lr 0.01"
QUICK_REF_MODELS = 8
# WeMem's slice: 8 mem-score models of 10 epochs, 3 rounds, WeMem's Location settings (the nearest tabular
# run of its scripts), one defense (slide_re, the cheapest: 43 s vs ml2's 108 s for its prune under load
# ~11) attacked adaptively: each samia,threshold attack took ~230 s wall at that load, so a second defense
# would cost ~6 min of the 15; the one-shot l1unstructure 0.6 of the block is the premise's comparison.
# K 8 leaves 66 % of the rows tied at one mem-score (raw 0: every model right, in or out), over which slide_re's
# window is the split's own order, i.e. the random ablation; more models barely help (60 % at K 16, 49 % at 64,
# 4.9 s per model at load ~7), so K stays 8 and the records carry the share (`mem_score_tie_share`) instead.
LOCATION_WINDOW = (("stride", 1), ("width", 15))
LOCATION_RMR = (("mem_thre", 0.6), ("weight_decay_mem", 0.1))
QUICK_WEMEM = WeMemStudy("iter_prunetxt", defenses=(("slide_re", LOCATION_WINDOW),),
                         flags="--prune_iter 3", memscore_flags="--models 8 --memscore_epochs 10",
                         attacks="samia,threshold")
# The sparsity matrix's slice (Figs 12-13): victim x shadow sparsity 0 / 0.6 with the threshold family only,
# two mia.py runs (the original victim with 0.6 shadows and back) of ~8-16 s each on a loaded 2-core CPU,
# where SAMIA would add ~20-60 s per run. Table 1: 3 independent draws over the block's two settings, of which
# the first two give the shadows the victim's own setting (the known attack, no run of its own) and the third
# is one unknown-sparsity run (0.6 victim, 0.9 shadows).
QUICK = [  # the longest chain first, so the two workers finish together
    GridBlock("synthetic_purchase_columnfc", sparsities=(0.6, 0.9), defenses=QUICK_DEFENSES, unknown=3,
              flags=f"{QUICK_FLAGS} --ref_models {QUICK_REF_MODELS}", study_attacks="samia,threshold",
              refs=True, ref_sparsities=(0.6,), wemem=QUICK_WEMEM, sparsity_matrix=(0, 0.6),
              matrix_attacks="threshold"),
    GridBlock("digits_resnet18", pruners=ALL_PRUNERS, sparsities=(0.7,), flags=QUICK_FLAGS + " --prune_epochs 4"),
    GridBlock("digits_columnfc", sparsities=(0.5, 0.7, 0.9), flags=QUICK_FLAGS),
]

# WeMem's run_shell.sh (Base, slide_re, ml2, slide_ml2; sparsity 0.6, prune_iter 5 from the configs) and
# run_custom.sh (ppb 4, adv 2, relaxloss 1, dp 0.1 under iterative pruning, adaptive); plus the
# one-shot l1unstructure 0.6 run of the premise (original vs one-shot vs iterative).
WEMEM_CUSTOM = {"ppb": (4,), "adv": (2,), "relaxloss": (1,), "dp": (0.1,)}
WEMEM_PAPER = [
    GridBlock("wemem_cifar10_resnet18", sparsities=(0.6,), defenses=WEMEM_CUSTOM, defense_pruners=("iter_pruning",),
              study_attacks="threshold,samia",
              wemem=WeMemStudy("iter_pruning", defenses=(
                  ("slide_re", (("stride", 50), ("width", 500))),
                  ("ml2", (("mem_thre", 0.5), ("weight_decay_mem", 0.1))),
                  ("slide_ml2", (("stride", 100), ("width", 500), ("mem_thre", 0.5), ("weight_decay_mem", 0.1)))))),
    GridBlock("wemem_location_columnfc", sparsities=(0.6,), defenses=WEMEM_CUSTOM, defense_pruners=("iter_prunetxt",),
              study_attacks="threshold,samia",
              wemem=WeMemStudy("iter_prunetxt", defenses=(
                  ("slide_re", LOCATION_WINDOW), ("ml2", LOCATION_RMR),
                  ("slide_ml2", LOCATION_WINDOW + LOCATION_RMR)))),
]

CNN_CONFIGS = [f"{d}_{m}" for d in ("cifar10", "cifar100", "svhn", "chmnist") for m in ("resnet18", "dense", "vgg16")]
# Figs 12-13 and Appendix A.6 (Figs 47-50): SAMIA with victim x shadow sparsity, 0 (unpruned) and the paper's
# five; every approach on CIFAR10 ResNet18 (Fig 12), L1-unstructured on the other models the paper shows.
MATRIX_SPARSITIES = (0.0, *PAPER_SPARSITIES)
MATRIX_CONFIGS = {"cifar10_resnet18": ALL_PRUNERS, **dict.fromkeys(
    ("cifar10_dense", "cifar10_vgg16", "cifar100_resnet18", "cifar100_dense", "purchase", "texas100"),
    ("l1unstructure",))}


def matrix(config: str) -> dict[str, object]:
    """The sparsity-matrix fields of a paper block (none for a config the paper's figures leave out)."""
    if config not in MATRIX_CONFIGS:
        return {}
    return {"sparsity_matrix": MATRIX_SPARSITIES, "matrix_pruners": MATRIX_CONFIGS[config], "matrix_attacks": "samia"}


PAPER = (
    [GridBlock(c, pruners=ALL_PRUNERS, unknown=20, refs=True,
                defenses=PAPER_DEFENSES if c.startswith("cifar10_") or c.endswith("_resnet18") else {},
                defense_pruners=ALL_PRUNERS if c == "cifar10_resnet18" else ("l1unstructure",), **matrix(c))
     for c in CNN_CONFIGS]
    + [GridBlock(c, defenses=PAPER_DEFENSES, refs=True, **matrix(c)) for c in ("location", "purchase", "texas100")]
    # Table 2: other train/test/dev ratios of CIFAR10 ResNet18, L1-unstructured 0.7.
    + [GridBlock(f"cifar10_resnet18_split{r}", sparsities=(0.7,), refs=True) for r in ("50_40", "60_30", "70_20")]
    + WEMEM_PAPER
)
# Architecture-level privacy (nas_privacy.py, Li et al.). Quick: the undefended slice on digits, its ADRA at P 4 on
# the 8x8 images (update rank 31 of 64 pixels: unidentifiable) and pooled to 4x4 (16 of 16) (~2 min on 2
# busy cores; the defenses add ~1 min each, measured in docs, so they stay in the paper profile). Paper: Tables
# 1-6 on MNIST / CIFAR-10 / CIFAR-100 with the four defenses of §5 (Table 6) at the paper's strengths.
NAS_DEFENSES = {"arch_l2": (1e-3, 1e-2), "sample_noise": (0.1,), "distill": (0.5,), "arch_grad_noise": (0.1,)}
QUICK += [NasBlock("nas_digits")]
PAPER += [NasBlock(c, defenses=NAS_DEFENSES) for c in ("nas_mnist", "nas_cifar10", "nas_cifar100")]
PROFILES = {"quick": QUICK, "paper": PAPER}


def check_names(blocks: list[GridBlock | NasBlock]) -> None:
    """Every pruner, defense and attack a profile names exists in its registry (before any work)."""
    for block in blocks:
        block.check()


def grid_tasks(blocks: list[GridBlock | NasBlock], cpus: int, gpus: float) -> list[Task]:
    """The profile's task graph (launch.tasks): every command with the tasks it reads from."""
    return build_tasks([b.commands() for b in blocks], cpus, gpus)
