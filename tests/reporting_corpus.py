"""A results folder as mia.py and nas_privacy.py leave it, built in a test's tmp_path: records for every kind of
setting the report draws (original, pruned, unknown settings, the sparsity matrix, defenses adaptive or not,
iterative pruning with WeMem defenses, NAS AMIA / ADRA), many attacks (every registered result and names the
registry does not know), and the per-sample files (scores, features, mem-scores, the split, an ADRA grid).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from attackers import result_order
from core.results import AttackRecord

CONFIG = "c"
N = 40  # members and non-members each
# Names the registry does not know (other branches' attacks, an old record's variant): styles all the same
EXTRA_ATTACKS = ("lira_online_fixed_variance", "label_augment", "label_boundary", "qmia", "release_lira",
                 "release_nn")
ATTACKS = (*result_order(), *EXTRA_ATTACKS)
VERSIONS = ({"python": "3.11", "torch": "2.x", "prune_mia": "0.4.0", "commit": "abc1234"},
            {"python": "3.11", "torch": "2.x", "prune_mia": "0.4.0", "commit": "abc1234-dirty"},
            {"python": "3.11", "torch": "2.x"})


def record(setting: str, attack: str, acc: float, test_acc: float, pruner: str | None = None,
           sparsity: float | None = None, shadow: tuple[str | None, float] | None = None, **extra: Any
           ) -> dict[str, Any]:
    """One mia.py record (AttackRecord's JSON) with its scores file path; shadows default to the victim's."""
    spruner, ssp = shadow if shadow else (pruner, sparsity)
    i = len(setting) + len(attack)
    return AttackRecord(
        config=CONFIG, setting=setting, attack=attack, dataset_name="digits", model_name="columnfc",
        original=pruner is None, pruner_name=pruner, prune_sparsity=sparsity, shadow_pruner_name=spruner,
        shadow_prune_sparsity=ssp, paper_acc=acc, acc=acc, balanced_acc=acc, auc=acc + 2, tpr_at_1pct_fpr=3.0,
        tpr_at_0_1pct_fpr=1.0, victim_test_acc=test_acc, victim_train_acc=99.0, n_members=N, n_nonmembers=N,
        confidence_gap=0.01 * (acc - 50), sensitivity_gap=0.001 * i, generalization_gap=100 - test_acc,
        split={"victim": 0.5, "train": 0.45, "dev": 0.1, "test": 0.45}, versions=VERSIONS[i % 3],
        scores_file=f"result/{CONFIG}/mia/{setting}/{attack}.npz", **extra).to_json()


PLAIN = [(None, None), ("l1unstructure", 0.5), ("l1unstructure", 0.7), ("l1unstructure", 0.9), ("slim", 0.7)]
DEFENSES = [("ppb", 1.0, {}), ("ppb", 4.0, {}), ("dpsgd", 1.0, {"epsilon": 3.2}), ("adv", 2.0, {}),
            ("relaxloss", 1.0, {})]


def setting_name(pruner: str | None, sparsity: float | None) -> str:
    return "original" if pruner is None else f"{pruner}_{sparsity:g}"


def pruning_records() -> list[dict[str, Any]]:
    out = []
    for k, (pruner, sparsity) in enumerate(PLAIN):
        for j, attack in enumerate(ATTACKS):
            out.append(record(setting_name(pruner, sparsity), attack, 55.0 + k + 0.3 * j, 90.0 - 2 * k, pruner,
                              sparsity))
    l1 = ("l1unstructure", 0.7)
    unknown = [("l1unstructure_0.7_shadow_l1unstructure_0.5", *l1, ("l1unstructure", 0.5)),
               ("l1unstructure_0.5_shadow_l1unstructure_0.7", "l1unstructure", 0.5, ("l1unstructure", 0.7)),
               ("original_shadow_l1unstructure_0.5", None, None, ("l1unstructure", 0.5)),
               ("l1unstructure_0.5_shadow_original", "l1unstructure", 0.5, (None, 0.0))]
    out += [record(s, "samia", 57.0 + i, 88.0, p, sp, shadow) for i, (s, p, sp, shadow) in enumerate(unknown)]
    for adaptive in (False, True):
        for i, (defend, arg, extra) in enumerate(DEFENSES[:5 if not adaptive else 2]):
            setting = f"l1unstructure_0.7_{defend}_{arg:g}" + ("_adaptive" if adaptive else "")
            out.append(record(setting, "samia", 54.0 - i, 86.0 - i, *l1, defend=defend, defend_arg=arg,
                              adaptive=adaptive, **extra))
    it = {"prune_iter": 3, "defense_seconds": 2.0}
    out += [record("iter_prunetxt_0.7", a, 62.0, 87.0, "iter_prunetxt", 0.7, **it) for a in ("samia", "mentr")]
    for i, (defend, opts) in enumerate((("slide_re", {"stride": 1, "width": 15}), ("ml2", {"mem_thre": 0.6}),
                                        ("slide_ml2", {"stride": 1, "width": 15, "mem_thre": 0.6}))):
        out.append(record(f"iter_prunetxt_0.7_{defend}_adaptive", "samia", 58.0 - i, 85.0, "iter_prunetxt", 0.7,
                          defend=defend, adaptive=True, defense_options=opts, **it))
    return out


def nas_records() -> list[dict[str, Any]]:
    base = {"config": "nas_x", "dataset_name": "digits", "model_name": "darts", "original": True, "P": 4,
            "activation": "elu", "defense": "none", "versions": VERSIONS[0]}
    amia = [base | {"setting": "nas_amia_fixed_shadow", "attack": "ffn", "membership_set": s, "paper_acc": a,
                    "acc": a, "auc": a + 1, "attack_acc_2p1": 2 * a / 100 - 1, "f1": 0.5}
            for s, a in (("alpha", 51.0), ("theta", 55.0))]
    return amia + [base | {"setting": "nas_adra", "attack": "adra", "batch": 1, "grad_noise": 0.0, "sr": 25.0,
                           "mse": 0.5, "grid": "result/nas_x/nas/none/adra/P4_elu_B1.png"}]


def write_scores(root: Path, setting: str, attack: str, rng: np.random.Generator, shift: float) -> None:
    member = np.r_[np.ones(N), np.zeros(N)].astype(np.int64)
    scores = rng.normal(size=2 * N) + shift * member
    folder = root / "result" / CONFIG / "mia" / setting
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{attack}.npz", scores=scores, decisions=(scores > 0).astype(np.int64), member=member)
    if not (folder / "features.npz").exists():
        np.savez(folder / "features.npz", conf=1 / (1 + np.exp(-scores)), sens=np.abs(rng.normal(size=2 * N)) * 50,
                 member=member, labels=rng.integers(0, 3, 2 * N))


def write_png(path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path)
    plt.close(fig)


def write_logdir(root: Path, pruning: list[dict[str, Any]] | None = None, nas: list[dict[str, Any]] | None = None,
                 extra_lines: tuple[str, ...] = ()) -> Path:
    """root/log/<config>/results.jsonl as mia.py appends them, every scores / features file of the records of
    the two settings with every attack (original, l1unstructure_0.7) and every samia record, the mem-scores
    and split of the config, and the ADRA grid."""
    pruning = pruning_records() if pruning is None else pruning
    nas = nas_records() if nas is None else nas
    for config, rows, extra in ((CONFIG, pruning, extra_lines), ("nas_x", nas, ())):
        folder = root / "log" / config
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(
            line + "\n" for line in extra))
    rng = np.random.default_rng(0)
    for r in pruning:
        if r["attack"] == "samia" or r["setting"] in ("original", "l1unstructure_0.7"):
            write_scores(root, r["setting"], r["attack"], rng, 0.5 + 0.05 * (r["paper_acc"] - 50))
    pool = 4 * N
    victim_train = rng.permutation(pool)[:N]
    (root / "result" / CONFIG / "data_index.json").write_text(json.dumps({"victim_train": victim_train.tolist()}))
    (root / "result" / CONFIG / "memscore").mkdir(parents=True, exist_ok=True)
    np.savez(root / "result" / CONFIG / "memscore" / "scores.npz", per_pool=rng.uniform(0, 1, pool))
    write_png(root / "result" / "nas_x" / "nas" / "none" / "adra" / "P4_elu_B1.png")
    return root / "log"
