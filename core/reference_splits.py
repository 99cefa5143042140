"""Which population points each reference model trains on (LiRA / RMIA, docs/lira_rmia.md). Library, no CLI.

Balanced, prefix-stable scheme. References come in complementary PAIRS: pair k draws one random half of
the population from its own generator, seeded by (seed, k) alone; reference 2k trains on that half and
reference 2k + 1 on the other half. Hence
- every point is IN for exactly N/2 of N references when N is even (N//2 or N//2 + 1 when N is odd:
  only the unfinished last pair is lopsided), the "about half" LiRA's online variant needs, for any N;
- reference i depends only on (seed, i // 2, population), so asking for more references later never
  changes the first ones: only the missing ones are trained (`missing_references`).
LiRA's own scheme (a random half of the references per point, by argsort over the N references) is
balanced too but reshuffles everything when N changes, which would throw the trained references away.

Each reference trains on floor(P/2) (even index) or ceil(P/2) (odd index) of the P population points.
The membership matrix is saved as npz with the population indices, the seed and a hash of the population,
so references made for another victim setting or split are refused with a UserError.

Populations: the ONLINE variants need references that saw about half of the targets, so their population
holds the victim's members and non-members plus attacker data (`online_population`); the OFFLINE variants
need references that never saw the victim's data (`offline_population`: disjoint from its train, dev and
test; the existing shadow models qualify).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.errors import UserError
from core.storage import NPZ_ERRORS, atomic_save_npz, read_npz

CHECKPOINT = "best.pth"  # the file every step writes in a model folder
MEMBERSHIP = "membership.npz"  # beside a setting's references: which population points each trained on


def _indices(population_indices: np.ndarray) -> np.ndarray:
    idx = np.asarray(population_indices)
    if idx.ndim != 1 or idx.size < 2 or not np.issubdtype(idx.dtype, np.integer):
        raise UserError(f"a reference population needs at least 2 integer indices, got shape {idx.shape} "
                        f"of {idx.dtype}")
    if np.unique(idx).size != idx.size:
        raise UserError("the reference population lists some point twice")
    return idx.astype(np.int64)


def population_hash(population_indices: np.ndarray) -> str:
    """sha256 (16 hex digits) of the population's indices in order: names the exact population."""
    return hashlib.sha256(_indices(population_indices).tobytes()).hexdigest()[:16]


def pair_half(n_pop: int, seed: int, pair: int) -> np.ndarray:
    """(n_pop,) bool: the random half (floor(n_pop / 2) points) that pair `pair` gives its first reference."""
    perm = np.random.default_rng([seed, pair]).permutation(n_pop)
    half = np.zeros(n_pop, bool)
    half[perm[: n_pop // 2]] = True
    return half


def make_reference_membership(population_indices: np.ndarray, n_refs: int, seed: int) -> np.ndarray:
    """(n_refs, n_pop) bool: row i = the population points reference i trains on (column j = index j)."""
    n_pop = _indices(population_indices).size
    if n_refs < 1:
        raise UserError(f"the number of reference models must be >= 1, got {n_refs}")
    rows = []
    for pair in range((n_refs + 1) // 2):
        half = pair_half(n_pop, seed, pair)
        rows += [half, ~half]
    return np.stack(rows[:n_refs])


def save_reference_membership(path: Path, membership: np.ndarray, population_indices: np.ndarray,
                              seed: int) -> None:
    atomic_save_npz(Path(path), membership=np.asarray(membership, bool),
                    population_indices=_indices(population_indices), seed=np.int64(seed),
                    n_refs=np.int64(len(membership)), population_hash=np.str_(population_hash(population_indices)))


def load_reference_membership(path: Path, population_indices: np.ndarray, seed: int) -> np.ndarray:
    """The saved (n_refs, n_pop) matrix, after checking it was made for this population and seed."""
    path = Path(path)
    try:
        saved = read_npz(path, ("membership", "population_indices", "seed", "population_hash"))
    except FileNotFoundError:
        raise UserError(f"reference membership file {path} not found", "train the references first") from None
    except NPZ_ERRORS as e:  # zip, key and format errors all mean the file cannot be trusted
        raise UserError(f"reference membership file {path} is unreadable ({type(e).__name__})",
                        "delete it and the references beside it, then retrain") from None
    if (str(saved["population_hash"]) != population_hash(population_indices)
            or not np.array_equal(saved["population_indices"], _indices(population_indices))
            or int(saved["seed"]) != seed):
        raise UserError(f"references in {path.parent} were made for another population or seed "
                        f"(another victim setting or split)", "use a separate folder or delete them")
    return saved["membership"].astype(bool)


def reference_membership(path: Path, population_indices: np.ndarray, n_refs: int, seed: int) -> np.ndarray:
    """The first n_refs rows of the folder's membership, growing (and re-saving) the file when it holds fewer.

    The saved rows are checked against a regeneration, so a file edited or written by another scheme is
    refused rather than silently mixed with new references.
    """
    wanted = make_reference_membership(population_indices, n_refs, seed)
    if Path(path).exists():
        saved = load_reference_membership(path, population_indices, seed)
        common = min(len(saved), n_refs)
        if not np.array_equal(saved[:common], wanted[:common]):
            raise UserError(f"reference membership in {path} does not match its seed's scheme",
                            "delete the folder's references and retrain")
        if len(saved) >= n_refs:
            return saved[:n_refs]
    save_reference_membership(path, wanted, population_indices, seed)
    return wanted


def reference_dir(folder: Path, i: int) -> Path:
    return Path(folder) / f"reference_model_{i}"


def missing_references(folder: Path, n: int) -> list[int]:
    """Indices i < n whose checkpoint reference_model_<i>/best.pth does not exist yet (what to train).

    A checkpoint is written atomically (temp + rename) after its model is finished, so a file that exists is
    complete and a killed run resumes by training exactly these.
    """
    return [i for i in range(n) if not (reference_dir(folder, i) / CHECKPOINT).is_file()]


def offline_population(n_pool: int, victim_parts: Sequence[np.ndarray]) -> np.ndarray:
    """Sorted pool indices in none of `victim_parts` (pass the victim's train, dev and test): data the victim
    never saw in any role, for offline references and for RMIA's population points z."""
    seen = np.zeros(n_pool, bool)
    for part in victim_parts:
        part = np.asarray(part, np.int64)
        if part.size and (part.min() < 0 or part.max() >= n_pool):
            raise UserError(f"victim indices fall outside the pool of {n_pool} points", "the split file is stale")
        seen[part] = True
    return np.flatnonzero(~seen)


def online_population(victim_train: np.ndarray, victim_test: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Sorted union of the victim's members, its non-members and `extra` attacker points (LiRA's online
    setting: the references see every target in about half of the runs)."""
    return np.unique(np.concatenate([np.asarray(a, np.int64).ravel() for a in (victim_train, victim_test, extra)]))


def membership_of(membership: np.ndarray, population_indices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(len(points), n_refs) bool: whether each reference trained on each point (AttackInput.reference_in).

    Points outside the population were seen by no reference (all False), as for the offline variants.
    """
    pop = _indices(population_indices)
    points = np.asarray(points, np.int64)
    order = np.argsort(pop)
    pos = np.searchsorted(pop[order], points)
    pos_clipped = np.minimum(pos, pop.size - 1)
    found = pop[order][pos_clipped] == points
    out = np.zeros((points.size, membership.shape[0]), bool)
    out[found] = membership[:, order[pos_clipped[found]]].T
    return out


def victim_populations(n_pool: int, victim_train: np.ndarray, victim_dev: np.ndarray,
                       victim_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(online, offline) populations of one victim: offline = the pool points the victim never saw (the
    shadow pool), online = the victim's members and non-members plus the offline points. The offline
    points are the population z of RMIA in both, so online references saw each z in about half the runs,
    as they saw each target (Pr(z) and Pr(x) are then estimated alike)."""
    offline = offline_population(n_pool, [victim_train, victim_dev, victim_test])
    return online_population(victim_train, victim_test, offline), offline


def reference_split(population_indices: np.ndarray, row: np.ndarray, dev_per_train: float, seed: int,
                    index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool indices (train, dev, test) of reference `index`: train = its IN half (`row`); dev and test come
    from its OUT half, dev sized as the victim's (dev_per_train x train), for the same early stopping.

    Early stopping on OUT points makes the kept epoch depend weakly on them; they stay OUT (never trained
    on), which is all LiRA / RMIA assume. The draw depends on (seed, index) only, so it is stable."""
    pop = _indices(population_indices)
    row = np.asarray(row, bool)
    out = pop[~row][np.random.default_rng([seed, index, 1]).permutation(int((~row).sum()))]
    n_dev = min(max(1, round(dev_per_train * int(row.sum()))), out.size - 1)
    return pop[row], out[:n_dev], out[n_dev:]
