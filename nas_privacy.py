"""Architecture-level privacy (Li et al.): DARTS search, AMIA and ADRA on a JSON config (code in nas/).

  python nas_privacy.py search [DEVICE] CONFIG   bilevel search; result/<stem>/nas/<defense>/genotype.json
  python nas_privacy.py amia   [DEVICE] CONFIG   retrain the searched net on D^theta, attack D^alpha and D^theta
  python nas_privacy.py adra   [DEVICE] CONFIG   reconstruct inputs from architecture updates; SR, MSE, grids
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import datasets
from core.errors import UserError
from core.results import AttackRecord, append_record
from core.storage import atomic_write, log, setup_logging
from core.training import TrainConfig
from experiment import resolve_device, seed_everything, versions
from experiment.cli import Parser, add_code_flags, run_main, start_code_check
from models import build_model
from nas import adra as A
from nas import amia as M
from nas import config as nas_config
from nas.defenses import SEARCH_DEFENSES, distill, noisy
from nas.search import SearchConfig, search
from nas.splits import nas_splits_for
from nas.supernet import DiscreteNet, Genotype, SpaceConfig, SuperNet, derive_genotype, load_genotype, save_genotype

SUBCOMMANDS = ("search", "amia", "adra")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
               usage="%(prog)s {search,amia,adra} [DEVICE] CONFIG [options]")
    p.add_argument("subcommand", help="search | amia | adra")
    p.add_argument("positional", nargs="+", metavar="[DEVICE] CONFIG", help="optional device (cpu, 0) then the JSON")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--defense", default=None, help="overrides the config's defense.name")
    p.add_argument("--defense_arg", type=float, default=None, help="overrides the config's defense.arg")
    p.add_argument("--overwrite", action="store_true", help="start the search again instead of resuming it")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--quiet", action="store_true", help="accepted for grid.py's runner (no progress bars anyway)")
    add_code_flags(p)
    args = p.parse_args(argv)
    start_code_check(args)
    if args.subcommand not in SUBCOMMANDS:
        raise UserError(f"unknown subcommand '{args.subcommand}'", "use one of: " + ", ".join(SUBCOMMANDS))
    if len(args.positional) > 2:
        raise UserError("too many positional arguments", "usage: SUBCOMMAND [DEVICE] CONFIG")
    if len(args.positional) == 2:
        args.device = args.positional[0]
    args.config = args.positional[-1]
    return args


class Run:
    """One invocation: the validated config, its data and splits, and its output paths."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.cfg = nas_config.load(args.config)
        if args.defense is not None:
            self.cfg["defense"]["name"] = args.defense
        if args.defense_arg is not None:
            self.cfg["defense"]["arg"] = args.defense_arg
        nas_config.validate(self.cfg, Path(args.config))
        self.stem, self.args = Path(args.config).stem, args
        self.device = resolve_device(args.device)
        if args.threads:
            torch.set_num_threads(args.threads)
        d = self.cfg["defense"]
        self.defense = d["name"] if d["name"] == "none" else f"{d['name']}_{float(d['arg']):g}"
        self.out = Path("result") / self.stem / "nas"
        self.folder = self.out / self.defense
        self.search_tag = self.defense if d["name"] in SEARCH_DEFENSES else "none"
        self.logs = Path("log") / self.stem
        setup_logging(self.logs / f"nas_{args.subcommand}.log")
        pool = datasets.load_pool(self.cfg["dataset_name"], Path(self.cfg["data_root"]),
                                  input_dim=self.cfg["input_dim"], num_cls=self.cfg["num_cls"])
        self.x, self.y = pool.x.to(self.device), pool.y.to(self.device)
        self.idx = nas_splits_for(len(self.y), self.cfg["split"], self.cfg["seed"], self.out / "data_index.json")

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.from_numpy(self.idx[name]).to(self.device)
        return self.x[i], self.y[i]

    def space(self) -> SpaceConfig:
        s = self.cfg["space"]
        return SpaceConfig(P=s["P"], C=s["C"], activation=s["activation"], primitives=tuple(s["primitives"]),
                           stem_stride=s["stem_stride"], batchnorm=s["batchnorm"])

    def search_cfg(self, defended: bool) -> SearchConfig:
        d, arg = self.cfg["defense"]["name"], float(self.cfg["defense"]["arg"])
        base = SearchConfig(**self.cfg["search"])
        if defended and d == "arch_l2":
            return replace(base, arch_l2=arg)
        if defended and d == "arch_grad_noise":
            return replace(base, arch_grad_noise=arg)
        return base

    def train_cfg(self) -> TrainConfig:
        r = self.cfg["retrain"]
        return TrainConfig(epochs=r["epochs"], batch_size=r["batch_size"], early_stop=r["epochs"],
                           optimizer=r["optimizer"], lr=r["lr"], weight_decay=r["weight_decay"], progress=False)

    def private(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split as the victim trains on it: D^theta and D^alpha carry the sample-noise defense when it is on."""
        x, y = self.part(name)
        if self.cfg["defense"]["name"] == "sample_noise" and name in ("theta", "alpha"):
            gen = torch.Generator().manual_seed(self.cfg["seed"] + (11 if name == "theta" else 13))
            x = noisy(x, float(self.cfg["defense"]["arg"]), gen)
        return x, y

    def record(self, **fields: Any) -> None:
        """One results.AttackRecord: the schema's fields by name, the NAS-specific keys (P, activation,
        membership_set, attack_acc_2p1, f1, sr, mse, ...) land in its `extra`."""
        d = self.cfg["defense"]
        base = {"config": self.stem, "dataset_name": self.cfg["dataset_name"], "model_name": "darts",
                "original": True, "seed": self.cfg["seed"], "split": self.cfg["split"],
                "defend": "" if d["name"] == "none" else d["name"],
                "defend_arg": None if d["name"] == "none" else float(d["arg"]),
                "P": self.cfg["space"]["P"], "activation": self.cfg["space"]["activation"], "defense": self.defense,
                "versions": versions()}
        append_record(self.logs / "results.jsonl", AttackRecord.from_json(base | fields))

    def search_folder(self, role: str) -> Path:
        """Where a search lives: the attacker's (shadow) search never sees a defense, the target's only those
        of SEARCH_DEFENSES."""
        return self.out / (self.search_tag if role == "target" else "none")

    def fingerprint(self, role: str) -> str:
        keys = ("dataset_name", "seed", "split", "space", "search")
        tag = self.search_folder(role).name
        return json.dumps({"role": role, "defense": tag} | {k: self.cfg[k] for k in keys}, sort_keys=True)


def searched(run: Run, role: str, theta: tuple, alpha: tuple, defended: bool) -> Genotype:
    """Search (resuming a killed one) and save the derived architecture as <role>_genotype.json."""
    folder = run.search_folder(role)
    ckpt = folder / f"{role}_search.pt"
    if run.args.overwrite:
        ckpt.unlink(missing_ok=True)
    seed = run.cfg["seed"] + (0 if role == "target" else 100)
    seed_everything(seed)
    net = SuperNet(run.space(), run.cfg["input_dim"], run.cfg["num_cls"]).to(run.device)
    t0 = time.perf_counter()
    rows = search(net, theta, alpha, run.search_cfg(defended), seed=seed, ckpt_path=ckpt,
                  fingerprint=run.fingerprint(role))
    g = derive_genotype(net)
    save_genotype(g, folder / f"{role}_genotype.json", run.fingerprint(role))
    atomic_write(folder / f"{role}_alpha.json", lambda f: json.dump(
        {"alpha": net.alpha.tolist(), "beta": net.beta.tolist(), "history": rows}, f), mode="w")
    log.info(f"{role} search: {len(rows)} epoch(s) in {time.perf_counter() - t0:.1f}s; ops {', '.join(g.ops)}")
    return g


def cmd_search(run: Run) -> None:
    searched(run, "target", run.private("theta"), run.private("alpha"), defended=True)


def _fit(run: Run, model: torch.nn.Module, train: tuple, seed: int, label: str) -> torch.nn.Module:
    model = model.to(run.device)
    res = M.train_on(model, train, run.part("unseen"), run.train_cfg(), torch.Generator().manual_seed(seed), label)
    log.info(f"{label}model: train {res.train_acc:.2f}%, unseen {res.test_acc:.2f}%")
    return model


def _defense_flags(run: Run) -> str:
    d = run.cfg["defense"]
    return "" if d["name"] == "none" else f" --defense {d['name']} --defense_arg {float(d['arg']):g}"


def target_model(run: Run) -> tuple[torch.nn.Module, dict[str, float]]:
    g = load_genotype(run.search_folder("target") / "target_genotype.json",
                      f"python nas_privacy.py search {run.args.config}" + _defense_flags(run),
                      run.fingerprint("target"))
    seed_everything(run.cfg["seed"] + 1)
    teacher = _fit(run, DiscreteNet(g, run.cfg["input_dim"], run.cfg["num_cls"]), run.private("theta"),
                   run.cfg["seed"] + 1, "Target ")
    model = teacher
    if run.cfg["defense"]["name"] == "distill":
        student = DiscreteNet(g, run.cfg["input_dim"], run.cfg["num_cls"]).to(run.device)
        distill(teacher, student, run.part("reference")[0], float(run.cfg["defense"]["arg"]), run.part("unseen"),
                run.train_cfg(), torch.Generator().manual_seed(run.cfg["seed"] + 2))
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


def cmd_amia(run: Run) -> None:
    acfg = M.AmiaConfig(**run.cfg["amia"])
    target, accs = target_model(run)
    log.info("Target accuracies: " + ", ".join(f"{k} {v:.2f}" for k, v in accs.items()))
    eta_gen = torch.Generator().manual_seed(run.cfg["seed"] + 3)
    s_train, s_test = run.part("shadow_train"), run.part("shadow_test")
    s_train = (M.eta_mix(s_train[0], acfg.eta, eta_gen), s_train[1])
    s_test = (M.eta_mix(s_test[0], acfg.eta, eta_gen), s_test[1])
    shadows: dict[str, dict[str, tuple]] = {}
    in_dim = run.cfg["input_dim"] if acfg.shadow_model != "columnfc" else int(np.prod(run.x.shape[1:]))
    seed_everything(run.cfg["seed"] + 4)
    fixed = _fit(run, build_model(acfg.shadow_model, run.cfg["num_cls"], in_dim), s_train, run.cfg["seed"] + 4,
                 "Fixed shadow ")
    feats = _features(run, fixed, s_train, s_test)
    shadows["fixed"] = {"alpha": feats, "theta": feats}
    if acfg.searched_shadow:
        s_theta, s_alpha = _halves(s_train)
        g = searched(run, "shadow", s_theta, s_alpha, defended=False)
        seed_everything(run.cfg["seed"] + 5)
        net = _fit(run, DiscreteNet(g, run.cfg["input_dim"], run.cfg["num_cls"]), s_theta, run.cfg["seed"] + 5,
                   "Searched shadow ")
        shadows["searched"] = {"alpha": _features(run, net, s_alpha, s_test),
                               "theta": _features(run, net, s_theta, s_test)}
    unseen = run.part("unseen")
    for kind, by_set in shadows.items():
        for mset in ("alpha", "theta"):
            data = M.attack_input(by_set[mset], _features(run, target, run.part(mset), unseen), run.cfg["num_cls"])
            for r in M.run_attacks(data, acfg, torch.Generator().manual_seed(run.cfg["seed"] + 6)):
                log.info(f"AMIA {kind} shadow, D^{mset} {r['attack']}: attack acc (2P-1) {r['attack_acc_2p1']:.3f}, "
                         f"F1 {r['f1']:.3f}, AUC {r['auc']:.2f}, TPR@1%FPR {r['tpr_at_1pct_fpr']:.2f}")
                run.record(setting=f"nas_amia_{kind}_shadow", membership_set=mset, eta=acfg.eta,
                           attack_epochs=acfg.attack_epochs, victim_train_acc=accs["target_theta_acc"],
                           victim_test_acc=accs["target_unseen_acc"],
                           shadow_model=acfg.shadow_model if kind == "fixed" else "darts", **accs, **r)


def _judge(run: Run) -> torch.nn.Module:
    """The real-data classifier of the success criterion: columnfc trained on D^theta."""
    seed_everything(run.cfg["seed"] + 7)
    model = build_model("columnfc", run.cfg["num_cls"], int(np.prod(run.x.shape[1:])))
    return _fit(run, model, run.part("theta"), run.cfg["seed"] + 7, "Judge ")


def cmd_adra(run: Run) -> None:
    a, space = run.cfg["adra"], run.space()
    acfg = A.AdraConfig(iterations=a["iterations"], restarts=a["restarts"], arch_lr=a["arch_lr"],
                        attacker_theta=a["attacker_theta"], psnr_threshold=a["psnr_threshold"])
    judge = _judge(run).cpu()
    value_range = float(run.x.max() - run.x.min())
    xa, ya = (t.cpu() for t in run.part("alpha"))
    d = run.cfg["defense"]
    # `--defense arch_grad_noise --defense_arg s` adds s to the config's adra.grad_noise list
    noises = sorted(set(a["grad_noise"]) | ({float(d["arg"])} if d["name"] == "arch_grad_noise" else set()))
    for P in a["P"]:
        for act in a["activations"]:
            sp = replace(space, P=P, C=a["C"], activation=act, batchnorm=False)
            for B in a["batch_sizes"]:
                for noise in noises:
                    _adra_setting(run, sp, B, float(noise), acfg, judge, value_range, xa, ya)


def _adra_setting(run: Run, sp: SpaceConfig, B: int, noise: float, acfg: A.AdraConfig, judge: torch.nn.Module,
                  value_range: float, xa: torch.Tensor, ya: torch.Tensor) -> None:
    seed, a = run.cfg["seed"], run.cfg["adra"]
    gen = torch.Generator().manual_seed(seed + 8)
    mses, wins, shown, losses = [], [], [], []
    t0 = time.perf_counter()
    for trial in range(a["trials"]):
        pick = torch.randperm(len(ya), generator=gen)[:B]
        x, y = xa[pick], ya[pick]
        victim = A.make_supernet(sp, run.cfg["input_dim"], run.cfg["num_cls"], acfg.theta_bound, seed + 20 + trial)
        delta = A.victim_update(victim, x, y, acfg.arch_lr)
        delta = noisy(delta, noise, gen)
        attacker = victim if acfg.attacker_theta == "same" else A.make_supernet(
            sp, run.cfg["input_dim"], run.cfg["num_cls"], acfg.theta_bound, seed + 1000 + trial)
        for _ in range(acfg.restarts):
            x_hat, _, loss = A.reconstruct(attacker, delta, acfg.arch_lr, tuple(x.shape), run.cfg["num_cls"],
                                        acfg.iterations, gen)
            cols, mse = A.best_match(x_hat, x)
            recognised = M.predict(judge, x_hat[cols]).argmax(1) == y.numpy()
            mses += list(mse)
            losses.append(loss)
            wins += list(A.is_success(mse, recognised, value_range, acfg.psnr_threshold))
            shown.append((x, x_hat[cols]))
    tag = f"P{sp.P}_{sp.activation}_B{B}" + (f"_noise{noise:g}" if noise > 0 else "")
    grid = run.folder / "adra" / f"{tag}.png"
    _save_grid(shown[:4], grid)
    mse_arr = np.asarray(mses)
    sr = 100.0 * float(np.mean(wins))
    log.info(f"ADRA {tag}: SR {sr:.1f}% over {len(wins)} reconstructions, MSE {mse_arr.mean():.3f}, median "
             f"gradient-matching loss {np.median(losses):.2e}, "
             f"PSNR {A.psnr(mse_arr, value_range).mean():.1f} dB ({time.perf_counter() - t0:.1f}s)")
    run.record(setting="nas_adra", attack="adra", P=sp.P, activation=sp.activation, batch=B,
               defense=f"arch_grad_noise_{noise:g}" if noise > 0 else "none", defend="arch_grad_noise" if noise > 0
               else "", defend_arg=noise if noise > 0 else None, grad_noise=noise, sr=sr,
               mse=float(mse_arr.mean()), psnr=float(A.psnr(mse_arr, value_range).mean()), n=len(wins),
               match_loss=float(np.median(losses)),
               attacker_theta=acfg.attacker_theta, psnr_threshold=acfg.psnr_threshold, grid=str(grid))


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
