"""run_all.sh's grid: the commands each block expands to (running them: tests/test_launch*.py)."""
from __future__ import annotations

from grid import PAPER, QUICK, GridBlock


def test_block_expands_in_dependency_order() -> None:
    cmds = GridBlock("c", pruners=("slim",), sparsities=(0.5,), defenses={"ppb": (4,)}, flags="--x 1").commands()
    assert cmds == [
        "python pretrain.py config/c.json --x 1",
        "python prune.py config/c.json --pruner_name slim --prune_sparsity 0.5 --x 1",
        "python prune.py config/c.json --pruner_name l1unstructure --prune_sparsity 0.6 --defend ppb --defend_arg 4"
        " --x 1",
        "python mia.py config/c.json --original --attacks all --x 1",
        "python mia.py config/c.json --pruner_name slim --prune_sparsity 0.5 --attacks all --x 1",
        "python mia.py config/c.json --pruner_name l1unstructure --prune_sparsity 0.6 --defend ppb --defend_arg 4 "
        "--attacks all --x 1",
        "python mia.py config/c.json --pruner_name l1unstructure --prune_sparsity 0.6 --defend ppb --defend_arg 4 "
        "--adaptive --attacks all --x 1",
    ]


def test_reference_models_come_after_the_prunes_and_before_the_attacks() -> None:
    cmds = GridBlock("c", sparsities=(0.6, 0.9), refs=True, ref_sparsities=(0.6,)).commands()
    refs = [i for i, c in enumerate(cmds) if c.startswith("python refs.py")]
    assert [cmds[i] for i in refs] == ["python refs.py config/c.json --original",
                                       "python refs.py config/c.json --pruner_name l1unstructure --prune_sparsity 0.6"]
    assert max(i for i, c in enumerate(cmds) if "prune.py" in c) < refs[0] < refs[-1] < min(
        i for i, c in enumerate(cmds) if "mia.py" in c)
    quick = "\n".join(QUICK[0].commands())
    assert "refs.py config/synthetic_purchase_columnfc.json --original" in quick and "--ref_models 8" in quick
    with_refs = [e for e in PAPER if isinstance(e, GridBlock) and e.refs and e.wemem is None]
    paper_refs = [c for e in with_refs for c in e.commands() if c.startswith("python refs.py")]
    paper_prunes = [c for e in with_refs for c in e.commands() if c.startswith("python prune.py")]
    assert len(paper_refs) == len(paper_prunes) + len(with_refs)  # every setting, plus each config's original
    assert len(with_refs) == 18  # the artifact's 15 configs and Table 2's 3 splits


def test_paper_grid_covers_the_paper() -> None:
    cmds = [c for e in PAPER for c in e.commands()]
    prunes = [c for c in cmds if c.startswith("python prune.py") and "--defend" not in c]
    # 12 CNN configs x 4 approaches x 5 sparsities + 3 tabular x 5 + Table 2's 3 splits x 1
    # + WeMem's 2 configs x (one-shot l1unstructure 0.6 + the undefended iterative run)
    assert len(prunes) == 12 * 4 * 5 + 3 * 5 + 3 + 2 * 2
    assert sum("--shadow_pruner_name" in c for c in cmds) == 12 * 20  # Table 1: 20 draws per CNN config
    assert any("cifar10_resnet18.json --pruner_name l1structure --prune_sparsity 0.6 --defend adv" in c for c in cmds)
    assert len(cmds) == len(set(cmds))


def test_quick_grid_touches_every_attack_defense_and_approach() -> None:
    text = "\n".join(c for e in QUICK for c in e.commands())
    for word in ("l1unstructure", "l1structure", "l2structure", "slim", "--original", "--adaptive",
                 "--shadow_prune_sparsity", "--attacks all", *(f"--defend {d} " for d in
                                                               ("ppb", "adv", "dp", "dpsgd", "relaxloss"))):
        assert word in text, word
