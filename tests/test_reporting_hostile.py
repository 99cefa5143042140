"""A report stays in its folder and skips what it cannot use: hostile or careless records and files, each one
line naming the record (file:line), never a traceback, nothing read from outside the results root nor written
outside --out, and the tables of the good records unchanged."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import run_script
from reporting import build_report, records
from reporting_corpus import CONFIG, N, record, write_png

GOOD = [record(s, a, acc, test, p, sp) for s, p, sp, test in (("original", None, None, 90.0),
                                                               ("l1unstructure_0.7", "l1unstructure", 0.7, 88.0))
        for a, acc in (("samia", 60.0), ("conf", 58.0))]
BASE = GOOD[-1]
# Records a report must refuse: (case, what the note names). Each becomes one line of results.jsonl.
RECORDS: dict[str, tuple[dict[str, Any] | str, str]] = {
    "config_escapes": (BASE | {"config": "../../x"}, "config '../../x': not a plain file-name component"),
    "setting_escapes": (BASE | {"setting": "../../../evil"}, "setting"),
    "attack_with_slash": (BASE | {"attack": "a/b"}, "attack 'a/b'"),
    "pruner_escapes": (BASE | {"setting": "p_0.7", "pruner_name": "../../p"}, "pruner_name"),
    "absolute_config": (BASE | {"config": "/tmp/x"}, "config '/tmp/x'"),
    "string_accuracy": (BASE | {"setting": "s1", "paper_acc": "50"}, "paper_acc '50': not a number (str)"),
    "list_attack": (BASE | {"attack": ["samia"]}, "attack ['samia']"),
    "dict_sparsity": (BASE | {"setting": "s2", "prune_sparsity": {"a": 1}}, "prune_sparsity {'a': 1}"),
    "bool_accuracy": (BASE | {"setting": "s3", "auc": True}, "auc True: not a number (bool)"),
    "negative_sparsity": (BASE | {"setting": "s4", "prune_sparsity": -5}, "prune_sparsity -5: outside [0, 1]"),
    "huge_accuracy": (BASE | {"setting": "s5", "paper_acc": 10 ** 308}, "paper_acc"),
    "overflowing_accuracy": (BASE | {"setting": "s6", "victim_test_acc": 10 ** 400}, "victim_test_acc"),
    "accuracy_250": (BASE | {"setting": "s7", "paper_acc": 250.0}, "paper_acc 250.0: outside [0, 100]"),
    "infinite_auc": ('{"config": "c", "setting": "s8", "attack": "conf", "original": true, "paper_acc": 50, '
                     '"auc": Infinity}', "auc inf: infinite"),
    "deep_nesting": (BASE | {"setting": "s9", "notes": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "nested more than"),
    "parser_deep_nesting": ('{"config": "c", "setting": "s10", "attack": "conf", "x": ' + "[" * 100_000
                            + "]" * 100_000 + "}", "not valid JSON"),
    "line_break_in_text": (BASE | {"setting": "s11", "privacy_note": "a\nb"}, "privacy_note"),
    "dotted_key": (BASE | {"setting": "s12", "split.dev": 0.5}, "split.dev"),
    "defense_mode_tex": (BASE | {"setting": "s13", "defend": "dp", "defense_mode": "$\\frac$"}, "defense_mode"),
    "versions_list": (BASE | {"setting": "s14", "versions": ["0.4.0"]}, "versions"),
    "split_out_of_range": (BASE | {"setting": "s15", "split": {"train": 3.0}}, "split"),
    "not_an_object": ("[1, 2, 3]", "not a JSON object (list)"),
}
# Records whose per-sample files a report must not use: (case, setting, attack, what the note says)
FILES = {
    "scores_outside_root": ("l1unstructure_0.5", "xent", "outside the results root"),
    "scores_absolute_outside": ("l1unstructure_0.5", "hconf", "outside the results root"),
    "scores_wrong_length": ("l1unstructure_0.5", "conf", f"scores has {2 * N - 1} values, not {2 * N}"),
    "scores_nan": ("l1unstructure_0.5", "samia", "scores holds NaN or infinite values"),
    "scores_2d": ("l1unstructure_0.5", "mentr", "scores is 2-D"),
    "scores_member_not_binary": ("l1unstructure_0.5", "entr", "member holds values other than 0 and 1"),
}


def save_scores(path: Path, scores: np.ndarray, member: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, scores=scores, member=member)


def write_log(root: Path, hostile: bool) -> Path:
    """root/log/c/results.jsonl: the good records (with their files), plus every hostile case when asked."""
    member = np.r_[np.ones(N), np.zeros(N)].astype(np.int64)
    rng = np.random.default_rng(0)
    lines = [json.dumps(r) for r in GOOD]
    for r in GOOD:
        save_scores(root / r["scores_file"], rng.normal(size=2 * N) + member, member)
    if hostile:
        for rec, _ in RECORDS.values():
            lines.append(rec if isinstance(rec, str) else json.dumps(rec))
        outside = root.parent / f"{root.name}_outside" / "evil.npz"  # valid scores, outside the results root
        save_scores(outside, rng.normal(size=2 * N) + member, member)
        paths = {"scores_outside_root": f"../{outside.parent.name}/evil.npz",
                 "scores_absolute_outside": str(outside)}
        bad = {"scores_wrong_length": (rng.normal(size=2 * N - 1), member),
               "scores_nan": (np.r_[np.nan, rng.normal(size=2 * N - 1)], member),
               "scores_2d": (rng.normal(size=(2 * N, 2)), member),
               "scores_member_not_binary": (rng.normal(size=2 * N), member * 2)}
        for case, (setting, attack, _) in FILES.items():
            rec = record(setting, attack, 55.0, 89.0, "l1unstructure", 0.5)
            if case in paths:
                rec["scores_file"] = paths[case]
            else:
                save_scores(root / rec["scores_file"], *bad[case])
            lines.append(json.dumps(rec))
        write_png(outside.parent / "grid.png")
        (root / "result" / "nas_x").mkdir(parents=True, exist_ok=True)
        (root / "result" / "nas_x" / "fake.png").write_text("not an image")
        nas = {"config": "nas_x", "setting": "nas_adra", "attack": "adra", "original": True, "P": 4, "batch": 1,
               "activation": "elu", "defense": "none", "sr": 0.0, "mse": 1.0}
        for i, grid in enumerate(("/etc/hostname", str(outside.parent / "grid.png"), "result/nas_x/fake.png")):
            lines.append(json.dumps(nas | {"grad_noise": float(i), "grid": grid}))
    (root / "log" / CONFIG).mkdir(parents=True, exist_ok=True)
    (root / "log" / CONFIG / "results.jsonl").write_text("\n".join(lines) + "\n")
    return root / "log"


def tree(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    clean = tmp_path_factory.mktemp("clean")
    build_report(write_log(clean, hostile=False), clean / "out")
    work = tmp_path_factory.mktemp("hostile")
    root = work / "run"
    write_log(root, hostile=True)
    before = tree(work)
    done = run_script("report.py", "log", "--out", "out", cwd=root, timeout=300)
    return {"clean": clean / "out", "out": root / "out", "done": done, "new": tree(work) - before,
            "lines": (root / "log" / CONFIG / "results.jsonl").read_text().splitlines()}


def note_for(runs: dict[str, Any], line: int) -> list[str]:
    """The stderr lines naming results.jsonl line `line` (1-based)."""
    return [s for s in runs["done"].stderr.splitlines() if re.search(rf"results\.jsonl:{line}: ", s)]


@pytest.mark.e2e  # the report runs as a process (report.py, as a user runs it)
def test_the_run_ends_well_and_writes_only_under_out(runs):
    done = runs["done"]
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert all(p.startswith(str(runs["out"])) for p in runs["new"]), sorted(runs["new"] - {str(runs["out"])})[:5]
    assert all(line.startswith("report: ") and "skipped" in line for line in done.stderr.splitlines()), done.stderr
    assert not (runs["out"] / "nas_adra").exists()  # no grid of the corpus may be copied


@pytest.mark.e2e  # the report runs as a process (report.py, as a user runs it)
@pytest.mark.parametrize("case", list(RECORDS))
def test_a_hostile_record_is_one_line_naming_it(runs, case):
    line = len(GOOD) + list(RECORDS).index(case) + 1
    notes = note_for(runs, line)
    assert len(notes) == 1 and RECORDS[case][1] in notes[0], (case, notes)
    assert len(notes[0]) < 400  # one short line, however long the record


@pytest.mark.e2e  # the report runs as a process (report.py, as a user runs it)
@pytest.mark.parametrize("case", list(FILES))
def test_an_unusable_scores_file_is_one_line_naming_its_record(runs, case):
    line = len(GOOD) + len(RECORDS) + list(FILES).index(case) + 1
    notes = note_for(runs, line)
    assert len(notes) == 1 and FILES[case][2] in notes[0], (case, notes)


@pytest.mark.e2e  # the report runs as a process (report.py, as a user runs it)
def test_the_good_records_tables_are_those_of_a_clean_run(runs):
    for name in ("headline.csv", "original_vs_pruned.csv"):
        clean = pd.read_csv(runs["clean"] / name)
        hostile = pd.read_csv(runs["out"] / name)
        hostile = hostile[hostile["setting"].isin(clean["setting"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(clean, hostile)
    # the setting whose every scores file is unusable (or outside the root) has no ROC curve at all
    assert "- skipped: ROC for c l1unstructure_0.5: no score files" in (runs["out"] / "index.md").read_text()


@pytest.mark.parametrize("grid, why", [("/etc/hostname", "outside the results root"),
                                       ("grid.png", "outside the results root"),
                                       ("fake.png", "not a PNG image")])
@pytest.mark.e2e  # the report runs as a process (report.py, as a user runs it)
def test_an_adra_grid_from_outside_the_root_or_not_a_png_is_not_copied(runs, grid, why):
    notes = [s for s in runs["done"].stderr.splitlines() if grid in s]
    assert len(notes) == 1 and why in notes[0], notes


def test_extra_keys_named_like_the_tables_columns_change_no_table(tmp_path: Path):
    """A record may carry keys the schema does not know (kept in all_results.csv); named like the columns the
    tables make, they must not replace them."""
    clean = tmp_path / "clean"
    build_report(write_log(clean, hostile=False), clean / "out")
    shadowing = {"known_acc": 1.0, "unknown_acc": 2.0, "loss_pct": 3.0, "basic_test_acc": 4.0, "kept": "x",
                 "reason": "y", "victim_level": 5.0, "shadow_level": 6.0, "series": "z", "defense": "w"}
    root = tmp_path / "shadowing"
    log = write_log(root, hostile=False)
    lines = (log / CONFIG / "results.jsonl").read_text().splitlines()
    (log / CONFIG / "results.jsonl").write_text("\n".join(json.dumps(json.loads(x) | shadowing) for x in lines))
    build_report(log, root / "out")
    for name in ("headline.csv", "defense_tradeoff.csv", "table1_unknown.csv", "original_vs_pruned.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(clean / "out" / name), pd.read_csv(root / "out" / name))


def test_names_that_may_become_paths():
    ok = ["digits_columnfc", "l1unstructure_0.6_dpsgd_1.0_lr0.01-mom0", "iter_prunetxt_0.6_slide_re_s1-w15", "a.b"]
    bad = ["", ".", "..", "../x", "a/b", "a\\b", "/etc", ".hidden", "a b", "a\nb", "a$b", "x" * 129, 7, None]
    assert all(records.safe_name(n) for n in ok)
    assert not any(records.safe_name(n) for n in bad)


def test_files_are_read_only_from_under_the_results_root(tmp_path: Path):
    from reporting.files import within_root

    root = tmp_path / "root"
    (root / "result").mkdir(parents=True)
    (tmp_path / "secret.npz").write_bytes(b"x")
    (root / "result" / "link.npz").symlink_to(tmp_path / "secret.npz")  # a link inside, pointing out
    (root / "result" / "ok.npz").write_bytes(b"x")
    assert within_root(root, "result/ok.npz") == (root / "result" / "ok.npz").resolve()
    assert within_root(root, str(root / "result" / "ok.npz")) is not None  # absolute, but under the root
    for bad in ("../secret.npz", str(tmp_path / "secret.npz"), "/etc/hostname", "result/link.npz",
                "result/../../secret.npz", "a\x00b", "", None, 5):
        assert within_root(root, bad) is None, bad
    # the mem-scores and the split a figure reads, linked from outside: not read
    from reporting.files import member_memscores
    outside = tmp_path / "outside"
    outside.mkdir()
    np.savez(outside / "scores.npz", per_pool=np.linspace(0, 1, 10))
    (outside / "data_index.json").write_text(json.dumps({"victim_train": [0, 1, 2]}))
    (root / "result" / "c" / "memscore").mkdir(parents=True)
    (root / "result" / "c" / "data_index.json").write_text(json.dumps({"victim_train": [0, 1, 2]}))
    (root / "result" / "c" / "memscore" / "scores.npz").symlink_to(outside / "scores.npz")
    assert member_memscores(root, "c") == (None, None)
    (root / "result" / "c" / "memscore" / "scores.npz").unlink()
    np.savez(root / "result" / "c" / "memscore" / "scores.npz", per_pool=np.linspace(0, 1, 10))
    assert member_memscores(root, "c")[0].tolist() == pytest.approx([0, 1 / 9, 2 / 9])
    (root / "result" / "c" / "data_index.json").unlink()
    (root / "result" / "c" / "data_index.json").symlink_to(outside / "data_index.json")
    assert member_memscores(root, "c") == (None, None)


def test_a_results_file_linked_from_outside_the_log_folder_is_not_read(tmp_path: Path):
    log = tmp_path / "log"
    (log / "good").mkdir(parents=True)
    (log / "good" / "results.jsonl").write_text(json.dumps(GOOD[0]) + "\n")
    (tmp_path / "elsewhere.jsonl").write_text(json.dumps(GOOD[1]) + "\n")
    (log / "linked").mkdir()
    (log / "linked" / "results.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    found, notes = records.read_records(log)
    assert [s.record.attack for s in found] == [GOOD[0]["attack"]]
    assert len(notes) == 1 and "linked/results.jsonl: not a file inside" in notes[0]


@pytest.mark.parametrize("per_pool, rows, why", [
    (np.linspace(0, 1, 10), [0, -1, 2], "victim_train is not a list of row numbers"),  # -1 would wrap around
    (np.linspace(0, 1, 10), [0, 1.5], "victim_train is not a list of row numbers"),
    (np.linspace(0, 1, 10), {"a": 1}, "victim_train is not a list of row numbers"),
    (np.linspace(0, 1, 10), [0, 10], "10 rows, fewer than the split's victim_train needs"),
    (np.ones((5, 2)), [0, 1], "per_pool is 2-D"),
    (np.r_[np.inf, np.ones(4)], [0, 1], "per_pool holds infinite values"),
])
def test_a_memscore_table_or_split_a_figure_cannot_use_is_a_reason(tmp_path: Path, per_pool, rows, why):
    from reporting.files import member_memscores

    (tmp_path / "result" / "c" / "memscore").mkdir(parents=True)
    np.savez(tmp_path / "result" / "c" / "memscore" / "scores.npz", per_pool=per_pool)
    (tmp_path / "result" / "c" / "data_index.json").write_text(json.dumps({"victim_train": rows}))
    mem, reason = member_memscores(tmp_path, "c")
    assert mem is None and why in reason
