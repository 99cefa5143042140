"""The task graph, the local launcher and the shared report: dependencies read off the commands, GPU slots,
retries of killed steps, kills mid-write, deleted outputs, and two launchers on one grid."""
from __future__ import annotations

import fnmatch
import io
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import UserError
from launch import records
from launch.execute import Outcome
from launch.local import LocalLauncher, default_gpus_per_task, gpu_slots, schedule
from launch.profiles import PAPER, QUICK, GridBlock, NasBlock, WeMemStudy
from launch.progress import Progress
from launch.tasks import Task, build_tasks, dependants, describe, levels
from launch_helpers import drive, launch, made, runs, started, toy_grid

ROOT = Path(__file__).resolve().parents[1]


def deps_by_command(tasks: list[Task]) -> dict[str, list[str]]:
    """command -> the commands it waits for (ids are positions; commands read better in asserts)."""
    cmd = {t.id: t.command.removeprefix("python ").removesuffix(" --x 1") for t in tasks}
    return {cmd[t.id]: [cmd[d] for d in t.deps] for t in tasks}


def test_dependencies_are_what_each_command_reads() -> None:
    block = GridBlock("c", sparsities=(0.6, 0.9), defenses={"ppb": (4,)}, unknown=1, refs=True,
                      ref_sparsities=(0.6,), flags="--x 1",
                      wemem=WeMemStudy("iter_prunetxt", defenses=(("slide_re", (("stride", 1), ("width", 15))),)))
    deps = deps_by_command(build_tasks([block.commands()]))
    pre = "pretrain.py config/c.json"
    p6, p9 = (f"prune.py config/c.json --pruner_name l1unstructure --prune_sparsity {s}" for s in (0.6, 0.9))
    ppb = p6 + " --defend ppb --defend_arg 4"
    refs0, refs6 = "refs.py config/c.json --original", "refs.py config/c.json --pruner_name l1unstructure " \
                                                         "--prune_sparsity 0.6"
    it = "prune.py config/c.json --pruner_name iter_prunetxt --prune_sparsity 0.6"
    slide = it + " --defend slide_re --stride 1 --width 15"
    assert deps[pre] == [] and deps[p6] == deps[p9] == deps[ppb] == [pre]
    assert deps["memscore.py config/c.json"] == []                       # reads only the data
    assert deps[it] == [pre]
    assert deps[slide] == [pre, "memscore.py config/c.json"]             # WeMem's defense reads the mem-scores
    assert deps[refs0] == [pre] and deps[refs6] == [refs0, p6]
    mia = lambda prune, extra: "mia.py config/c.json " + prune.split(" ", 2)[2] + extra
    assert deps["mia.py config/c.json --original --attacks all"] == [pre, refs0]
    assert deps[mia(p6, " --attacks all")] == [p6, refs6]
    assert deps[mia(p9, " --attacks all")] == [p9]                       # no references for 0.9
    assert deps[mia(ppb, " --attacks all")] == [ppb, p6]                 # undefended shadows
    assert deps[mia(ppb, " --adaptive --attacks all")] == [ppb]
    unknown = [c for c in deps if "--shadow_pruner_name" in c]
    assert len(unknown) == 1 and len(deps[unknown[0]]) >= 2 and set(deps[unknown[0]]) <= {p6, p9, refs6}


def test_matrix_attacks_read_the_original_on_the_unpruned_side() -> None:
    block = GridBlock("c", sparsities=(0.6,), sparsity_matrix=(0, 0.6), matrix_attacks="threshold")
    deps = deps_by_command(build_tasks([block.commands()]))
    pre, p6 = "pretrain.py config/c.json", "prune.py config/c.json --pruner_name l1unstructure --prune_sparsity 0.6"
    assert deps["mia.py config/c.json --original --shadow_pruner_name l1unstructure --shadow_prune_sparsity 0.6 "
                "--attacks threshold"] == [pre, p6]              # unpruned victim, pruned shadows
    assert deps["mia.py config/c.json --pruner_name l1unstructure --prune_sparsity 0.6 --shadow_prune_sparsity 0 "
                "--attacks threshold"] == [p6, pre]              # pruned victim, unpruned shadows


def test_the_graph_reads_mia_commands_as_mia_py_does() -> None:
    """launch.tasks.attack_of against mia.attack_setting itself, on every mia.py command of the quick profile
    (original and pruned victims, adaptive, unknown shadows, the matrix's unpruned sides)."""
    import mia
    from experiment.cli import add_setting_flags, base_parser, parse
    from launch.tasks import _setting_parser, attack_of

    steps = base_parser("mia")
    add_setting_flags(steps)
    mia.add_mia_flags(steps)
    ours = _setting_parser()
    commands = [shlex.split(c) for b in QUICK for c in b.commands() if c.startswith("python mia.py")]
    assert len(commands) == 27
    for words in commands:
        ns, _, cfg = parse(steps, words[2:])
        assert attack_of(ours.parse_known_args(words[2:])[0]) == mia.attack_setting(ns, cfg), words


def test_nas_amia_waits_for_the_searches_it_reads_and_the_plain_amia() -> None:
    cmds = NasBlock("n", defenses={"arch_l2": (0.01,), "distill": (0.5,)}).commands()
    deps = deps_by_command(build_tasks([cmds]))
    search, amia = "nas_privacy.py search config/n.json", "nas_privacy.py amia config/n.json"
    assert deps[search] == [] and deps["nas_privacy.py adra config/n.json"] == [search]
    assert deps[amia] == [search]
    assert deps[f"{search} --defense arch_l2 --defense_arg 0.01"] == []
    assert deps[f"{amia} --defense arch_l2 --defense_arg 0.01"] == [search, f"{search} --defense arch_l2 "
                                                                             "--defense_arg 0.01", amia]
    assert deps[f"{amia} --defense distill --defense_arg 0.5"] == [search, amia]  # distill: the plain search


def test_profiles_build_and_a_read_nobody_makes_is_an_error() -> None:
    quick = build_tasks([b.commands() for b in QUICK])
    assert len(quick) == 52 and [len(level) for level in levels(quick)] == [5, 21, 23, 3]
    paper = build_tasks([b.commands() for b in PAPER])
    assert len(paper) == sum(len(b.commands()) for b in PAPER)
    assert all(t.deps for t in paper if t.is_attack)
    with pytest.raises(ValueError, match="no grid command makes"):
        build_tasks([["python mia.py config/c.json --pruner_name slim --prune_sparsity 0.5 --attacks all"]])
    text = describe(build_tasks([GridBlock("c", sparsities=(0.5,)).commands()], cpus=3, gpus=0.5))
    assert "c/1  [cpus 3, gpus 0.5]  after c/0\n    python prune.py config/c.json" in text
    assert text.endswith("4 tasks in 3 dependency levels (1, 2, 1)")


def test_levels_and_dependants() -> None:
    tasks = toy_grid()
    assert [[t.id for t in level] for level in levels(tasks)] == [["a/pre"], ["a/p1", "a/p2", "a/m0"],
                                                                   ["a/m1", "a/m2"]]
    assert dependants(tasks, ["a/p1"]) == {"a/p1", "a/m1"}
    assert dependants(tasks, ["a/pre"]) == {t.id for t in tasks}


def test_gpu_slots_spread_and_pack() -> None:
    env = lambda slots: [s.get("CUDA_VISIBLE_DEVICES") for s in slots]
    assert env(gpu_slots(0, 2, 0.0)) == [None, None]
    assert env(gpu_slots(4, 3, 1)) == ["0", "1", "2"]
    assert env(gpu_slots(4, 2, 2)) == ["0,1", "2,3"]
    assert env(gpu_slots(2, 4, 0.5)) == ["0", "1", "0", "1"]        # two per GPU, in turn
    assert env(gpu_slots(2, 3, 0.25)) == ["0", "1", "0"]            # under capacity: still on both GPUs
    assert env(gpu_slots(1, 3, 1 / 3)) == ["0", "0", "0"]           # 1/3 packs exactly three (float 0.333...)
    for n, jobs, g in ((2, 5, 0.5), (4, 3, 1.5), (2, 3, 1), (0, 1, 0.5)):
        with pytest.raises(UserError):
            gpu_slots(n, jobs, g)
    assert [default_gpus_per_task(n, j) for n, j in ((0, 2), (4, 2), (2, 3), (1, 3), (8, 8))] == [0, 1, 0.5, 1 / 3, 1]
    for n, j in ((2, 3), (1, 3), (3, 7)):
        assert len(gpu_slots(n, j, default_gpus_per_task(n, j))) == j


def fake_run(log: list, delay: float = 0.05, fail: frozenset = frozenset()):
    lock, live = threading.Lock(), set()

    def run(task: Task, env: dict) -> Outcome:
        with lock:
            live.add(task.id)
            log.append(("start", task.id, len(live)))
        time.sleep(delay)
        with lock:
            live.discard(task.id)
            log.append(("end", task.id))
        return Outcome(task.id, "failed" if task.id in fail else "done", delay, 1 if task.id in fail else 0, "boom")
    return run


def test_schedule_runs_each_task_after_its_dependencies_on_n_slots() -> None:
    tasks = toy_grid()
    log: list = []
    progress = Progress(tasks, "t", out=io.StringIO())
    schedule(tasks, [{}, {}], fake_run(log), progress)
    ended = [e[1] for e in log if e[0] == "end"]
    for t in tasks:
        start = next(i for i, e in enumerate(log) if e[:2] == ("start", t.id))
        assert all(log.index(("end", d)) < start for d in t.deps)
    assert max(e[2] for e in log if e[0] == "start") == 2 and sorted(ended) == sorted(t.id for t in tasks)
    # training first: both prunes start before the original's attack, which was ready at the same time
    starts = [e[1] for e in log if e[0] == "start"]
    assert starts.index("a/p2") < starts.index("a/m0")
    assert progress.ok and "6 done, 0 failed, 0 skipped of 6 tasks" in progress.summary()


def test_a_failed_task_skips_its_dependants_only() -> None:
    tasks = toy_grid()
    log: list = []
    out = io.StringIO()
    progress = Progress(tasks, "t", out=out)
    schedule(tasks, [{}], fake_run(log, 0.0, frozenset({"a/p1"})), progress)
    assert sorted(e[1] for e in log if e[0] == "start") == ["a/m0", "a/m2", "a/p1", "a/p2", "a/pre"]
    assert progress.outcomes["a/m1"].status == "skipped" and "a/p1 failed" in progress.outcomes["a/m1"].tail
    summary = progress.summary()
    assert "4 done, 1 failed, 1 skipped of 6 tasks" in summary and f"{tasks[1].command}\n        boom" in summary
    assert "FAILED" in out.getvalue() and not progress.ok


@pytest.mark.e2e
def test_local_runs_the_toy_grid_and_a_rerun_does_no_work(tmp_path: Path) -> None:
    tasks = toy_grid()
    assert launch(LocalLauncher, tasks, tmp_path).ok
    assert sorted(runs(tmp_path)) == sorted(t.id[2:] for t in tasks)
    log = (tmp_path / "log" / "a" / "run_all.out").read_text()
    assert log.count("\n$ python ") == 6 and "pre: made" in log
    assert launch(LocalLauncher, tasks, tmp_path).ok
    assert len(runs(tmp_path)) == 6                                   # every task skipped by its step
    assert log.count("up to date") == 0 and "up to date" in (tmp_path / "log/a/run_all.out").read_text()


@pytest.mark.e2e
def test_deleting_an_output_reruns_exactly_that_task_and_its_dependants(tmp_path: Path) -> None:
    tasks = toy_grid()
    assert launch(LocalLauncher, tasks, tmp_path).ok
    before = made(tmp_path)
    (tmp_path / "result" / "a" / "p1.json").unlink()
    assert launch(LocalLauncher, tasks, tmp_path).ok
    assert runs(tmp_path)[6:] == ["p1", "m1"]
    after = made(tmp_path)
    assert {k for k in after if after[k]["model_id"] != before[k]["model_id"]} == {"p1", "m1"}
    assert after["m1"]["parents"] == {"p1": after["p1"]["model_id"]}


@pytest.mark.e2e
def test_a_killed_step_is_retried_and_a_failing_one_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the kill-once marker lands in the working folder of the step (= root)
    monkeypatch.setenv("TOY_FAULT", "p1:kill-once")
    progress = launch(LocalLauncher, toy_grid(), tmp_path)
    assert progress.ok and progress.outcomes["a/p1"].attempts == 2 and progress.outcomes["a/m1"].attempts == 1
    monkeypatch.setenv("TOY_FAULT", "p2:fail")
    (tmp_path / "result" / "a" / "p2.json").unlink()
    progress = launch(LocalLauncher, toy_grid(), tmp_path)
    assert progress.outcomes["a/p2"].attempts == 1 and progress.outcomes["a/p2"].returncode == 1
    assert "error: p2 failed on purpose" in progress.outcomes["a/p2"].tail
    assert progress.outcomes["a/m2"].status == "skipped"


@pytest.mark.e2e
def test_killed_every_time_fails_after_the_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOY_FAULT", "pre:midwrite")
    progress = launch(LocalLauncher, toy_grid(), tmp_path, retries=1)
    pre = progress.outcomes["a/pre"]
    assert pre.status == "failed" and pre.attempts == 2 and pre.returncode == -9 and "killed by signal 9" in pre.tail
    assert {o.status for k, o in progress.outcomes.items() if k != "a/pre"} == {"skipped"}


@pytest.mark.e2e
def test_a_kill_mid_write_leaves_no_output_that_counts_as_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    tasks = toy_grid()
    monkeypatch.setenv("TOY_FAULT", "p1:midwrite")
    progress = launch(LocalLauncher, tasks, tmp_path, retries=0)
    assert progress.outcomes["a/p1"].returncode == -9
    folder = tmp_path / "result" / "a"
    assert not (folder / "p1.json").exists()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".p1.json.")]  # the half file, as a temporary
    monkeypatch.delenv("TOY_FAULT")
    assert launch(LocalLauncher, tasks, tmp_path).ok
    assert runs(tmp_path).count("p1") == 1 and runs(tmp_path)[-2:] == ["p1", "m1"]
    assert json.loads((folder / "p1.json").read_text())["settings"] == "s"


@pytest.mark.e2e
def test_real_atomic_checkpoint_write_killed_midway_keeps_the_old_file(tmp_path: Path) -> None:
    """storage.atomic_torch_save, the steps' own writer, SIGKILLed while writing: the earlier checkpoint stays."""
    target = tmp_path / "best.pth"
    script = f"""
import os, signal, sys, torch
sys.path.insert(0, {str(ROOT)!r})
from core import storage
storage.atomic_torch_save({{"v": 1}}, {str(target)!r})
real = torch.save
def dying_save(obj, f):
    f.write(b"PK" + b"x" * 100_000); f.flush(); os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
storage.atomic_torch_save({{"v": 2}}, {str(target)!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9
    import torch
    assert torch.load(target, weights_only=True) == {"v": 1}
    assert sum(1 for _ in tmp_path.glob(".best.pth.*.tmp")) == 1


@pytest.mark.e2e
def test_two_launchers_on_one_grid_keep_every_results_line_whole(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two local launchers at once on the same grid (each task may run twice): every record line is whole."""
    monkeypatch.setenv("TOY_SLEEP", "0.2")
    tasks = toy_grid(record=True)
    results: list[Progress] = []
    threads = [threading.Thread(target=lambda: results.append(launch(LocalLauncher, tasks, tmp_path)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.ok for p in results)
    lines = (tmp_path / "log" / "a" / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]                     # raises on a broken line
    assert 3 <= len(records) <= 6 and {r["name"] for r in records} == {"m0", "m1", "m2"}
    assert all(len(r["pad"]) == 100_000 for r in records)
    out = (tmp_path / "log" / "a" / "run_all.out").read_text()
    assert out.count("\n$ python ") == 12                              # each command's output in one piece


@pytest.mark.e2e
def test_grid_cli_errors_before_any_work(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    blocked = tmp_path / "noray"
    for package in ("ray", "submitit"):  # as if the extras were not installed
        (blocked / package).mkdir(parents=True)
        (blocked / package / "__init__.py").write_text(f"raise ImportError('no {package} here')\n")
    proc = subprocess.run([sys.executable, str(ROOT / "grid.py"), "--profile", "quick", "--dry-run"], cwd=ROOT,
                          env=env | {"PYTHONPATH": f"{blocked}:{ROOT}"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.endswith("dependency levels (5, 21, 23, 3)\n")  # local needs neither
    proc = subprocess.run([sys.executable, str(ROOT / "grid.py"), "--profile", "quick", "--launcher", "ray"],
                          cwd=ROOT, env=env | {"PYTHONPATH": f"{blocked}:{ROOT}"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("error: --launcher ray needs Ray (pip install -r "
                                                    "requirements-dist.txt)")
    proc = subprocess.run([sys.executable, str(ROOT / "grid.py"), "--profile", "quick", "--launcher", "slurm",
                           "--gpus_per_task", "0.5"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "error: --gpus_per_task 0.5: Slurm allocates whole GPUs" in proc.stderr


@pytest.mark.e2e
def test_the_readme_launcher_runs_the_toy_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """launch/README.md's example launcher, executed as written, registered and run like the others."""
    text = (ROOT / "launch" / "README.md").read_text()
    code = text.split("```python\n", 1)[1].split("# launch/__init__.py", 1)[0]
    namespace: dict = {}
    exec("import time\nfrom core.errors import UserError\nfrom launch.base import Launcher\n"
         "from launch.execute import run_with_retries, skipped\nfrom launch.tasks import levels\n" + code, namespace)
    from launch import LAUNCHERS
    with LAUNCHERS.registered(namespace["ToyLauncher"]) as toy_launcher:
        assert LAUNCHERS.get("toy") is toy_launcher
        monkeypatch.setenv("TOY_FAULT", "p2:fail")
        progress = launch(toy_launcher, toy_grid(), tmp_path, toy_pause=0.0)
    assert {k: o.status for k, o in progress.outcomes.items() if o.status != "done"} == {"a/p2": "failed",
                                                                                       "a/m2": "skipped"}
    assert "toy" not in LAUNCHERS


def step_lines(root: Path) -> int:
    """How many steps any run started (each leaves `$ command` in run_all.out)."""
    path = root / "log" / "a" / "run_all.out"
    return path.read_text().count("\n$ python ") if path.exists() else 0


@pytest.mark.e2e
def test_a_finished_grid_reruns_without_starting_a_step(tmp_path: Path) -> None:
    tasks = toy_grid(record=True)
    first = drive(LocalLauncher, tasks, tmp_path)
    assert first.ok and started(first) == {t.id for t in tasks} and step_lines(tmp_path) == 6
    assert len(list((tmp_path / "log" / "a" / ".tasks").glob("*.json"))) == 6   # one record per finished task
    again = drive(LocalLauncher, tasks, tmp_path)
    assert again.ok and started(again) == set() and step_lines(tmp_path) == 6  # no Python started
    assert "6 done (6 up to date by their records), 0 failed" in again.summary()
    # --recheck starts every step (each finds its output up to date and does no work)
    rechecked = drive(LocalLauncher, tasks, tmp_path, recheck=True)
    assert started(rechecked) == {t.id for t in tasks} and step_lines(tmp_path) == 12 and len(runs(tmp_path)) == 6


@pytest.mark.e2e
def test_a_record_keeps_a_task_out_only_while_everything_it_names_matches(tmp_path: Path) -> None:
    tasks = toy_grid(record=True)
    assert drive(LocalLauncher, tasks, tmp_path).ok
    folder = tmp_path / "result" / "a"
    # a deleted output: its task and every task that reads it, nothing else; the steps redo exactly those
    (folder / "p1.json").unlink()
    progress = drive(LocalLauncher, tasks, tmp_path)
    assert progress.ok and started(progress) == {"a/p1", "a/m1"} and runs(tmp_path)[6:] == ["p1", "m1"]
    assert started(drive(LocalLauncher, tasks, tmp_path)) == set()
    # a file rewritten with the same bytes (new mtime and inode): its maker and readers start, and their
    # steps find everything up to date
    body = (folder / "p2.json").read_text()
    (folder / "p2.json").unlink()
    (folder / "p2.json").write_text(body)
    assert started(drive(LocalLauncher, tasks, tmp_path)) == {"a/p2", "a/m2"} and len(runs(tmp_path)) == 8
    # a new file in a task's folders counts as a change too (here: next to p2's output, a pattern of p2's)
    more = [replace(t, files=(*t.files, "result/a/extra/*")) if t.id == "a/p2" else t for t in tasks]
    assert drive(LocalLauncher, more, tmp_path).ok
    (folder / "extra").mkdir()
    (folder / "extra" / "new.bin").write_bytes(b"x")
    assert started(drive(LocalLauncher, more, tmp_path)) == {"a/p2", "a/m2"}
    assert started(drive(LocalLauncher, tasks, tmp_path)) == {"a/p2", "a/m2"}  # other patterns than recorded
    # the results log edited (not only appended to): every task that appends to it
    log = tmp_path / "log" / "a" / "results.jsonl"
    log.write_text(log.read_text().replace('"m0"', '"mX"', 1))
    assert started(drive(LocalLauncher, tasks, tmp_path)) == {"a/m0", "a/m1", "a/m2"}
    with open(log, "a") as f:  # appended to by someone else: still what every task left there
        f.write('{"name": "other"}\n')
    assert started(drive(LocalLauncher, tasks, tmp_path)) == set()


@pytest.mark.e2e
def test_another_config_code_python_or_overwrite_starts_the_steps(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = toy_grid()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "a.json").write_text('{"epochs": 1}')
    assert drive(LocalLauncher, tasks, tmp_path).ok and started(drive(LocalLauncher, tasks, tmp_path)) == set()
    (tmp_path / "config" / "a.json").write_text('{"epochs": 2}')              # the config
    assert started(drive(LocalLauncher, tasks, tmp_path)) == {t.id for t in tasks}
    (tmp_path / "models.py").write_text("# an edit, committed or not\n")       # the code
    records.code_hash.cache_clear()
    assert started(drive(LocalLauncher, tasks, tmp_path)) == {t.id for t in tasks}
    assert started(drive(LocalLauncher, tasks, tmp_path)) == set()
    over = [replace(t, command=t.command + " --overwrite") if t.id == "a/p1" else t for t in tasks]
    assert started(drive(LocalLauncher, over, tmp_path)) == {"a/p1", "a/m1"}  # never left out, nor its readers
    monkeypatch.setattr(records, "VERSION", records.VERSION + 1)               # another record format
    assert started(drive(LocalLauncher, tasks, tmp_path)) == {t.id for t in tasks}
    nameless = [replace(t, files=()) for t in tasks]                           # nothing to check a task by
    assert started(drive(LocalLauncher, nameless, tmp_path)) == {t.id for t in tasks}


@pytest.mark.e2e
def test_a_failed_step_leaves_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOY_FAULT", "p2:fail")
    progress = drive(LocalLauncher, toy_grid(), tmp_path)
    assert progress.outcomes["a/p2"].status == "failed" and progress.outcomes["a/m2"].status == "skipped"
    monkeypatch.delenv("TOY_FAULT")
    assert started(drive(LocalLauncher, toy_grid(), tmp_path)) == {"a/p2", "a/m2"}


def test_every_grid_task_names_its_files_and_they_are_where_the_steps_write() -> None:
    """The patterns launch.tasks gives a real grid's tasks: the folders core/setting.py names, each task's
    split file, and the results log of every attack (the quick profile's 52 tasks)."""
    from core.setting import ModelSetting

    tasks = build_tasks([b.commands() for b in QUICK])
    assert all(t.files for t in tasks)
    root = Path("result/synthetic_purchase_columnfc")
    by = {t.command.split(" --shadow_num")[0]: t for t in tasks}
    pre = by["python pretrain.py config/synthetic_purchase_columnfc.json"]
    assert pre.files == (f"{root}/data_index.json", f"{root}/victim_model/*", f"{root}/shadow_model_*")
    s = ModelSetting("l1unstructure", 0.6, "ppb", 4.0)
    adaptive = next(t for t in tasks if "--defend ppb" in t.command and "--adaptive" in t.command)
    assert f"{s.folder(root, None)}/*" in adaptive.files and f"{root}/shadow_{s.prefix}_model_*" in adaptive.files
    assert f"{root}/mia/{s.prefix}_adaptive/*" in adaptive.files
    assert adaptive.appends == ("log/synthetic_purchase_columnfc/results.jsonl",)
    files = records.Files(ROOT)  # the patterns match the folders as named, and not their neighbours
    for path in (s.folder(root, None) / "best.pth", s.folder(root, 1) / "best.pth"):
        assert fnmatch.fnmatchcase(str(path), f"{root}/shadow_{s.prefix}_model_*") == (path.parent.name
                                                                                     .startswith("shadow"))
    assert not fnmatch.fnmatchcase(f"{root}/shadow_l1unstructure_0.6_ppb_4.0_model_0/x",
                                   f"{root}/shadow_l1unstructure_0.6_model_*")
    assert files.match(["no/such/folder/*"]) == {}


def test_the_code_hash_covers_every_code_folder_and_nothing_else(tmp_path: Path) -> None:
    files = {"grid.py": "a", "pyproject.toml": 'version = "1"', "core/errors.py": "b",  # core/: no __init__
             "pkg/__init__.py": "", "pkg/sub/deep.py": "c", "tests/test_x.py": "d", "data/rows.csv": "e",
             ".venv/lib/site.py": "f", "env/lib/python3.11/site.py": "g", "README.md": "h"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    code_hash = records.code_hash.__wrapped__  # uncached
    base = code_hash(tmp_path)
    for name in files:
        (tmp_path / name).write_text(files[name] + " edited")
        counts = name in ("grid.py", "pyproject.toml", "core/errors.py", "pkg/__init__.py", "pkg/sub/deep.py")
        assert (code_hash(tmp_path) != base) == counts, name
        (tmp_path / name).write_text(files[name])
    assert code_hash(tmp_path) == base
