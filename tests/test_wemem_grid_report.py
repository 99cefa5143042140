"""WeMem's grid (grid.py) and its report outputs (report.py), without running any step."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.results import AttackRecord
from experiment import cli
from launch.profiles import PAPER, QUICK, check_names
from reporting import predicates, wemem
from reporting.context import Report
from reporting.records import normalize


def test_quick_wemem_slice_orders_memscore_prunes_then_adaptive_attacks() -> None:
    cmds = QUICK[0].commands()
    mem = [i for i, c in enumerate(cmds) if c.startswith("python memscore.py")]
    wemem_prunes = [i for i, c in enumerate(cmds) if c.startswith("python prune.py") and "iter_prunetxt" in c]
    attacks = [i for i, c in enumerate(cmds) if c.startswith("python mia.py")]
    assert len(mem) == 1 and len(wemem_prunes) == 2                     # base, slide_re
    assert mem[0] < min(wemem_prunes) and max(wemem_prunes) < min(attacks)
    # every defended WeMem attack is adaptive and names the same folder as the prune that made it
    for prune in (cmds[i] for i in wemem_prunes if "--defend" in cmds[i]):
        attack = next(c for c in cmds if c.startswith("python mia.py") and prune.split(" ", 3)[3].split(" --shadow")[0]
                      in c)
        assert "--adaptive" in attack and "--prune_iter 3" in attack

        def setting(cmd: str):
            p = cli.base_parser("t")
            cli.add_setting_flags(p)
            p.add_argument("--adaptive", action="store_true")
            p.add_argument("--attacks")
            return cli.setting_of(p.parse_args(cmd.split()[2:]))
        assert setting(prune) == setting(attack) and setting(prune).options


def test_paper_profile_has_wemem_run_shell_and_run_custom() -> None:
    text = "\n".join(c for b in PAPER for c in b.commands())
    for want in ("wemem_cifar10_resnet18.json --pruner_name iter_pruning --prune_sparsity 0.6 --defend slide_ml2 "
                 "--stride 100 --width 500 --mem_thre 0.5 --weight_decay_mem 0.1",
                 "wemem_location_columnfc.json --pruner_name iter_prunetxt --prune_sparsity 0.6 --defend slide_re "
                 "--stride 1 --width 15",
                 "wemem_location_columnfc.json --pruner_name iter_prunetxt --prune_sparsity 0.6 --defend ppb "
                 "--defend_arg 4 --adaptive"):
        assert want in text, want
    check_names(PAPER)
    check_names(QUICK)


def record(setting: str, attack: str, auc: float, **kw) -> AttackRecord:
    return AttackRecord(config="c", setting=setting, attack=attack, paper_acc=auc - 1, auc=auc, victim_test_acc=70.0,
                        **kw)


def records() -> list[AttackRecord]:
    out = []
    for attack, base in (("samia", 60.0), ("mentr", 55.0)):
        out += [record("original", attack, base, original=True),
                record("l1unstructure_0.6", attack, base + 1, pruner_name="l1unstructure", prune_sparsity=0.6),
                record("iter_prunetxt_0.6", attack, base + 5, pruner_name="iter_prunetxt", prune_sparsity=0.6,
                       prune_iter=3, defense_seconds=2.0),
                record("iter_prunetxt_0.6_ml2_thr0.6-wdm0.1_adaptive", attack, base + 2, pruner_name="iter_prunetxt",
                       prune_sparsity=0.6, prune_iter=3, defend="ml2", adaptive=True, defense_seconds=3.5,
                       defense_options={"weight_decay_mem": 0.1, "mem_thre": 0.6},
                       shadow_pruner_name="iter_prunetxt", shadow_prune_sparsity=0.6)]
    return out


def test_wemem_table_has_one_row_per_defense_with_every_attack() -> None:
    t = wemem.wemem_table(normalize(records()))
    assert list(t["defense"]) == ["base", "ml2 thr0.6-wdm0.1"]  # options in flag order, not JSON's sorted order
    assert list(t["defense_seconds"]) == [2.0, 3.5] and list(t["adaptive"]) == [False, True]
    assert t[["samia acc", "samia AUC", "mentr acc", "mentr AUC"]].to_numpy().tolist() == [[64, 65, 59, 60],
                                                                                           [61, 62, 56, 57]]


def test_premise_bars_are_original_one_shot_iterative_auc(tmp_path: Path) -> None:
    df = normalize(records())
    panel = wemem.premise_panel(predicates.plain(df), 0.6, ["samia", "mentr"])
    assert panel is not None and [t.split("\n")[0] for t in panel.xticklabels] == ["original", "l1unstructure",
                                                                                   "iter_prunetxt"]
    assert [list(s.y) for s in panel.series] == [[60, 61, 65], [55, 56, 60]]
    r = Report(df, tmp_path, tmp_path)
    entries = wemem.wemem_tables(r) + wemem.fig_wemem_premise(r)
    assert [e.file for e in entries] == ["wemem.csv", "wemem.md", "wemem_premise_c.png"]
    assert (tmp_path / "wemem_premise_c.png").stat().st_size > 0


def test_no_iterative_records_no_wemem_outputs(tmp_path: Path) -> None:
    df = normalize([r for r in records() if r.prune_iter is None])
    r = Report(df, tmp_path, tmp_path)
    assert wemem.wemem_tables(r) + wemem.fig_wemem_premise(r) == [] and not list(tmp_path.iterdir())


def test_memscore_success_bins_members_by_quintile_hand_computed() -> None:
    # 10 members with mem-scores 0.0..0.9; the attack gives the six most memorised 100 and the rest 0 ...
    mem = np.round(np.arange(10) / 10, 1)
    member_scores = np.where(mem >= 0.6, 100.0, 0.0)
    member_scores[4] = 99.0  # ... and one medium member a score just above the 1 %-FPR threshold (98.01)
    scores = np.r_[member_scores, np.arange(100.0)]  # 100 non-members scored 0..99
    member = np.r_[np.ones(10, int), np.zeros(100, int)]
    line = wemem.memscore_success(mem, scores, member)
    # quintile edges 0, .18, .36, .54, .72, .9 -> bins {0, .1}, {.2, .3}, {.4, .5}, {.6, .7}, {.8, .9}
    assert line.x == pytest.approx([0.05, 0.25, 0.45, 0.65, 0.85])
    assert line.y == pytest.approx([0.0, 0.0, 50.0, 100.0, 100.0])
    assert wemem.memscore_success(mem[:9], scores, member) is None  # members and mem-scores must line up
