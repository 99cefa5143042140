"""core/reference_splits.py: balanced pairs, prefix stability as N grows, only missing references reported, the
saved fingerprint refusing another population or seed, offline / online populations, membership lookup."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from core.reference_splits import (
    load_reference_membership,
    make_reference_membership,
    membership_of,
    missing_references,
    offline_population,
    online_population,
    reference_dir,
    reference_membership,
    save_reference_membership,
)

POP = np.arange(100, 301)  # 201 points: odd, so the halves differ by one


def test_pairs_are_complementary_and_every_point_is_in_half() -> None:
    m = make_reference_membership(POP, 8, seed=3)
    assert m.shape == (8, 201) and m.dtype == bool
    np.testing.assert_array_equal(m[0::2], ~m[1::2])
    np.testing.assert_array_equal(m.sum(axis=0), 4)  # exactly N/2 for even N
    np.testing.assert_array_equal(m.sum(axis=1), [100, 101] * 4)
    # odd N: only the unfinished pair is lopsided, so each point is IN for 3 or 4 of 7
    assert set(make_reference_membership(POP, 7, seed=3).sum(axis=0)) == {3, 4}
    # pairs really differ (not one half repeated)
    assert 0.3 < np.mean(m[0] == m[2]) < 0.7


def test_more_references_keep_the_first_ones() -> None:
    small, large = make_reference_membership(POP, 5, seed=1), make_reference_membership(POP, 16, seed=1)
    np.testing.assert_array_equal(large[:5], small)
    assert not np.array_equal(make_reference_membership(POP, 5, seed=2), small)


def test_reference_membership_file_grows_without_changing(tmp_path: Path) -> None:
    path = tmp_path / "refs" / "membership.npz"
    first = reference_membership(path, POP, 4, seed=0)
    grown = reference_membership(path, POP, 10, seed=0)
    np.testing.assert_array_equal(grown[:4], first)
    assert load_reference_membership(path, POP, seed=0).shape == (10, 201)
    np.testing.assert_array_equal(reference_membership(path, POP, 3, seed=0), first[:3])  # fewer: a prefix
    assert load_reference_membership(path, POP, seed=0).shape == (10, 201)  # the file is not shrunk


def test_only_missing_references_are_returned(tmp_path: Path) -> None:
    for i in (0, 1, 3):
        reference_dir(tmp_path, i).mkdir(parents=True)
        (reference_dir(tmp_path, i) / "best.pth").write_bytes(b"x")
    reference_dir(tmp_path, 2).mkdir()  # a folder without its checkpoint: a killed run
    assert missing_references(tmp_path, 4) == [2]
    assert missing_references(tmp_path, 6) == [2, 4, 5]
    assert missing_references(tmp_path / "none", 2) == [0, 1]


def test_another_population_or_seed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "membership.npz"
    save_reference_membership(path, make_reference_membership(POP, 4, 0), POP, seed=0)
    with pytest.raises(UserError, match="another population or seed"):
        load_reference_membership(path, POP[:-1], seed=0)
    with pytest.raises(UserError, match="another population or seed"):
        load_reference_membership(path, POP[::-1], seed=0)  # same set, other order: other columns
    with pytest.raises(UserError, match="another population or seed"):
        reference_membership(path, POP, 4, seed=1)
    tampered = make_reference_membership(POP, 4, 0)
    tampered[1, 0] = ~tampered[1, 0]
    save_reference_membership(path, tampered, POP, seed=0)
    with pytest.raises(UserError, match="does not match"):
        reference_membership(path, POP, 6, seed=0)
    path.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="unreadable"):
        load_reference_membership(path, POP, seed=0)
    with pytest.raises(UserError, match="not found"):
        load_reference_membership(tmp_path / "absent.npz", POP, seed=0)


def test_bad_population_or_count_is_a_user_error() -> None:
    with pytest.raises(UserError, match=">= 1"):
        make_reference_membership(POP, 0, seed=0)
    with pytest.raises(UserError, match="twice"):
        make_reference_membership(np.array([1, 2, 2]), 2, seed=0)
    with pytest.raises(UserError, match="at least 2 integer"):
        make_reference_membership(np.array([0.5, 1.5]), 2, seed=0)


def test_populations_and_membership_lookup() -> None:
    train, dev, test = np.array([0, 5, 9]), np.array([2]), np.array([7, 3])
    off = offline_population(12, [train, dev, test])
    np.testing.assert_array_equal(off, [1, 4, 6, 8, 10, 11])  # by hand: 0..11 minus {0, 2, 3, 5, 7, 9}
    with pytest.raises(UserError, match="outside the pool"):
        offline_population(8, [train])
    on = online_population(train, test, off[:2])
    np.testing.assert_array_equal(on, [0, 1, 3, 4, 5, 7, 9])
    m = make_reference_membership(on, 4, seed=0)
    got = membership_of(m, on, np.array([9, 1, 6]))  # 6 is not in the online population
    np.testing.assert_array_equal(got[0], m[:, 6])   # 9 is the 7th (index 6) entry of `on`
    np.testing.assert_array_equal(got[1], m[:, 1])
    np.testing.assert_array_equal(got[2], False)
    unsorted = on[::-1].copy()  # lookup by index value, not by position, whatever the population's order
    m2 = make_reference_membership(unsorted, 4, seed=0)
    np.testing.assert_array_equal(membership_of(m2, unsorted, np.array([0]))[0], m2[:, -1])
