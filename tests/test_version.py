"""The code in every record (docs/design.md §9.4): the project's version and commit, `--version` on every step,
one note when a step reuses outputs made by other code, and --strict_version refusing them instead."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_script
from core import provenance, version
from core.errors import UserError
from core.results import AttackRecord

HERE = {"prune_mia": "0.4.0", "commit": "abc1234"}
OLD = {"prune_mia": "0.3.0", "commit": "05348e4"}
@pytest.fixture
def this_code(monkeypatch: pytest.MonkeyPatch):
    """This process is prune-mia 0.4.0 at commit abc1234, and no reuse is counted yet."""
    monkeypatch.setattr(version, "_CODE", HERE)
    provenance.REUSE.start(strict=False)
    yield
    provenance.REUSE.start(strict=False)


def test_the_version_is_pyprojects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert version.VERSION == project["version"] == "0.4.0"


@pytest.mark.parametrize("step", ["pretrain", "prune", "mia", "refs", "memscore", "nas_privacy", "report", "grid",
                                  "bench"])
def test_every_step_answers_version(step: str, this_code, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(step)
    monkeypatch.setattr(sys, "argv", [f"{step}.py", "--version"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0
    assert capsys.readouterr().out == "prune-mia 0.4.0 (commit abc1234)\n"


def test_every_step_is_covered() -> None:
    from test_layers import STEPS
    covered = set(test_every_step_answers_version.pytestmark[0].args[1])
    assert covered == STEPS


def test_records_carry_the_code(this_code) -> None:
    record = provenance.new_record("original", {"lr": 0.1}, None)
    assert record["code"] == HERE and record["version"] == 2
    from experiment import versions
    v = versions()
    assert v == {"torch": torch.__version__, "python": v["python"], **HERE}
    back = AttackRecord.from_json(AttackRecord("c", "original", "conf", paper_acc=50.0, versions=v).to_json())
    assert back.versions == v and not back.extra


def _verify(path: str, code: dict | None) -> str | None:
    record = provenance.new_record("original", {"lr": 0.1}, None)
    if code is None:
        del record["code"]  # made before versions were recorded
    else:
        record["code"] = code
    return provenance.verify(path, record, provenance.Expected({"lr": 0.1}, None), "rerun with --overwrite")


def test_reusing_other_code_is_one_note(this_code) -> None:
    assert _verify("a.pth", HERE) is None and provenance.REUSE.note() is None  # this code: nothing to say
    for path, code in (("b.pth", OLD), ("c.pth", OLD), ("b.pth", OLD), ("d.npz", None),
                       ("e.pth", {"prune_mia": "0.4.0", "commit": "abc1234-dirty"})):
        assert _verify(path, code) is None  # reused all the same
    assert provenance.REUSE.note() == (
        "note: reusing 4 outputs made by other code (2 by prune-mia 0.3.0 (commit 05348e4), 1 by prune-mia 0.4.0 "
        "(commit abc1234-dirty), 1 by prune-mia before 0.4.0); this is prune-mia 0.4.0 (commit abc1234); "
        "--strict_version refuses them")
    provenance.REUSE.start(strict=False)
    _verify("b.pth", OLD)
    assert provenance.REUSE.note() == ("note: reusing 1 output made by prune-mia 0.3.0 (commit 05348e4); this is "
                                       "prune-mia 0.4.0 (commit abc1234); --strict_version refuses them")


def test_strict_version_refuses_and_stale_or_refused_outputs_are_not_counted(this_code) -> None:
    provenance.REUSE.start(strict=True)
    assert _verify("a.pth", HERE) is None
    with pytest.raises(UserError) as e:
        _verify("b.pth", OLD)
    assert e.value.line() == ("error: b.pth was made by prune-mia 0.3.0 (commit 05348e4); this is prune-mia 0.4.0 "
                              "(commit abc1234) (rerun with --overwrite, or drop --strict_version to reuse it)")
    provenance.REUSE.start(strict=False)
    record = provenance.new_record("pruned", {"lr": 0.1}, None, {"original": "aa"})
    record["code"] = OLD
    stale = provenance.Expected({"lr": 0.1}, None, {"original": "bb"})
    assert provenance.verify("s.pth", record, stale, "x") == "the original it was derived from was remade since"
    with pytest.raises(UserError):
        provenance.verify("r.pth", record, provenance.Expected({"lr": 0.2}, None, {"original": "aa"}), "x")
    assert provenance.REUSE.note() is None  # neither was reused


def test_an_architecture_found_by_other_code_is_noted(this_code, tmp_path: Path) -> None:
    """nas_privacy.py's amia / adra reuse the searched architecture: counted like any other output."""
    from nas.supernet import RECORD, Genotype, SpaceConfig, load_genotype, save_genotype
    space = SpaceConfig(P=2, C=4, activation="relu")
    op = space.derivable_ops()[0]
    g = Genotype(2, 4, "relu", (op, op), ((0,), (0, 1)), 1, True)
    expected = provenance.Expected({"seed": 7}, None, kind="nas_search")
    save_genotype(g, tmp_path / "g.json", provenance.new_record("nas_search", {"seed": 7}, None))
    assert load_genotype(tmp_path / "g.json", space, "search", expected)[0] == g
    assert provenance.REUSE.note() is None
    data = json.loads((tmp_path / "g.json").read_text())
    assert data[RECORD]["code"] == HERE
    data[RECORD]["code"] = OLD
    (tmp_path / "g.json").write_text(json.dumps(data))
    assert load_genotype(tmp_path / "g.json", space, "search", expected)[0] == g
    assert provenance.REUSE.other == {str(tmp_path / "g.json"): "prune-mia 0.3.0 (commit 05348e4)"}


# ------------------------------------------------------------------------------- git checkouts, end to end
def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()


@pytest.mark.e2e
def test_the_commit_of_a_checkout_clean_dirty_and_outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "tracked.py").write_text("x = 1\n")
    git(repo, "add", "tracked.py")
    git(repo, "commit", "-q", "-m", "one")
    head = git(repo, "rev-parse", "--short", "HEAD")
    assert len(head) >= 7 and version.commit_of(repo) == head
    (repo / "result.npz").write_text("an output, untracked")
    assert version.commit_of(repo) == head                 # untracked files are not the code
    (repo / "tracked.py").write_text("x = 2\n")
    assert version.commit_of(repo) == head + "-dirty"      # a tracked file changed
    git(repo, "commit", "-q", "-am", "two")
    assert version.commit_of(repo) == git(repo, "rev-parse", "--short", "HEAD") != head
    (repo / "copy").mkdir()
    assert version.commit_of(repo / "copy") == "unknown"   # inside another checkout, not its top
    assert version.commit_of(tmp_path) == "unknown"        # no checkout at all
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert version.commit_of(repo) == "unknown"            # no git


@pytest.mark.e2e
def test_a_rerun_notes_reused_outputs_of_other_code_and_strict_version_refuses(in_tmp: Path) -> None:
    fast = ("config/digits_columnfc.json", "--shadow_num", "1", "--epochs", "2", "--quiet", "--threads", "1")
    assert run_script("pretrain.py", "cpu", *fast, cwd=in_tmp).returncode == 0
    victim, shadow = (in_tmp / "result/digits_columnfc" / f / "best.pth" for f in ("victim_model", "shadow_model_0"))
    for path, code in ((victim, OLD), (shadow, None)):  # as 0.3.0 left it; as code before versions left it
        ckpt = torch.load(path, weights_only=True)
        ckpt["provenance"].pop("code")
        if code:
            ckpt["provenance"]["code"] = code
        torch.save(ckpt, path)
    shown = run_script("mia.py", "--version", cwd=in_tmp)  # this checkout now (HEAD may have moved since start)
    assert shown.returncode == 0 and shown.stdout.startswith("prune-mia 0.4.0 (commit ")
    here = shown.stdout.strip()
    rerun = run_script("pretrain.py", "cpu", *fast, cwd=in_tmp)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip().splitlines()[-1] == (
        "note: reusing 2 outputs made by other code (1 by prune-mia 0.3.0 (commit 05348e4), 1 by prune-mia before "
        f"0.4.0); this is {here}; --strict_version refuses them")
    before = victim.read_bytes()
    strict = run_script("pretrain.py", "cpu", *fast, "--strict_version", cwd=in_tmp)
    assert strict.returncode == 2 and strict.stderr.strip().splitlines() == [
        "error: result/digits_columnfc/victim_model/best.pth was made by prune-mia 0.3.0 (commit 05348e4); this is "
        f"{here} (rerun with --overwrite to replace it, or drop --strict_version to reuse it)"]
    assert victim.read_bytes() == before  # nothing touched
