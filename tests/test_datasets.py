"""datasets.py: every loader on small files written here in the real on-disk formats, the artifact's split
sizes, the split file, the synthetic generator and the one-line errors."""
from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

import datasets
from core.errors import UserError
from datasets import DATASETS, Splits, load_pool, load_splits, make_splits, save_splits, splits_for

# ------------------------------------------------------------------------------------------ file writers


def py2_pickle(obj: object, path: Path) -> None:
    """Protocol 2 with numpy 1.x module names, as the official CIFAR batches were written."""
    blob = pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(blob)


def cifar_rows(n: int) -> np.ndarray:
    """n images as (n, 3072) uint8 CHW rows; image 0 has known pixels at (c, h, w) = (0,0,0), (1,5,7), (2,1,3)."""
    img = np.full((n, 3, 32, 32), 100, dtype=np.uint8)
    img[0, 0, 0, 0], img[0, 1, 5, 7], img[0, 2, 1, 3] = 255, 0, 51
    return img.reshape(n, 3072)


def write_cifar10(root: Path) -> Path:
    folder = root / "cifar10-data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    # Two images per file; batch k (1-based) holds labels 2k-2, 2k-1 and the test batch 0, 1 -> all 10 classes.
    for k in range(1, 6):
        py2_pickle({"batch_label": f"training batch {k} of 5", "labels": [2 * k - 2, 2 * k - 1],
                    "data": cifar_rows(2), "filenames": ["a.png", "b.png"]}, folder / f"data_batch_{k}")
    py2_pickle({"batch_label": "testing batch 1 of 1", "labels": [9, 0], "data": cifar_rows(2),
                "filenames": ["c.png", "d.png"]}, folder / "test_batch")
    py2_pickle({"label_names": [str(i) for i in range(10)], "num_cases_per_batch": 2, "num_vis": 3072},
               folder / "batches.meta")
    return folder


def write_cifar100(root: Path) -> None:
    folder = root / "cifar100-data" / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, labels in (("train", list(range(100))), ("test", [99, 5])):
        py2_pickle({"filenames": ["x.png"] * len(labels), "batch_label": split, "fine_labels": labels,
                    "coarse_labels": [lab // 5 for lab in labels], "data": cifar_rows(len(labels))},
                   folder / split)
    py2_pickle({"fine_label_names": [str(i) for i in range(100)],
                "coarse_label_names": [str(i) for i in range(20)]}, folder / "meta")


def write_svhn(root: Path) -> None:
    import scipy.io

    folder = root / "svhn-data"
    folder.mkdir(parents=True)
    for name, labels in (("train_32x32.mat", [10, 1, 2, 3, 4]), ("test_32x32.mat", [5, 6, 7, 8, 9])):
        x = np.full((32, 32, 3, len(labels)), 128, dtype=np.uint8)  # (H, W, C, N) as in the official files
        x[1, 3, 2, 0], x[4, 0, 1, 0] = 255, 0
        scipy.io.savemat(folder / name, {"X": x, "y": np.array(labels, dtype=np.uint8).reshape(-1, 1)})


KATHER_CLASSES = ["01_TUMOR", "02_STROMA", "03_COMPLEX", "04_LYMPHO", "05_DEBRIS", "06_MUCOSA", "07_ADIPOSE",
                  "08_EMPTY"]


def write_chmnist(root: Path) -> None:
    from PIL import Image

    folder = root / datasets.CHMNIST_DIR
    for label, cls in reversed(list(enumerate(KATHER_CLASSES))):  # created out of order: labels come from sorting
        (folder / cls).mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (40, 40), (255, 0, 128 - label)).save(folder / cls / f"tile_{j}.tif")
    (folder / "notes.txt").write_text("not a class folder")


def tabular(n: int, d: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """0/1 features and 0-based labels covering every class."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, (n, d)).astype(np.uint8), np.arange(n) % classes


def write_csv(path: Path, table: np.ndarray, fmt: str = "%d") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, table, fmt=fmt, delimiter=",")


# ------------------------------------------------------------------------------------------ image loaders


def test_registry_names() -> None:
    assert set(DATASETS) == {"cifar10", "cifar100", "svhn", "chmnist", "location", "texas100", "purchase100",
                             "digits", "synthetic_purchase", "cinic10", "mnist"}


def test_cifar10_pool_order_layout_and_normalisation(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    pool = load_pool("cifar10", tmp_path, input_dim=3, num_cls=10)
    assert pool.x.dtype == torch.float32 and pool.y.dtype == torch.int64 and pool.name == "cifar10"
    assert pool.x.shape == (12, 3, 32, 32)
    assert pool.y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 0]  # train batches 1..5, then test
    # By hand: (255/255 - 0.4914)/0.2023 = 2.514088; (0 - 0.4822)/0.1994 = -2.418255;
    # (51/255 - 0.4465)/0.2010 = -1.226368.
    assert pool.x[0, 0, 0, 0].item() == pytest.approx(2.514088, abs=1e-5)
    assert pool.x[0, 1, 5, 7].item() == pytest.approx(-2.418255, abs=1e-5)
    assert pool.x[0, 2, 1, 3].item() == pytest.approx(-1.226368, abs=1e-5)
    assert pool.x[10, 0, 0, 0].item() == pytest.approx(2.514088, abs=1e-5)  # first test image


def test_cifar100_uses_cifar10_stats_and_fine_labels(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    pool = load_pool("cifar100", tmp_path, input_dim=3, num_cls=100)
    assert pool.x.shape == (102, 3, 32, 32)
    assert pool.y.tolist() == list(range(100)) + [99, 5]
    assert pool.x[0, 0, 0, 0].item() == pytest.approx(2.514088, abs=1e-5)


def test_cifar_also_found_directly_in_data_root(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path)
    folder.rename(tmp_path / "cifar-10-batches-py")
    assert len(load_pool("cifar10", tmp_path, input_dim=3, num_cls=10).y) == 12


def test_svhn_transpose_label_10_and_normalisation(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    pool = load_pool("svhn", tmp_path, input_dim=3, num_cls=10)
    assert pool.x.shape == (10, 3, 32, 32)
    assert pool.y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # label 10 is digit 0; train before test
    # X[h=1, w=3, c=2] = 255 -> x[c=2, h=1, w=3] = (1 - 0.5)/0.5 = 1; 0 -> -1; 128 -> 0.00392.
    assert pool.x[0, 2, 1, 3].item() == pytest.approx(1.0)
    assert pool.x[0, 1, 4, 0].item() == pytest.approx(-1.0)
    assert pool.x[0, 0, 0, 0].item() == pytest.approx(128 / 255 * 2 - 1, abs=1e-6)


def test_chmnist_image_folder_resize_and_imagenet_stats(tmp_path: Path) -> None:
    write_chmnist(tmp_path)
    pool = load_pool("chmnist", tmp_path, input_dim=3, num_cls=8)
    assert pool.x.shape == (16, 3, 32, 32)
    assert pool.y.tolist() == [i // 2 for i in range(16)]  # sorted folder names, 01_TUMOR = 0
    # Solid colours survive the resize. By hand: (1 - 0.485)/0.229 = 2.248908; -0.456/0.224 = -2.035714;
    # 01_TUMOR blue 128: (128/255 - 0.406)/0.225 = 0.426492.
    assert pool.x[0, 0].flatten().tolist() == pytest.approx([2.248908] * 1024, abs=1e-5)
    assert pool.x[0, 1, 7, 9].item() == pytest.approx(-2.035714, abs=1e-5)
    assert pool.x[0, 2, 31, 31].item() == pytest.approx(0.426492, abs=1e-5)


def test_digits_scaled_to_minus_one_one() -> None:
    pool = load_pool("digits", Path("/nonexistent"), input_dim=64, num_cls=10)
    assert pool.x.shape == (1797, 1, 8, 8) and pool.y.shape == (1797,)
    # sklearn's first digit starts 0, 0, 5, 13: (5/16 - 0.5)/0.5 = -0.375, (13/16 - 0.5)/0.5 = 0.625.
    assert pool.x[0, 0, 0, :4].tolist() == pytest.approx([-1.0, -1.0, -0.375, 0.625])
    assert load_pool("digits", Path("/nonexistent"), input_dim=1, num_cls=10).x.shape[1] == 1


# ------------------------------------------------------------------------------------------ tabular loaders


def save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)


def test_location_npz_labels_shift(tmp_path: Path) -> None:
    x, y = tabular(60, 446, 30)
    save_npz(tmp_path / "location" / "data_complete.npz", x, y + 1)
    pool = load_pool("location", tmp_path, input_dim=446, num_cls=30)
    assert pool.x.dtype == torch.float32 and torch.equal(pool.x, torch.from_numpy(x).float())
    assert pool.y.tolist() == y.tolist()


def test_texas_npz_preferred_over_text(tmp_path: Path) -> None:
    x, y = tabular(100, 20, 100)
    save_npz(tmp_path / "texas" / "data_complete.npz", x, y + 1)
    write_csv(tmp_path / "texas" / "texas" / "100" / "feats", x[:50])  # must be ignored
    pool = load_pool("texas100", tmp_path, input_dim=20, num_cls=100)
    assert len(pool.y) == 100 and pool.y.tolist() == y.tolist()


def test_texas_text_release_and_its_cache(tmp_path: Path) -> None:
    x, y = tabular(100, 20, 100, seed=1)
    base = tmp_path / "texas" / "texas" / "100"
    write_csv(base / "feats", x)
    write_csv(base / "labels", (y + 1).reshape(-1, 1))
    pool = load_pool("texas100", tmp_path, input_dim=20, num_cls=100)
    assert torch.equal(pool.x, torch.from_numpy(x).float()) and pool.y.tolist() == y.tolist()
    cache = tmp_path / "texas" / "texas100.cache.npz"
    assert cache.is_file()
    assert torch.equal(load_pool("texas100", tmp_path, input_dim=20, num_cls=100).x, pool.x)
    # A changed source is parsed again rather than served stale from the cache.
    write_csv(base / "feats", 1 - x)
    assert torch.equal(load_pool("texas100", tmp_path, input_dim=20, num_cls=100).x, 1 - pool.x)


@pytest.mark.parametrize("layout,fmt", [("shokri_label_first_1based", "%d"), ("artifact_label_last_0based", "%d"),
                                        ("artifact_label_last_0based", "%.18e")])  # np.savetxt's default
def test_purchase_both_text_formats(tmp_path: Path, layout: str, fmt: str) -> None:
    x, y = tabular(30, 12, 5, seed=2)
    table = np.column_stack([y + 1, x]) if layout.startswith("shokri") else np.column_stack([x, y])
    write_csv(tmp_path / "purchase100" / "purchase100.txt", table, fmt)
    pool = load_pool("purchase100", tmp_path, input_dim=12, num_cls=5)
    assert torch.equal(pool.x, torch.from_numpy(x).float()) and pool.y.tolist() == y.tolist()
    assert (tmp_path / "purchase100" / "purchase100.cache.npz").is_file()
    assert not [p for p in (tmp_path / "purchase100").iterdir() if p.name.endswith(".tmp")]


def test_purchase_shokri_file_name_and_ambiguous_columns(tmp_path: Path) -> None:
    x, y = tabular(30, 12, 5, seed=3)
    write_csv(tmp_path / "purchase100" / "dataset_purchase", np.column_stack([y + 1, x]))
    assert load_pool("purchase100", tmp_path, input_dim=12, num_cls=5).y.tolist() == y.tolist()
    write_csv(tmp_path / "purchase100" / "purchase100.txt", x)  # no label column at either end
    with pytest.raises(UserError, match="cannot tell the label column"):
        load_pool("purchase100", tmp_path, input_dim=11, num_cls=2)
    write_csv(tmp_path / "purchase100" / "purchase100.txt", np.column_stack([x, y]) + 0.5, "%.2f")
    with pytest.raises(UserError, match="expected integer values"):
        load_pool("purchase100", tmp_path, input_dim=12, num_cls=5)


# ------------------------------------------------------------------------------------------ synthetic


def test_synthetic_purchase_is_seeded_binary_and_ignores_global_rng() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    a = load_pool("synthetic_purchase", Path("/nonexistent"), input_dim=600, num_cls=20)
    torch.manual_seed(1)
    np.random.seed(1)
    b = load_pool("synthetic_purchase", Path("/nonexistent"), input_dim=600, num_cls=20)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert a.x.shape == (6000, 600) and set(a.x.unique().tolist()) == {0.0, 1.0}
    assert 0.03 < a.x.mean().item() < 0.05  # sparse baskets
    assert a.y.bincount().min() > 200  # every class well represented
    other = datasets.make_synthetic_purchase(6000, 600, 20, seed=datasets.SYNTH_SEED + 1)[0]
    assert not np.array_equal(other, a.x.numpy())


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny matmuls: one thread avoids OpenMP spin-waiting on a busy 2-core machine (30 s -> 2 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_synthetic_purchase_overfits_like_purchase(one_thread: None) -> None:
    """The point of the generator: columnfc learns it moderately well and memorises its training set."""
    torch.manual_seed(7)
    pool = load_pool("synthetic_purchase", Path("/nonexistent"), input_dim=600, num_cls=20)
    s = make_splits(len(pool.y))
    model = torch.nn.Sequential(torch.nn.Linear(600, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 20))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    train = torch.from_numpy(s.victim_train)
    for _ in range(15):
        for batch in train[torch.randperm(len(train))].split(128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(pool.x[batch]), pool.y[batch]).backward()
            opt.step()
    with torch.no_grad():
        acc = {k: (model(pool.x[idx]).argmax(1) == pool.y[idx]).float().mean().item()
               for k, idx in (("train", s.victim_train), ("test", s.victim_test))}
    assert 0.45 < acc["test"] < 0.85, acc
    assert acc["train"] > acc["test"] + 0.2, acc


# ------------------------------------------------------------------------------------------ errors


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(UserError) as e:
        load_pool("imagenet", Path("."), input_dim=1, num_cls=10)
    assert "imagenet" in e.value.what and "cifar10" in (e.value.hint or "") and "digits" in (e.value.hint or "")


MISSING = {
    "cifar10": ("cifar10-data/cifar-10-batches-py", "data_batch_1", "cs.toronto.edu/~kriz/cifar.html"),
    "cifar100": ("cifar100-data/cifar-100-python", "train", "cs.toronto.edu/~kriz/cifar.html"),
    "svhn": ("svhn-data", "train_32x32.mat", "ufldl.stanford.edu/housenumbers"),
    "chmnist": (datasets.CHMNIST_DIR, ".tif", "zenodo.org/record/53169"),
    "location": ("location", "data_complete.npz", "MemGuard"),
    "texas100": ("texas", "texas/100/feats", "privacytrustlab/datasets"),
    "purchase100": ("purchase100", "purchase100.txt", "privacytrustlab/datasets"),
    "cinic10": ("cinic10/train", "<class>/*.png", "BayesWatch/cinic-10"),
}


@pytest.mark.parametrize("name", sorted(MISSING))
def test_missing_data_says_what_where_and_whence_without_network(tmp_path: Path, name: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used without download=True")
    monkeypatch.setattr(tv_utils, "download_url", no_network)
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", no_network)
    folder, file, source = MISSING[name]
    with pytest.raises(UserError) as e:
        load_pool(name, tmp_path, input_dim=3, num_cls=10)
    assert str(tmp_path / folder) in e.value.what and file in e.value.what
    assert source in (e.value.hint or "")
    assert ("--download" in (e.value.hint or "")) == (name in ("cifar10", "cifar100", "svhn"))
    assert "error: dataset" in e.value.line() and "\n" not in e.value.line()


def test_download_goes_through_torchvision_into_the_artifact_folder(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets as tv

    calls: list[tuple[str, bool, bool]] = []

    class FakeCIFAR10:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            if not (Path(root) / "cifar-10-batches-py").exists():
                write_cifar10(tmp_path)
    monkeypatch.setattr(tv, "CIFAR10", FakeCIFAR10)
    pool = load_pool("cifar10", tmp_path, input_dim=3, num_cls=10, download=True)
    assert len(pool.y) == 12
    assert calls == [(str(tmp_path / "cifar10-data"), True, True), (str(tmp_path / "cifar10-data"), False, True)]


def test_corrupt_files_are_user_errors(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:500])
    with pytest.raises(UserError, match="data_batch_3"):
        load_pool("cifar10", tmp_path, input_dim=3, num_cls=10)
    write_svhn(tmp_path)
    (tmp_path / "svhn-data" / "test_32x32.mat").write_bytes(b"not a mat file" * 20)
    with pytest.raises(UserError, match="test_32x32.mat"):
        load_pool("svhn", tmp_path, input_dim=3, num_cls=10)
    save_npz(tmp_path / "location" / "data_complete.npz", *tabular(5, 4, 2))
    np.savez(tmp_path / "location" / "data_complete.npz", features=np.zeros(3))
    with pytest.raises(UserError, match="data_complete.npz"):
        load_pool("location", tmp_path, input_dim=4, num_cls=2)


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (f"touch {marker}",)
    (folder / "test_batch").write_bytes(pickle.dumps({"labels": [0], "data": Evil()}, protocol=2))
    with pytest.raises(UserError, match="unexpected object"):
        load_pool("cifar10", tmp_path, input_dim=3, num_cls=10)
    assert not marker.exists()


def test_config_mismatch_names_the_key(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    with pytest.raises(UserError, match="num_cls=100") as e:
        load_pool("cifar10", tmp_path, input_dim=3, num_cls=100)
    assert '"num_cls": 10' in (e.value.hint or "")
    with pytest.raises(UserError, match="input_dim=1"):
        load_pool("cifar10", tmp_path, input_dim=1, num_cls=10)
    with pytest.raises(UserError, match="input_dim=3"):
        load_pool("digits", tmp_path, input_dim=3, num_cls=10)
    save_npz(tmp_path / "location" / "data_complete.npz", *(lambda x, y: (x, y + 1))(*tabular(60, 446, 30)))
    with pytest.raises(UserError, match="446 features.*input_dim=445"):
        load_pool("location", tmp_path, input_dim=445, num_cls=30)


# ------------------------------------------------------------------------------------------ splits

ARTIFACT_SIZES = {  # N: (victim train/dev/test, shadow train/dev/test), the artifact's
    60000: ((13500, 3000, 13500), (13500, 3000, 13500)),
    99289: ((22340, 4964, 22340), (22340, 4964, 22341)),
    5000: ((1125, 250, 1125), (1125, 250, 1125)),
    5010: ((1126, 251, 1128), (1126, 251, 1128)),
    67330: ((15148, 3367, 15150), (15148, 3367, 15150)),
    197324: ((44398, 9866, 44398), (44398, 9866, 44398)),
}


@pytest.mark.parametrize("n", sorted(ARTIFACT_SIZES))
def test_split_sizes_match_the_artifact(n: int) -> None:
    s = make_splits(n)
    victim, shadow = ARTIFACT_SIZES[n]
    assert (len(s.victim_train), len(s.victim_dev), len(s.victim_test)) == victim
    assert len(s.shadows) == 5
    assert all(tuple(map(len, sh)) == shadow for sh in s.shadows)
    half = np.concatenate([s.victim_train, s.victim_dev, s.victim_test])
    assert len(np.unique(half)) == len(half)
    for sh in s.shadows:  # each shadow re-splits the same shadow pool, disjoint from the victim half
        pool = np.concatenate(sh)
        assert len(np.unique(pool)) == len(pool) == n - len(half)
        assert not np.isin(pool, half).any()


def test_split_equals_the_artifact_code() -> None:
    """pretrain.py of the artifact, verbatim in its calls (lists, 0.5, 0.45, 0.1818, seed + i)."""
    n, seed = 1000, 7
    victim_list, attack_list = train_test_split(list(range(n)), test_size=0.5, random_state=seed)
    v_train, v_test = train_test_split(victim_list, test_size=0.45, random_state=seed)
    v_train, v_dev = train_test_split(v_train, test_size=0.1818, random_state=seed)
    s = make_splits(n, seed=seed, shadow_num=3)
    assert [p.tolist() for p in (s.victim_train, s.victim_dev, s.victim_test)] == [v_train, v_dev, v_test]
    for i, sh in enumerate(s.shadows):
        a_train, a_test = train_test_split(attack_list, test_size=0.45, random_state=seed + i)
        a_train, a_dev = train_test_split(a_train, test_size=0.1818, random_state=seed + i)
        assert [p.tolist() for p in sh] == [a_train, a_dev, a_test]
    assert not np.array_equal(s.shadows[0][0], s.shadows[1][0])


def test_exact_ten_fifty_fifths_would_not_reproduce_svhn() -> None:
    """Why dev's share is rounded to 4 decimals: 10/55 exact gives a different SVHN dev size."""
    half = train_test_split(np.arange(99289), test_size=0.5, random_state=7)[0]
    trainval = train_test_split(half, test_size=0.45, random_state=7)[0]
    assert len(train_test_split(trainval, test_size=10 / 55, random_state=7)[1]) != 4964
    assert len(make_splits(99289).victim_dev) == 4964


@pytest.mark.parametrize("kw", [dict(train=0.5, dev=0.1, test=0.45), dict(victim=0.0), dict(victim=1.0),
                                dict(dev=-0.1, train=0.65), dict(test=1.2, train=-0.3)])
def test_bad_split_fractions_name_split(kw: dict[str, float]) -> None:
    with pytest.raises(UserError, match="'split'"):
        make_splits(1000, **kw)


def test_other_split_ratios_of_paper_table_2() -> None:
    """60/10/30 of a 30000 half: test ceil(0.3 * 30000) = 9000, dev ceil(round(0.1/0.7, 4) * 21000) =
    ceil(0.1429 * 21000) = ceil(3000.9) = 3001, train the rest, 17999 (sklearn rounds the test part up)."""
    s = make_splits(60000, train=0.6, dev=0.1, test=0.3, victim=0.5)
    assert (len(s.victim_train), len(s.victim_dev), len(s.victim_test)) == (17999, 3001, 9000)


def test_split_file_round_trip_and_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "result" / "data_index.json"
    made = splits_for(5010, path, seed=7, shadow_num=2)
    assert path.is_file() and not [p for p in path.parent.iterdir() if p.name != path.name]
    loaded = load_splits(path)
    assert isinstance(loaded, Splits) and loaded.same_as(made) and loaded.victim_train.dtype == np.int64
    assert splits_for(5010, path, seed=7, shadow_num=2).same_as(made)
    with pytest.raises(UserError, match="disagrees with the config") as e:
        splits_for(5010, path, seed=8, shadow_num=2)
    assert "--overwrite" in (e.value.hint or "")
    # Shadow i depends only on seed + i: fewer shadows reuse the file, more extend it.
    assert len(splits_for(5010, path, seed=7, shadow_num=1).shadows) == 1
    more = splits_for(5010, path, seed=7, shadow_num=3)
    assert len(load_splits(path).shadows) == 3 and more.shadows[1][0].tolist() == made.shadows[1][0].tolist()
    with pytest.raises(UserError, match="disagrees"):
        splits_for(5010, path, seed=7, shadow_num=3, victim=0.4)
    fresh = splits_for(5010, path, seed=8, shadow_num=2, overwrite=True)
    assert load_splits(path).same_as(fresh) and not fresh.same_as(made)
    save_splits(made, path)
    assert json.loads(path.read_text())["victim_dev"] == made.victim_dev.tolist()
    path.write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        load_splits(path)


# ------------------------------------------------------------------------------------ WeMem: CINIC-10, split

def write_cinic10(root: Path) -> None:
    """CINIC-10's release layout: cinic10/{train,valid,test}/<class>/*.png; 2 classes, pixel (0,0) = file's id."""
    from PIL import Image

    for part, per_class in (("train", 3), ("valid", 1), ("test", 2)):
        for c, cls in enumerate(("airplane", "automobile")):
            folder = root / "cinic10" / part / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = np.full((32, 32, 3), 128, dtype=np.uint8)
                img[0, 0] = (10 * c + i, 0, 255)
                Image.fromarray(img).save(folder / f"cifar10-{part}-{i}.png")


def test_cinic10_image_folders_train_then_test(tmp_path: Path) -> None:
    write_cinic10(tmp_path)
    pool = load_pool("cinic10", tmp_path, input_dim=3, num_cls=2)
    assert pool.x.shape == (10, 3, 32, 32) and pool.n_train == 6  # valid/ is not read
    assert pool.y.tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 1, 1]
    mean, std = datasets.CINIC_MEAN, datasets.CINIC_STD
    # row 4 = train/automobile/cifar10-train-1.png: red 11, green 0, blue 255, elsewhere 128
    assert pool.x[4, 0, 0, 0].item() == pytest.approx((11 / 255 - mean[0]) / std[0], abs=1e-6)
    assert pool.x[4, 1, 0, 0].item() == pytest.approx((0 - mean[1]) / std[1], abs=1e-6)
    assert pool.x[4, 2, 0, 0].item() == pytest.approx((1 - mean[2]) / std[2], abs=1e-6)
    assert pool.x[4, 0, 5, 5].item() == pytest.approx((128 / 255 - mean[0]) / std[0], abs=1e-6)


def test_cinic10_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cinic10 not found"):
        load_pool("cinic10", tmp_path, input_dim=3, num_cls=2)
    write_cinic10(tmp_path)
    (tmp_path / "cinic10" / "test" / "airplane" / "cifar10-test-0.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="unreadable or malformed"):
        load_pool("cinic10", tmp_path, input_dim=3, num_cls=2)


@pytest.mark.parametrize("n,n_train,sizes", [(60000, 50000, (22500, 4250, 8250)), (5010, None, (1803, 409, 794))])
def test_wemem_split_sizes_match_the_facts(n: int, n_train: int | None, sizes: tuple[int, int, int]) -> None:
    s = datasets.make_wemem_splits(n, n_train, seed=7, shadow_num=2)
    assert (len(s.victim_train), len(s.victim_dev), len(s.victim_test)) == sizes
    train_part, test_part = datasets.wemem_parts(n, n_train, 7)
    assert set(s.victim_train) <= set(train_part)  # members come from the train part only
    assert set(test_part) <= set(s.victim_dev) | set(s.victim_test)  # the whole test part is non-member
    for sh in s.shadows:
        assert not set(sh[0]) & set(s.victim_train)  # attack half vs victim half
        assert set(test_part) <= set(sh[1]) | set(sh[2])


def test_wemem_split_equals_an_independent_walk_of_its_procedure() -> None:
    n, n_train, seed = 300, 200, 3
    train_idx, test_idx = np.arange(n_train), np.arange(n_train, n)
    victim_half, attack_half = train_test_split(train_idx, test_size=0.5, random_state=seed)
    expected = []
    for half, rs in [(victim_half, seed), (attack_half, seed), (attack_half, seed + 1)]:
        tr, tmp = train_test_split(half, test_size=0.1, random_state=rs)
        dev, te = train_test_split(np.concatenate([tmp, test_idx]), test_size=0.66, random_state=rs)
        expected += [tr, dev, te]
    got = datasets.make_wemem_splits(n, n_train, seed=seed, shadow_num=2).parts()
    assert len(got) == 9 and all(np.array_equal(a, b) for a, b in zip(got, expected))
    # the default (artifact) split is untouched by the option
    assert make_splits(n, seed=seed, shadow_num=2).same_as(make_splits(n, seed=seed, shadow_num=2))
    assert not make_splits(n, seed=seed, shadow_num=2).same_as(datasets.make_wemem_splits(n, n_train, seed=seed,
                                                                                          shadow_num=2))


def test_cifar_pool_knows_its_train_rows(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    assert load_pool("cifar10", tmp_path, input_dim=3, num_cls=10).n_train == 10


@pytest.mark.parametrize("keep", [0, 20, 0.5])  # empty, cut in the zip header, cut in half
def test_a_cut_short_purchase_cache_is_rebuilt(tmp_path: Path, keep: float) -> None:
    # A cut-short npz raises zipfile.BadZipFile, which is not an OSError: before, the "simply rebuilt" cache
    # gave a traceback.
    x, y = tabular(30, 12, 5, seed=4)
    write_csv(tmp_path / "purchase100" / "purchase100.txt", np.column_stack([x, y]))
    load_pool("purchase100", tmp_path, input_dim=12, num_cls=5)
    cache = tmp_path / "purchase100" / "purchase100.cache.npz"
    data = cache.read_bytes()
    cache.write_bytes(data[:int(keep * len(data)) if isinstance(keep, float) else keep])
    pool = load_pool("purchase100", tmp_path, input_dim=12, num_cls=5)
    assert torch.equal(pool.x, torch.from_numpy(x).float()) and pool.y.tolist() == y.tolist()
    assert cache.read_bytes() != data[:20] and np.load(cache)["x"].shape == (30, 12)  # rebuilt whole
