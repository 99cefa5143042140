"""Architecture-level privacy (Li et al.): DARTS search, AMIA and ADRA on a JSON config (code in nas/).

  python nas_privacy.py search [DEVICE] CONFIG   bilevel search; result/<stem>/nas/<defense>/target_genotype.json
  python nas_privacy.py amia   [DEVICE] CONFIG   retrain the searched net on D^theta, attack D^alpha and D^theta
  python nas_privacy.py adra   [DEVICE] CONFIG   reconstruct inputs from architecture updates; SR, MSE, grids

Every output carries a provenance record (its settings, its rows of the split and the ids of what it was made
from, core/provenance.py), as the other steps' outputs do: a rerun reuses what is up to date and says so,
redoes what is missing or stale (an architecture searched again since), refuses what other settings or rows
made, and --overwrite redoes it. Attack scores and reconstructions are written first and their results.jsonl
record last, which commits them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import datasets
from attackers.threshold import ThresholdAttack
from core import provenance
from core.errors import UserError
from core.results import AttackRecord, append_record, committed_outputs, output_done
from core.storage import atomic_write, log, save_npz_with_record, setup_logging
from core.training import TrainConfig
from experiment import configure_backends, resolve_device, seed_everything, versions
from experiment.cli import Parser, add_code_flags, add_threads_flag, run_main, start_code_check
from models import build_model
from nas import adra as A
from nas import amia as M
from nas import config as nas_config
from nas.defenses import SEARCH_DEFENSES, distill, noisy
from nas.search import search
from nas.splits import REQUIRED, nas_splits_for
from nas.supernet import DiscreteNet, Genotype, SpaceConfig, SuperNet, derive_genotype, load_genotype, save_genotype

SUBCOMMANDS = ("search", "amia", "adra")
AMIA_ATTACKS = ("ffn", *ThresholdAttack.result_names)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
               usage="%(prog)s {search,amia,adra} [DEVICE] CONFIG [options]")
    p.add_argument("subcommand", help="search | amia | adra")
    p.add_argument("positional", nargs="+", metavar="[DEVICE] CONFIG", help="optional device (cpu, 0) then the JSON")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--defense", default=None, help="overrides the config's defense.name")
    p.add_argument("--defense_arg", type=float, default=None, help="overrides the config's defense.arg")
    p.add_argument("--overwrite", action="store_true",
                   help="redo this subcommand's finished outputs instead of reusing them (search: also a split "
                        "file the config no longer makes; amia: also the attacker's own search)")
    add_threads_flag(p)
    p.add_argument("--quiet", action="store_true", help="accepted for grid.py's runner (no progress bars anyway)")
    add_code_flags(p)
    args = p.parse_args(argv)
    start_code_check(args)
    if args.subcommand not in SUBCOMMANDS:
        raise UserError(f"unknown subcommand '{args.subcommand}'", "use one of: " + ", ".join(SUBCOMMANDS))
    if len(args.positional) > 2:
        raise UserError("too many positional arguments", "usage: SUBCOMMAND [DEVICE] CONFIG")
    if len(args.positional) == 2:
        if args.device is not None:
            raise UserError("device given twice (positional and --device)", "keep one of them")
        args.device = args.positional[0]
    args.config = args.positional[-1]
    return args


class Run:
    """One invocation: the validated config, its data and splits, its output paths and what they expect."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cfg = nas_config.load(args.config, args.defense, args.defense_arg)
        self.stem = Path(args.config).stem
        configure_backends(False, args.threads)
        self.device = resolve_device(args.device)
        d = self.cfg.defense
        self.defense = d.name if d.name == "none" else f"{d.name}_{d.arg:g}"
        self.out = Path("result") / self.stem / "nas"
        self.folder = self.out / self.defense
        self.search_tag = self.defense if d.name in SEARCH_DEFENSES else "none"
        self.logs = Path("log") / self.stem
        setup_logging(self.logs / f"nas_{args.subcommand}.log")
        pool = datasets.load_pool(self.cfg.dataset_name, Path(self.cfg.data_root), input_dim=self.cfg.input_dim,
                                  num_cls=self.cfg.num_cls)
        self.x, self.y = pool.x.to(self.device), pool.y.to(self.device)
        self.idx = nas_splits_for(len(self.y), self.cfg.split, self.cfg.seed, self.out / "data_index.json",
                                  remake=args.subcommand == "search" and args.overwrite,
                                  remake_hint=self.command("search", "--overwrite"),
                                  needs_reference=d.name == "distill")
        self.committed = committed_outputs(self.logs / "results.jsonl")

    def command(self, sub: str, extra: str = "") -> str:
        """The shell command of a subcommand on this run's config and defense, for hints."""
        d = self.cfg.defense
        flags = "" if d.name == "none" else f" --defense {d.name} --defense_arg {d.arg:g}"
        return f"python nas_privacy.py {sub} {shlex.quote(self.args.config)}{flags}" + (f" {extra}" if extra else "")

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.from_numpy(self.idx[name]).to(self.device)
        return self.x[i], self.y[i]

    def private(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split as the victim trains on it: D^theta and D^alpha carry the sample-noise defense when it is on."""
        x, y = self.part(name)
        if self.cfg.defense.name == "sample_noise" and name in ("theta", "alpha"):
            gen = torch.Generator().manual_seed(self.cfg.seed + (11 if name == "theta" else 13))
            x = noisy(x, self.cfg.defense.arg, gen)
        return x, y

    def train_cfg(self) -> TrainConfig:
        r = self.cfg.retrain
        return TrainConfig(epochs=r.epochs, batch_size=r.batch_size, early_stop=r.epochs, optimizer=r.optimizer,
                           lr=r.lr, weight_decay=r.weight_decay, progress=False)

    def search_cfg(self, defended: bool):
        d = self.cfg.defense
        if defended and d.name == "arch_l2":
            return dataclasses.replace(self.cfg.search, arch_l2=d.arg)
        if defended and d.name == "arch_grad_noise":
            return dataclasses.replace(self.cfg.search, arch_grad_noise=d.arg)
        return self.cfg.search

    def search_folder(self, role: str) -> Path:
        """Where a search lives: the attacker's (shadow) search never sees a defense, the target's only those
        of SEARCH_DEFENSES."""
        return self.out / (self.search_tag if role == "target" else "none")

    def split_of(self, *names: str) -> dict[str, Any]:
        return provenance.split_fingerprint(self.cfg.seed, "nas", dataclasses.asdict(self.cfg.split),
                                            [self.idx[n] for n in names])

    def base_settings(self) -> dict[str, Any]:
        c = self.cfg
        return {"dataset_name": c.dataset_name, "num_cls": c.num_cls, "input_dim": c.input_dim, "seed": c.seed}

    def search_expected(self, role: str) -> provenance.Expected:
        """What a search of `role` is made from: the target's on D^theta / D^alpha under the search defense,
        the attacker's on its own eta-mixed shadow members, never defended."""
        target = role == "target"
        settings = self.base_settings() | {
            "role": role, "defense": self.search_folder(role).name, "space": dataclasses.asdict(self.cfg.space),
            "search": dataclasses.asdict(self.search_cfg(target))} | ({} if target else {"eta": self.cfg.amia.eta})
        parts = ("theta", "alpha") if target else ("shadow_train",)
        return provenance.Expected(provenance.canonical(settings), self.split_of(*parts), kind="nas_search")

    def record(self, **fields: Any) -> None:
        """One results.AttackRecord: the schema's fields by name, the NAS-specific keys (P, activation,
        membership_set, attack_acc_2p1, f1, sr, mse, ...) land in its `extra`."""
        d = self.cfg.defense
        base = {"config": self.stem, "dataset_name": self.cfg.dataset_name, "model_name": "darts",
                "original": True, "seed": self.cfg.seed, "split": dataclasses.asdict(self.cfg.split),
                "defend": "" if d.name == "none" else d.name, "defend_arg": None if d.name == "none" else d.arg,
                "P": self.cfg.space.P, "activation": self.cfg.space.activation, "defense": self.defense,
                "versions": versions()}
        append_record(self.logs / "results.jsonl", AttackRecord.from_json(base | fields))


def output_fields(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """The results-record fields that commit an output (mia.py's form)."""
    return {"scores_file": str(path), "provenance": {
        "model_id": record["model_id"], "settings": provenance.fingerprint(record["settings"]),
        "parents": record["parents"]}}


# ------------------------------------------------------------------------------------------------ search
def searched(run: Run, role: str, theta: tuple, alpha: tuple, maker: str) -> tuple[Genotype, dict]:
    """The architecture of `role` and its record: reused when its file is up to date (same settings and rows;
    a file made otherwise, or edited, is refused), else searched (resuming a killed search) and saved as
    <role>_genotype.json, written last, after <role>_alpha.json (alpha, beta and every epoch's history).
    `maker`: the subcommand whose --overwrite redoes it."""
    folder = run.search_folder(role)
    path, ckpt = folder / f"{role}_genotype.json", folder / f"{role}_search.pt"
    expected = run.search_expected(role)
    if path.is_file() and not run.args.overwrite:
        genotype, record = load_genotype(path, run.cfg.space, run.command(maker), expected)
        log.info(f"{role} search: {path} is up to date (same settings and rows), reused (use --overwrite to redo)")
        return genotype, record
    if run.args.overwrite:
        ckpt.unlink(missing_ok=True)
    seed = run.cfg.seed + (0 if role == "target" else 100)
    seed_everything(seed)
    net = SuperNet(run.cfg.space, run.cfg.input_dim, run.cfg.num_cls).to(run.device)
    t0 = time.perf_counter()
    rows = search(net, theta, alpha, run.search_cfg(role == "target"), seed=seed, ckpt_path=ckpt,
                  fingerprint=provenance.fingerprint(expected.settings | {"split": expected.split}),
                  remedy=run.command(maker, "--overwrite"))
    genotype = derive_genotype(net)
    record = provenance.new_record("nas_search", expected.settings, expected.split)
    atomic_write(folder / f"{role}_alpha.json", lambda f: json.dump(
        {"alpha": net.alpha.tolist(), "beta": net.beta.tolist(), "history": rows}, f), mode="w")
    save_genotype(genotype, path, record)
    log.info(f"{role} search: {len(rows)} epoch(s), {time.perf_counter() - t0:.1f}s this run; ops "
             f"{', '.join(genotype.ops)}")
    return genotype, record


def cmd_search(run: Run) -> None:
    searched(run, "target", run.private("theta"), run.private("alpha"), "search")


# ------------------------------------------------------------------------------------------------ AMIA
def _fit(run: Run, model: torch.nn.Module, train: tuple, seed: int, label: str,
         unseen: tuple | None = None) -> torch.nn.Module:
    """`model` trained from scratch on `train`, its accuracy on the unseen split (`unseen`: that split as the
    model sees it, e.g. pooled) logged."""
    model = model.to(run.device)
    res = M.train_on(model, train, unseen or run.part("unseen"), run.train_cfg(), torch.Generator().manual_seed(seed),
                     label)
    log.info(f"{label}model: train {res.train_acc:.2f}%, unseen {res.test_acc:.2f}%")
    return model


def target_architecture(run: Run) -> tuple[Genotype, dict]:
    return load_genotype(run.search_folder("target") / "target_genotype.json", run.cfg.space,
                         run.command("search"), run.search_expected("target"))


def target_model(run: Run, g: Genotype) -> tuple[torch.nn.Module, dict[str, float]]:
    seed_everything(run.cfg.seed + 1)
    teacher = _fit(run, DiscreteNet(g, run.cfg.input_dim, run.cfg.num_cls), run.private("theta"),
                   run.cfg.seed + 1, "Target ")
    model = teacher
    if run.cfg.defense.name == "distill":
        student = DiscreteNet(g, run.cfg.input_dim, run.cfg.num_cls).to(run.device)
        distill(teacher, student, run.part("reference")[0], run.cfg.defense.arg, run.part("unseen"),
                run.train_cfg(), torch.Generator().manual_seed(run.cfg.seed + 2))
        model = student
    accs = {f"target_{s}_acc": _acc(model, run.part(s)) for s in ("theta", "alpha", "unseen")}
    return model, accs


def _acc(model: torch.nn.Module, data: tuple) -> float:
    return float((M.predict(model, data[0]).argmax(1) == data[1].cpu().numpy()).mean() * 100)


def _features(run: Run, model: torch.nn.Module, members: tuple, nonmembers: tuple) -> tuple[np.ndarray, ...]:
    k = min(len(members[1]), len(nonmembers[1]))
    x = torch.cat([members[0][:k], nonmembers[0][:k]])
    y = torch.cat([members[1][:k], nonmembers[1][:k]]).cpu().numpy()
    return M.predict(model, x), y, np.r_[np.ones(k, np.int64), np.zeros(k, np.int64)]


def _halves(data: tuple) -> tuple[tuple, tuple]:
    h = len(data[1]) // 2
    return (data[0][:h], data[1][:h]), (data[0][h:], data[1][h:])


def amia_expected(run: Run, kind: str, mset: str, parents: dict[str, str | None]) -> provenance.Expected:
    c = run.cfg
    settings = run.base_settings() | {"space": dataclasses.asdict(c.space), "search": dataclasses.asdict(c.search),
                                      "retrain": dataclasses.asdict(c.retrain), "amia": dataclasses.asdict(c.amia),
                                      "defense": dataclasses.asdict(c.defense), "shadow": kind, "membership_set": mset}
    wanted = {"target_architecture": parents["target"]} | (
        {"shadow_architecture": parents.get("shadow")} if kind == "searched" else {})
    return provenance.Expected(provenance.canonical(settings), run.split_of(*REQUIRED, "reference"), wanted,
                               kind="nas_amia")


def amia_pending(run: Run, parents: dict[str, str | None]) -> bool:
    """Whether any AMIA output (every attack's scores, per shadow and membership set) is missing, stale or not
    committed; one made with other settings or rows is refused (UserError)."""
    kinds = ("fixed", "searched") if run.cfg.amia.searched_shadow else ("fixed",)
    return run.args.overwrite or not all(
        output_done(run.folder / "amia" / f"{kind}_{mset}" / f"{name}.npz", amia_expected(run, kind, mset, parents),
                    run.committed)
        for kind in kinds for mset in ("alpha", "theta") for name in AMIA_ATTACKS)


def _known_shadow(run: Run) -> str | None:
    """The model_id of the attacker's architecture when its file is up to date (None: it is to be made)."""
    path = run.search_folder("shadow") / "shadow_genotype.json"
    if not run.cfg.amia.searched_shadow or run.args.overwrite or not path.is_file():
        return None
    return load_genotype(path, run.cfg.space, run.command("amia"), run.search_expected("shadow"))[1]["model_id"]


def cmd_amia(run: Run) -> None:
    acfg = run.cfg.amia
    g, target_record = target_architecture(run)
    parents = {"target": target_record["model_id"], "shadow": _known_shadow(run)}
    if not amia_pending(run, parents):
        log.info(f"AMIA ({run.defense}): every attack output is up to date (same settings, rows and architectures), "
                 "nothing to do (use --overwrite to redo)")
        return
    target, accs = target_model(run, g)
    log.info("Target accuracies: " + ", ".join(f"{k} {v:.2f}" for k, v in accs.items()))
    eta_gen = torch.Generator().manual_seed(run.cfg.seed + 3)
    s_train, s_test = run.part("shadow_train"), run.part("shadow_test")
    s_train = (M.eta_mix(s_train[0], acfg.eta, eta_gen), s_train[1])
    s_test = (M.eta_mix(s_test[0], acfg.eta, eta_gen), s_test[1])
    shadows: dict[str, dict[str, tuple]] = {}
    in_dim = run.cfg.input_dim if acfg.shadow_model != "columnfc" else int(np.prod(run.x.shape[1:]))
    seed_everything(run.cfg.seed + 4)
    fixed = _fit(run, build_model(acfg.shadow_model, run.cfg.num_cls, in_dim), s_train, run.cfg.seed + 4,
                 "Fixed shadow ")
    feats = _features(run, fixed, s_train, s_test)
    shadows["fixed"] = {"alpha": feats, "theta": feats}
    if acfg.searched_shadow:
        s_theta, s_alpha = _halves(s_train)
        shadow_g, shadow_record = searched(run, "shadow", s_theta, s_alpha, "amia")
        parents["shadow"] = shadow_record["model_id"]
        seed_everything(run.cfg.seed + 5)
        net = _fit(run, DiscreteNet(shadow_g, run.cfg.input_dim, run.cfg.num_cls), s_theta, run.cfg.seed + 5,
                   "Searched shadow ")
        shadows["searched"] = {"alpha": _features(run, net, s_alpha, s_test),
                               "theta": _features(run, net, s_theta, s_test)}
    unseen = run.part("unseen")
    for kind, by_set in shadows.items():
        for mset in ("alpha", "theta"):
            data = M.attack_input(by_set[mset], _features(run, target, run.part(mset), unseen), run.cfg.num_cls)
            expected = amia_expected(run, kind, mset, parents)
            for result, r in M.run_attacks(data, acfg, torch.Generator().manual_seed(run.cfg.seed + 6)):
                _amia_output(run, kind, mset, result, r, data.target_member, expected, accs)


def _amia_output(run: Run, kind: str, mset: str, result: Any, r: dict[str, Any], member: np.ndarray,
                 expected: provenance.Expected, accs: dict[str, float]) -> None:
    """Log one AMIA result, save its per-sample scores, then append its record (the commit point). On D^alpha
    the record carries the cap that the genotype's bits put on any attack's accuracy (nas.amia.accuracy_cap)."""
    acfg = run.cfg.amia
    bits = run.cfg.space.genotype_bits()
    cap = {"accuracy_cap": 100 * M.accuracy_cap(bits, int(member.sum())), "channel_bits": bits} \
        if mset == "alpha" else {}
    log.info(f"AMIA {kind} shadow, D^{mset} {r['attack']}: attack acc (2P-1) {r['attack_acc_2p1']:.3f}, "
             f"F1 {r['f1']:.3f}, AUC {r['auc']:.2f}, TPR@1%FPR {r['tpr_at_1pct_fpr']:.2f}"
             + (f"; no attack can pass {cap['accuracy_cap']:.1f}% accuracy ({bits:.1f} genotype bits)" if cap else ""))
    path = run.folder / "amia" / f"{kind}_{mset}" / f"{result.name}.npz"
    output = provenance.new_record("nas_amia", expected.settings, expected.split, dict(expected.parents))
    save_npz_with_record(path, output, scores=result.scores, decisions=result.decisions, member=member)
    run.record(setting=f"nas_amia_{kind}_shadow", membership_set=mset, eta=acfg.eta,
               attack_epochs=acfg.attack_epochs, victim_train_acc=accs["target_theta_acc"],
               victim_test_acc=accs["target_unseen_acc"],
               shadow_model=acfg.shadow_model if kind == "fixed" else "darts", **accs, **r, **cap,
               **output_fields(output, path))


# ------------------------------------------------------------------------------------------------ ADRA
@dataclasses.dataclass(frozen=True)
class AdraSetting:
    downsample: int
    P: int
    activation: str
    batch: int
    noise: float

    @property
    def tag(self) -> str:
        return (f"P{self.P}_{self.activation}_B{self.batch}" + (f"_noise{self.noise:g}" if self.noise > 0 else "")
                + (f"_ds{self.downsample}" if self.downsample > 1 else ""))


def adra_settings(run: Run) -> list[AdraSetting]:
    """The config's grid; `--defense arch_grad_noise --defense_arg s` adds s to its adra.grad_noise list. A
    downsample factor larger than the images, or a batch larger than D^alpha, is refused before any work."""
    a, d = run.cfg.adra, run.cfg.defense
    noises = sorted(set(a.grad_noise) | ({d.arg} if d.name == "arch_grad_noise" else set()))
    side, rows = min(run.x.shape[2:]), len(run.idx["alpha"])
    for factor in a.downsample:
        if factor > side:
            raise UserError(f"adra.downsample {factor} is larger than the {side}-pixel images", f"use 1 to {side}")
    if max(a.batch_sizes) > rows:
        raise UserError(f"adra.batch_sizes {max(a.batch_sizes)} is more than the {rows} images of D^alpha",
                        f"use batches of 1 to {rows}")
    return [AdraSetting(f, P, act, B, float(noise)) for f in a.downsample for P in a.P for act in a.activations
            for B in a.batch_sizes for noise in noises]


def adra_expected(run: Run, s: AdraSetting) -> provenance.Expected:
    grid = {k: v for k, v in dataclasses.asdict(run.cfg.adra).items()
            if k not in ("P", "activations", "batch_sizes", "grad_noise", "downsample")}
    settings = run.base_settings() | {"retrain": dataclasses.asdict(run.cfg.retrain), "adra": grid,
                                      "setting": dataclasses.asdict(s)}
    return provenance.Expected(provenance.canonical(settings), run.split_of("theta", "alpha"), kind="nas_adra")


def _judge(run: Run, factor: int) -> torch.nn.Module:
    """The real-data classifier of the success criterion: columnfc trained on D^theta (pooled like the inputs)."""
    seed_everything(run.cfg.seed + 7)
    (x, y), (xu, yu) = run.part("theta"), run.part("unseen")
    x = A.downsample(x, factor)
    model = build_model("columnfc", run.cfg.num_cls, int(np.prod(x.shape[1:])))
    return _fit(run, model, (x, y), run.cfg.seed + 7, "Judge ", (A.downsample(xu, factor), yu))


def cmd_adra(run: Run) -> None:
    todo = [s for s in adra_settings(run)
            if run.args.overwrite or not output_done(run.folder / "adra" / f"{s.tag}.npz", adra_expected(run, s),
                                                     run.committed)]
    if not todo:
        log.info(f"ADRA ({run.defense}): every setting is up to date (same settings and rows), nothing to do "
                 "(use --overwrite to redo)")
        return
    xa, ya = (t.cpu() for t in run.part("alpha"))
    for factor in sorted({s.downsample for s in todo}):
        judge = _judge(run, factor).cpu()
        x = A.downsample(xa, factor)
        value_range = float(x.max() - x.min())
        for s in (s for s in todo if s.downsample == factor):
            _adra_setting(run, s, judge, value_range, x, ya)


def _adra_setting(run: Run, s: AdraSetting, judge: torch.nn.Module, value_range: float, xa: torch.Tensor,
                  ya: torch.Tensor) -> None:
    seed, a = run.cfg.seed, run.cfg.adra
    acfg = A.AdraConfig(iterations=a.iterations, restarts=a.restarts, arch_lr=a.arch_lr,
                        attacker_theta=a.attacker_theta, psnr_threshold=a.psnr_threshold)
    sp = SpaceConfig(P=s.P, C=a.C, activation=s.activation, primitives=run.cfg.space.primitives, batchnorm=False)
    gen = torch.Generator().manual_seed(seed + 8)
    t0 = time.perf_counter()
    out: dict[str, list] = {"originals": [], "reconstructions": [], "mse": [], "success": [], "match_loss": [],
                            "rank": []}
    for trial in range(a.trials):
        pick = torch.randperm(len(ya), generator=gen)[:s.batch]
        x, y = xa[pick], ya[pick]
        victim = A.make_supernet(sp, run.cfg.input_dim, run.cfg.num_cls, acfg.theta_bound, seed + 20 + trial)
        delta = noisy(A.victim_update(victim, x, y, acfg.arch_lr), s.noise, gen)
        out["rank"].append(A.update_rank(victim, x, y))
        attacker = victim if acfg.attacker_theta == "same" else A.make_supernet(
            sp, run.cfg.input_dim, run.cfg.num_cls, acfg.theta_bound, seed + 1000 + trial)
        out["originals"].append(x.numpy())
        for _ in range(acfg.restarts):
            x_hat, _, loss = A.reconstruct(attacker, delta, acfg.arch_lr, tuple(x.shape), run.cfg.num_cls,
                                           acfg.iterations, gen)
            cols, mse = A.best_match(x_hat, x)
            recognised = M.predict(judge, x_hat[cols]).argmax(1) == y.numpy()
            out["reconstructions"].append(x_hat[cols].numpy())
            out["mse"].append(mse)
            out["match_loss"].append(loss)
            out["success"].append(A.is_success(mse, recognised, value_range, acfg.psnr_threshold))
    _adra_output(run, s, {k: np.asarray(v) for k, v in out.items()}, value_range, time.perf_counter() - t0)


def _adra_output(run: Run, s: AdraSetting, out: dict[str, np.ndarray], value_range: float, seconds: float) -> None:
    """Save the setting's originals, matched reconstructions and per-reconstruction numbers, its grid, then its
    record (the commit point), with the update's rank beside the pixels it would have to pin down."""
    a, expected = run.cfg.adra, adra_expected(run, s)
    mse, wins = out["mse"].ravel(), out["success"].ravel()
    rank, unknowns = int(out["rank"].min()), int(np.prod(out["originals"].shape[1:]))
    sr = 100.0 * float(wins.mean())
    psnr = float(A.psnr(mse, value_range).mean())
    path = run.folder / "adra" / f"{s.tag}.npz"
    output = provenance.new_record("nas_adra", expected.settings, expected.split)
    save_npz_with_record(path, output, **out)
    grid = run.folder / "adra" / f"{s.tag}.png"
    shown = [(torch.from_numpy(o), torch.from_numpy(r))
             for o, r in zip(np.repeat(out["originals"], a.restarts, axis=0), out["reconstructions"])]
    _save_grid(shown[:4], grid)
    log.info(f"ADRA {s.tag}: SR {sr:.1f}% over {len(wins)} reconstructions, MSE {mse.mean():.3f}, median "
             f"gradient-matching loss {np.median(out['match_loss']):.2e}, PSNR {psnr:.1f} dB; update rank {rank} "
             f"for {unknowns} pixels{' (not identifiable)' if rank < unknowns else ''} ({seconds:.1f}s)")
    noise = s.noise
    run.record(setting="nas_adra", attack="adra", P=s.P, activation=s.activation, batch=s.batch,
               downsample=s.downsample, defense=f"arch_grad_noise_{noise:g}" if noise > 0 else "none",
               defend="arch_grad_noise" if noise > 0 else "", defend_arg=noise if noise > 0 else None,
               grad_noise=noise, sr=sr, mse=float(mse.mean()), psnr=psnr, n=len(wins),
               match_loss=float(np.median(out["match_loss"])), attacker_theta=a.attacker_theta,
               psnr_threshold=a.psnr_threshold, grid=str(grid), arch_grad_rank=rank, unknowns=unknowns,
               **output_fields(output, path))


def _save_grid(pairs: list[tuple[torch.Tensor, torch.Tensor]], path: Path) -> None:
    """Originals on the top row, their best-matched reconstructions below (first channel, per-image scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = [(o[i], r[i]) for o, r in pairs for i in range(len(o))][:8]
    fig, axes = plt.subplots(2, len(images), figsize=(1.2 * len(images), 2.6), squeeze=False)
    for j, (orig, rec) in enumerate(images):
        for row, img in enumerate((orig, rec)):
            axes[row][j].imshow(img[0].numpy(), cmap="gray")
            axes[row][j].axis("off")
    axes[0][0].set_title("original", fontsize=7, loc="left")
    axes[1][0].set_title("ADRA", fontsize=7, loc="left")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80, bbox_inches="tight"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    run = Run(args)
    t0 = time.perf_counter()
    {"search": cmd_search, "amia": cmd_amia, "adra": cmd_adra}[args.subcommand](run)
    log.info(f"nas_privacy {args.subcommand} done in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    run_main(main)
