"""attackers/api.py: every registered attack runs on exactly the inputs its class says it reads, each of those is
needed (a missing one is one line naming its keyword), the metrics are mia.py's, and the README's "Python API"
runs as written (its LiRA scores against scipy's normal densities)."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from attackers import ATTACKS, Attack, AttackInput
from attackers.api import KEYWORDS, MissingInput, run_attack
from conftest import ROOT
from core.results import AttackRecord

N, C, K, R, M, D = 120, 3, 240, 8, 60, 5  # targets, classes, shadow rows, references, population points, features


@pytest.fixture(scope="module")
def every_input() -> dict:
    """One value for every keyword the API takes, and a victim to query (a fixed linear model on D features)."""
    rng = np.random.default_rng(0)
    weights = torch.from_numpy(rng.normal(0, 1, (D, C))).float()
    inputs = torch.from_numpy(rng.normal(0, 1, (N, D))).float()
    query = lambda x: torch.softmax(x @ weights, dim=1)
    reference_in = np.argsort(rng.random((N, R)), axis=1) < R // 2
    arrays = {
        "sens": rng.random((N, C)), "shadow_probs": softmax(rng.normal(0, 2, (K, C)), axis=1),
        "shadow_labels": rng.integers(0, C, K), "shadow_member": np.arange(K) % 2, "shadow_sens": rng.random((K, C)),
        "reference_stats": rng.normal(0, 1, (N, R)) + reference_in, "reference_in": reference_in,
        "population_stat": rng.normal(0, 1, M), "population_ref_stats": rng.normal(0, 1, (M, R)),
        "population_ref_in": np.argsort(rng.random((M, R)), axis=1) < R // 2,
        "reference_probs": softmax(rng.normal(0, 2, (20, C)), axis=1),
    }
    return {"probs": query(inputs).numpy().astype(np.float64), "labels": rng.integers(0, C, N),
            "member": np.arange(N) < N // 2, "inputs": inputs, "query": query, "arrays": arrays}


def quick(attack: type[Attack]) -> dict:
    """One epoch for the learned attacks: their settings are read off their config class."""
    fields = {f.name for f in dataclasses.fields(attack.config_cls)} if attack.config_cls else set()
    return {"epochs": 1} if "epochs" in fields else {}


def declared(attack: type[Attack], data: dict, drop: str | None = None) -> dict:
    """run_attack's arguments holding exactly what `attack` says it reads (minus `drop`); what its `prepare`
    makes comes from the query instead."""
    queries = attack.prepare is not Attack.prepare
    keyword = {name: kw for name, (kw, _) in KEYWORDS.items()}
    given = {keyword[f]: data["arrays"][keyword[f]] for f in attack.reads if f != drop}
    if queries:
        given = {k: v for k, v in given.items() if k != "reference_probs"}
        if drop != "query":
            given |= {"inputs": data["inputs"], "query": data["query"]}
    return {"probs": data["probs"], "labels": data["labels"], "member": data["member"], "n_bootstrap": 20,
            "settings": quick(attack)} | given


def test_every_input_field_has_a_keyword():
    assert set(KEYWORDS) == {f.name for f in dataclasses.fields(AttackInput)} - {"num_cls"}
    for attack in ATTACKS:
        assert set(attack.reads) <= set(KEYWORDS), attack.name


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_runs_on_exactly_what_it_reads(name: str, every_input: dict):
    """No other field is given (each is None), so an attack reading an undeclared field fails here."""
    attack = ATTACKS.get(name)
    out = run_attack(name, **declared(attack, every_input))
    assert list(out) == list(attack.results())
    member = every_input["member"]
    record_keys = set(AttackRecord("c", "s", "a").to_json())
    for audit in out.values():
        assert audit.scores.shape == audit.decisions.shape == (N,)
        assert audit.metrics["auc"] == pytest.approx(100 * roc_auc_score(member, audit.scores), abs=1e-9)
        assert audit.metrics["acc"] == pytest.approx(100 * np.mean(audit.decisions == member), abs=1e-9)
        assert (audit.metrics["n_members"], audit.metrics["n_nonmembers"]) == (N // 2, N - N // 2)
        assert audit.metrics["auc_ci_low"] <= audit.metrics["auc"] <= audit.metrics["auc_ci_high"]
        assert set(audit.metrics) <= record_keys  # the fields mia.py records


@pytest.mark.parametrize("name", ATTACKS.names())
def test_each_input_an_attack_reads_is_needed(name: str, every_input: dict):
    attack = ATTACKS.get(name)
    queries = attack.prepare is not Attack.prepare
    for field in attack.reads:
        keyword = KEYWORDS[field][0]
        drop = "query" if queries and field == "reference_probs" else field
        with pytest.raises(MissingInput) as e:
            run_attack(name, **declared(attack, every_input, drop=drop))
        line = str(e.value)
        assert "\n" not in line and line.startswith(f"{name} needs {keyword}=")
        assert ("or query= and inputs=" in line) == queries


def test_too_few_references_unknown_settings_and_inputs_are_one_line(every_input: dict):
    base = declared(ATTACKS.get("lira_online"), every_input)
    with pytest.raises(MissingInput, match=r"^lira_online needs at least 4 reference models; reference_stats has 3 "):
        run_attack("lira_online", **base | {"reference_stats": base["reference_stats"][:, :3],
                                            "reference_in": base["reference_in"][:, :3]})
    with pytest.raises(ValueError, match=r"^lira_online has no setting alhpa \(its settings: variant, "):
        run_attack("lira_online", **base | {"settings": {"alhpa": 0.1}})
    with pytest.raises(ValueError, match=r"^unknown input refernce_in "):
        run_attack("lira_online", **base | {"refernce_in": base["reference_in"]})
    with pytest.raises(ValueError, match="not both"):
        run_attack("threshold", **declared(ATTACKS.get("threshold"), every_input), logits=every_input["probs"])
    with pytest.raises(TypeError, match="bogus"):  # access fills TargetAccess's own fields, nothing else
        run_attack("blindmi", **declared(ATTACKS.get("blindmi"), every_input), access={"bogus": 1})
    with pytest.raises(ValueError, match="member must hold both 0 and 1"):
        run_attack("lira_online", **base | {"member": np.ones(N)})


def test_logits_give_what_their_softmax_gives(every_input: dict):
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (N, C))
    args = declared(ATTACKS.get("threshold"), every_input) | {"probs": None}
    from_logits = run_attack("threshold", **args, logits=logits)
    from_probs = run_attack("threshold", **args | {"probs": softmax(logits, axis=1)})
    for name, audit in from_logits.items():
        np.testing.assert_allclose(audit.scores, from_probs[name].scores, rtol=1e-12, atol=1e-12)


def test_the_readme_python_api_runs_as_written(capsys: pytest.CaptureFixture[str]):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2 and len([line for line in blocks[1].splitlines() if line.strip()]) == 5
    namespace: dict = {}
    exec("\n".join(blocks), namespace)
    lira, member = namespace["lira"], namespace["member"]
    # LiRA online by an independent route: per target, scipy's normal log-densities of the victim's statistic
    # under the IN and the OUT references' median and (ddof 0) spread
    stats, ins, probs, labels = (namespace[k] for k in ("reference_stats", "reference_in", "probs", "labels"))
    p_y = probs[np.arange(len(labels)), labels]
    phi = np.log(p_y) - np.log(1 - p_y)
    expected = [norm.logpdf(x, np.median(s[i]), s[i].std()) - norm.logpdf(x, np.median(s[~i]), s[~i].std())
                for x, s, i in zip(phi, stats, ins)]
    np.testing.assert_allclose(lira.scores, expected, rtol=1e-9, atol=1e-9)
    assert lira.metrics["auc"] == pytest.approx(100 * roc_auc_score(member, lira.scores), abs=1e-9)
    assert lira.metrics["auc"] > 95  # per-point calibration sees the 1.5 shift through difficulties of spread 2
    m = lira.metrics
    assert capsys.readouterr().out == (f"AUC {m['auc']:.1f} %, TPR at 1 % FPR {m['tpr_at_1pct_fpr']:.1f} % "
                                       "(500 members, 500 non-members, 16 references)\n")
