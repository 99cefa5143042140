"""run_all.sh's grid: the commands each block expands to (running them: tests/test_launch*.py), and grid.py's and
run_all.sh's command line: one `error:` line for every bad input, before any work."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch  # noqa: F401  (at collection: torch's first import runs ldconfig, a process unit tests may not start)

from core.errors import UserError
from launch.profiles import PAPER, QUICK, GridBlock


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
    # Table 1: 20 independent draws per CNN config, each distinct pair with shadows pruned otherwise is one run
    cnn = [e for e in PAPER if isinstance(e, GridBlock) and e.unknown]
    assert len(cnn) == 12 and all(e.unknown == 20 for e in cnn)
    drawn = sum(len({(v, s) for v, s, _ in e.table1_draws() if v != s}) for e in cnn)
    assert sum("--shadow_pruner_name" in c and "--attacks all" in c for c in cmds) == drawn
    # Figs 12-13: 6 x 6 sparsities (0 = unpruned) minus the known diagonal, every approach on CIFAR10 ResNet18
    # and L1-unstructured on 6 more models: (4 + 6) * 30 SAMIA runs
    assert sum("--shadow_prune_sparsity" in c and "--attacks samia" in c for c in cmds) == (4 + 6) * 30
    assert any("cifar10_resnet18.json --pruner_name l1structure --prune_sparsity 0.6 --defend adv" in c for c in cmds)
    assert len(cmds) == len(set(cmds))


def test_quick_grid_touches_every_attack_defense_and_approach() -> None:
    text = "\n".join(c for e in QUICK for c in e.commands())
    for word in ("l1unstructure", "l1structure", "l2structure", "slim", "--original", "--adaptive",
                 "--shadow_prune_sparsity", "--attacks all", *(f"--defend {d} " for d in
                                                               ("ppb", "adv", "dp", "dpsgd", "relaxloss"))):
        assert word in text, word


def test_table1_draws_victim_and_shadows_independently_with_replacement() -> None:
    # Two settings, one draw per block: the shadows get the victim's own setting about half the time (the old
    # distinct-pair sampling never let that happen); such a draw is the known attack and adds no command.
    same = 0
    for k in range(200):
        block = GridBlock(f"c{k}", sparsities=(0.6, 0.9), unknown=1)
        ((victim, shadows, _),) = block.table1_draws()
        rng = random.Random(f"c{k}")  # the independent route: two uniform picks among the 2 settings
        assert (victim.sparsity, shadows.sparsity) == ((0.6, 0.9)[rng.randrange(2)], (0.6, 0.9)[rng.randrange(2)])
        same += victim == shadows
        assert sum("--shadow_prune_sparsity" in c for c in block.commands()) == (victim != shadows)
    assert 80 <= same <= 120
    # a pair drawn twice is attacked once
    block = GridBlock("c", sparsities=(0.6, 0.9), unknown=12)
    pairs = {(v.sparsity, s.sparsity) for v, s, _ in block.table1_draws() if v != s}
    assert pairs == {(0.6, 0.9), (0.9, 0.6)} and sum("--shadow_prune_sparsity" in c for c in block.commands()) == 2


def test_sparsity_matrix_attacks_every_victim_shadow_pair_including_unpruned() -> None:
    block = GridBlock("c", sparsities=(0.5,), sparsity_matrix=(0, 0.5, 0.7), matrix_attacks="threshold")
    cmds = block.commands()
    assert "python prune.py config/c.json --pruner_name l1unstructure --prune_sparsity 0.7" in cmds  # its own model
    matrix = [c.removeprefix("python mia.py config/c.json ") for c in cmds if "--attacks threshold" in c]
    p = "--pruner_name l1unstructure --prune_sparsity"
    assert matrix == [
        "--original --shadow_pruner_name l1unstructure --shadow_prune_sparsity 0.5 --attacks threshold",
        "--original --shadow_pruner_name l1unstructure --shadow_prune_sparsity 0.7 --attacks threshold",
        f"{p} 0.5 --shadow_prune_sparsity 0 --attacks threshold",
        f"{p} 0.5 --shadow_pruner_name l1unstructure --shadow_prune_sparsity 0.7 --attacks threshold",
        f"{p} 0.7 --shadow_prune_sparsity 0 --attacks threshold",
        f"{p} 0.7 --shadow_pruner_name l1unstructure --shadow_prune_sparsity 0.5 --attacks threshold",
    ]  # the diagonal is the known runs: --original and each pruned model with --attacks all
    assert {"python mia.py config/c.json --original --attacks all",
            f"python mia.py config/c.json {p} 0.7 --attacks all"} <= set(cmds)



# ------------------------------------------------------------------ grid.py's and run_all.sh's command line

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The run refused in one `error:` line, exit status 2, nothing else on stderr; returns the line."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (proc.returncode,
                                                                                         proc.stderr)
    return lines[0]


@pytest.mark.e2e
def test_grid_help_answers_without_torch() -> None:
    code = ("import runpy, sys\nsys.argv = ['grid.py', '--help']\ntry:\n    runpy.run_path('grid.py', "
            "run_name='__main__')\nexcept SystemExit:\n    pass\nprint('imported:', sorted(m for m in ('torch', "
            "'numpy', 'ray', 'submitit') if m in sys.modules))")
    proc = run([sys.executable, "-c", code])
    assert proc.returncode == 0 and "--recheck" in proc.stdout and proc.stdout.endswith("imported: []\n")


@pytest.mark.parametrize("flags, says", [
    ([], "the following arguments are required: --profile"),
    (["--profile", "quick", "--profile", "paper"], "--profile given twice"),
    (["--profile", "quick", "--prof", "paper"], "--profile given twice"),          # an abbreviation is the flag
    (["--profile", "huge"], "invalid choice: 'huge'"),
    (["--profile", "quick", "--jobs", "0"], "--jobs: must be an integer between 1 and 1,024, got 0"),
    (["--profile", "quick", "--jobs", "1e9"], "--jobs: invalid int value: '1e9'"),
    (["--profile", "quick", "--retries", "-1"], "--retries: must be an integer between 0 and 100"),
    (["--profile", "quick", "--gpus_per_task", "nan"], "--gpus_per_task: must be a number between 0 and 64"),
    (["--profile", "quick", "--cpus_per_task", "99999"], "--cpus_per_task: must be an integer between"),
    (["--profile", "quick", "--launcher", "slurm", "--poll", "inf"], "--poll: must be a number between"),
    (["--profile", "quick", "--launcher", "slurm", "--partition", "gpu; rm -rf ~"], "not a partition name"),
    (["--profile", "quick", "--launcher", "ray", "--address", "head"], "not auto or HOST:PORT: 'head'"),
    (["--profile", "quick", "--launcher", "ray", "--address", "head:99999"], "not auto or HOST:PORT"),
    (["--profile", "quick", "--address", "head:6379"], "--address is a --launcher ray flag, not one of "
                                                       "--launcher local"),
    (["--profile", "quick", "--launcher", "ray", "--partition", "gpu"], "--partition is a --launcher slurm flag"),
    (["--profile", "quick", "--launcher", "ray", "--address", "h:1", "--ray_cpus", "2"], "--ray_cpus sizes the "
                                                                                          "local cluster"),
    (["--profile", "quick", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_grid_refuses_bad_flags_in_one_line_before_any_work(flags: list[str], says: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import grid

    monkeypatch.setattr(sys, "argv", ["grid.py", *flags])
    with pytest.raises(UserError) as e:  # run_main prints it as its line, exit 2 (the e2e test below)
        grid.main()
    assert says in e.value.line() and "\n" not in e.value.line()


@pytest.mark.e2e
def test_grid_errors_are_one_line_and_exit_2() -> None:
    proc = run([sys.executable, "grid.py", "--profile", "quick", "--profile", "paper"])
    assert one_error_line(proc).startswith("error: grid.py: --profile given twice") and proc.stdout == ""


@pytest.mark.e2e
def test_slurm_without_slurm_is_one_line_within_seconds(tmp_path: Path) -> None:
    """No sbatch on the PATH (an empty one): submitit would fail on its first submission, with a traceback."""
    pytest.importorskip("submitit", reason="without submitit the line says so instead (test_launch.py)")
    start = time.perf_counter()
    proc = run([sys.executable, "grid.py", "--profile", "quick", "--launcher", "slurm"], env={"PATH": str(tmp_path)})
    assert "error: --launcher slurm needs Slurm, and this machine has no sbatch on its PATH" in one_error_line(proc)
    assert time.perf_counter() - start < 60  # before the task graph's torch import (~1 s of Python here)


def run_all(*args: str, python: str | None = None) -> subprocess.CompletedProcess:
    return run(["bash", "run_all.sh", *args], env={"PYTHON": python} if python else None)


@pytest.mark.e2e
@pytest.mark.parametrize("args", [("--quick", "--paper"), ("--quick", "--profile", "paper"),
                                  ("--paper", "--profile=quick"), ("--quick", "--jobs", "2", "--jobs", "3"),
                                  ("--quick", "--jobs", "0"), ("--quick", "--jobs"), ("--profile",),
                                  ("--profile", "huge"), ("quick",)])
def test_run_all_refuses_two_profiles_and_bad_arguments(args: tuple[str, ...]) -> None:
    proc = run_all(*args)
    one_error_line(proc)
    assert proc.stdout == ""  # no grid started (the paper grid used to run for --quick --paper)


@pytest.mark.e2e
def test_run_all_with_a_bad_python_says_so_in_one_line(tmp_path: Path) -> None:
    script = tmp_path / "not_python"
    script.write_text("#!/bin/sh\nexit 0\n")  # runs, answers nothing, exits 0: a silent success before
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    script.chmod(0o755)
    cases = {str(tmp_path / "missing"): "no such program", str(plain): "is not executable",
             str(script): "is not a Python 3.11 or newer", "/bin/echo": "is not a Python 3.11 or newer"}
    for python, says in cases.items():
        line = one_error_line(run_all("--quick", python=python))
        assert f"PYTHON={python}" in line and says in line
    bare = tmp_path / "bare"  # a Python 3.11+ without the requirements: grid.py names what it lacks
    venv = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], capture_output=True)
    if venv.returncode == 0:
        line = one_error_line(run_all("--quick", python=str(bare / "bin" / "python")))
        assert "lacks torch" in line and "pip install -r requirements.txt" in line
