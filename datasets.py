"""Dataset registry, loaders and the artifact's victim / shadow splits (docs/design.md §4).

Every loader returns the whole pool (official train then official test, or the single file of a tabular
set) as one normalised float32 tensor, materialised once: the artifact uses no augmentation, so the
training loop only slices it. Loaders never touch the network; `load_pool(..., download=True)` first asks
torchvision to fetch CIFAR / SVHN (md5-checked) and then reads the same files.

On-disk layout under data_root (the artifact's, with a few documented alternatives):
  cifar10      cifar10-data/cifar-10-batches-py/{data_batch_1..5,test_batch}   (or cifar-10-batches-py/)
  cifar100     cifar100-data/cifar-100-python/{train,test}                     (or cifar-100-python/)
  svhn         svhn-data/{train_32x32.mat,test_32x32.mat}                      (or directly in data_root)
  mnist        mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz   (or MNIST/raw/, torchvision's layout;
               the uncompressed files are read too)
  cinic10      cinic10/{train,test}/<class>/*.png (CINIC-10's release; valid/ is not read)
  chmnist      chmnist/kather_texture_2016_image_tiles_5000/Kather_texture_2016_image_tiles_5000/<class>/*
  location     location/data_complete.npz                      x (5010x446), y 1-based (MemGuard's file)
  texas100     texas/data_complete.npz (x, y 1-based), else the text release extracted in texas/:
               texas/texas/100/feats (67330 lines of 6169 comma-separated 0/1) and texas/texas/100/labels
               (one 1-based label per line), as in dataset_texas.tgz of Shokri et al.
  purchase100  purchase100/purchase100.txt (or purchase100/dataset_purchase, the name in Shokri's tarball):
               CSV of 600 0/1 features plus a label, first and 1-based (Shokri's release) or last and 0-based
               (the artifact's re-formatted file); the label end is the one column that is not 0/1.
The two text releases are parsed once into an npz beside them (texas/texas100.cache.npz,
purchase100/purchase100.cache.npz; written atomically, rebuilt when the text changes), as the artifact kept
purchase100.pt.

CIFAR and SVHN are read here rather than through torchvision's dataset classes because those verify the md5
of every file, which no small test file can pass; the format read is the same (pickled dicts of uint8 rows,
MATLAB .mat files). The CIFAR pickles go through an unpickler that only admits numpy arrays, so a data file
can never run code.
"""
from __future__ import annotations

import codecs
import json
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from core.errors import UserError
from core.storage import NPZ_ERRORS, atomic_write, log, read_npz

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # also used for cifar100 (artifact)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

SOURCES = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz, extracted)",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar.html (cifar-100-python.tar.gz, extracted)",
    "svhn": "http://ufldl.stanford.edu/housenumbers/ (format 2: train_32x32.mat, test_32x32.mat)",
    "chmnist": "https://zenodo.org/record/53169 (Kather_texture_2016_image_tiles_5000.zip, extracted)",
    "cinic10": "https://github.com/BayesWatch/cinic-10 (CINIC-10.tar.gz, extracted into cinic10/)",
    "location": "https://github.com/jjy1994/MemGuard/tree/master/data/location (data_complete.npz)",
    "texas100": "https://github.com/privacytrustlab/datasets (dataset_texas.tgz, extracted here) or an "
                "npz with keys x, y",
    "purchase100": "https://github.com/privacytrustlab/datasets (dataset_purchase.tgz; its file "
                   "dataset_purchase, label first) or the artifact's CSV with the label last",
    "mnist": "http://yann.lecun.com/exdb/mnist/ or a torchvision MNIST/raw folder (the four idx ubyte .gz files)",
}


@dataclass
class Pool:
    """The whole dataset: x normalised float32 (N,C,H,W) for images or (N,D) for tabular; y int64 labels."""

    x: torch.Tensor
    y: torch.Tensor
    name: str
    n_train: int | None = None  # rows of the official TRAIN split at the front (None: no official split)


Loader = Callable[[Path, int, int], Pool]


# ---------------------------------------------------------------------------------------------- errors

def _missing(name: str, folder: Path, files: Sequence[str], downloadable: bool = False) -> UserError:
    hint = f"get it from {SOURCES[name]} and put it there"
    if downloadable:
        hint += ", or pass --download to let torchvision fetch it"
    return UserError(f"dataset {name} not found: looked for {', '.join(files)} in {folder}", hint)


def _corrupt(name: str, path: Path, why: str) -> UserError:
    return UserError(f"dataset {name}: {path} is unreadable or malformed ({why})",
                     f"replace it with a fresh copy from {SOURCES.get(name, 'its source')}")


def _first_dir(candidates: Sequence[Path], files: Sequence[str]) -> Path | None:
    """The first folder that holds all of `files` (the artifact's layout is listed first)."""
    return next((d for d in candidates if all((d / f).is_file() for f in files)), None)


# ---------------------------------------------------------------------------------------------- helpers

def _normalise(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 NCHW -> float32, as ToTensor + Normalize per sample would, but in one vectorised pass."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def _make_pool(name: str, x: torch.Tensor, y: np.ndarray, path: Path) -> Pool:
    """Check labels once for every loader: integral, non-negative, one per row."""
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise _corrupt(name, path, f"{len(x)} rows but {len(y)} labels")
    if len(y) == 0:
        raise _corrupt(name, path, "no rows")
    if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0:
        raise _corrupt(name, path, f"labels must be integers >= 0 after conversion, got min {y.min()}")
    return Pool(x=x, y=torch.from_numpy(y.astype(np.int64)), name=name)


def _read_npz(name: str, path: Path, label_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """An npz with keys x and y; allow_pickle stays off so the file cannot run code."""
    try:
        saved = read_npz(path, ("x", "y"))
        return saved["x"], saved["y"] - label_offset
    except NPZ_ERRORS as e:
        raise _corrupt(name, path, f"{type(e).__name__}: {e}") from None


def _tabular_pool(name: str, x: np.ndarray, y: np.ndarray, path: Path) -> Pool:
    """Tabular data stay raw 0/1 floats: the artifact applies no normalisation to them."""
    if x.ndim != 2:
        raise _corrupt(name, path, f"features must be a 2-D table, got shape {x.shape}")
    return _make_pool(name, torch.from_numpy(np.asarray(x, dtype=np.float32)), y, path)


def _fingerprint(paths: Sequence[Path]) -> str:
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)


def _cached_text(name: str, sources: Sequence[Path], cache: Path,
                 parse: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Parse a large text release once and keep an npz beside it (0-based labels), as the artifact kept a .pt.

    The cache records the size and mtime of its sources and is rebuilt when they change. A folder that cannot
    be written only costs the parse next time.
    """
    stamp = _fingerprint(sources)
    if cache.is_file():
        try:
            saved = read_npz(cache, ("source", "x", "y"))
            if str(saved["source"]) == stamp:
                return saved["x"], saved["y"]
        except NPZ_ERRORS as e:  # a damaged or cut-short cache is simply rebuilt
            log.warning(f"{name}: the cache {cache} is damaged ({type(e).__name__}); parsing the text again")
    x, y = parse()
    try:
        atomic_write(cache, lambda f: np.savez(f, x=x, y=y, source=np.array(stamp)))
    except OSError as e:
        log.warning(f"{name}: could not write the cache {cache} ({e}); the text is parsed again next time")
    return x, y


def _read_csv_ints(name: str, path: Path) -> np.ndarray:
    """A comma-separated table of small integers, written as "1" or as np.savetxt's default "1.000e+00"
    (the artifact's re-formatted purchase file may be either); numpy's C parser takes seconds, not minutes."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except (OSError, ValueError) as e:
        raise _corrupt(name, path, f"{type(e).__name__}: {str(e)[:200]}") from None
    if not np.array_equal(table, np.round(table)) or np.abs(table).max(initial=0) > 32767:
        raise _corrupt(name, path, "expected integer values (0/1 features and class labels)")
    return table.astype(np.int16)


def _is_binary(column: np.ndarray) -> bool:
    return bool(np.isin(column, (0, 1)).all())


# ---------------------------------------------------------------------------------------------- images

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The CIFAR batches are pickled dicts of lists and numpy arrays; refuse every other global.

    The official files were written with numpy 1.x, whose module numpy.core is numpy._core in numpy 2.
    Python 3 writes bytes at protocol 2 as _codecs.encode(str, 'latin1'), harmless, so admitted too.
    """

    @staticmethod
    def _allowed() -> dict[tuple[str, str], Any]:
        from numpy._core import multiarray, numeric

        found = {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar,
                 "_frombuffer": numeric._frombuffer}
        table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                             ("_codecs", "encode"): codecs.encode}
        for core in ("numpy.core", "numpy._core"):
            table[(f"{core}.multiarray", "_reconstruct")] = found["_reconstruct"]
            table[(f"{core}.multiarray", "scalar")] = found["scalar"]
            table[(f"{core}.numeric", "_frombuffer")] = found["_frombuffer"]
        return table

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed().get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a data file")
        return obj


def _read_cifar_batch(name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: {'data': uint8 (n, 3072) rows in CHW order, 'labels' or 'fine_labels': [n]}."""
    try:
        with open(path, "rb") as f:
            entry = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        labels = entry["labels"] if "labels" in entry else entry["fine_labels"]
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise _corrupt(name, path, f"{type(e).__name__}: {e}") from None
    return data, np.asarray(labels)


def _cifar(name: str, folder_name: str, files: Sequence[str]) -> Loader:
    subdir = "cifar10-data" if name == "cifar10" else "cifar100-data"

    def load(root: Path, input_dim: int, num_cls: int) -> Pool:
        folder = _first_dir([root / subdir / folder_name, root / folder_name], files)
        if folder is None:
            raise _missing(name, root / subdir / folder_name, files, downloadable=True)
        parts = [_read_cifar_batch(name, folder / f) for f in files]  # train batches first, then test
        x = np.concatenate([p[0] for p in parts])
        pool = _make_pool(name, _normalise(x, CIFAR_MEAN, CIFAR_STD), np.concatenate([p[1] for p in parts]),
                          folder)
        pool.n_train = sum(len(p[1]) for p in parts[:-1])
        return pool
    return load


SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """X is (32, 32, 3, n) = (H, W, C, n); torchvision transposes it to NCHW and maps label 10 to digit 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
        x = np.transpose(np.asarray(mat["X"], dtype=np.uint8), (3, 2, 0, 1))
        y = np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    except (OSError, ValueError, KeyError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError) as e:
        raise _corrupt("svhn", path, f"{type(e).__name__}: {e}") from None
    y[y == 10] = 0
    return x, y


def load_svhn(root: Path, input_dim: int, num_cls: int) -> Pool:
    """SVHN train + test (not extra), as the artifact; mean = std = 0.5 per channel."""
    folder = _first_dir([root / "svhn-data", root], SVHN_FILES)
    if folder is None:
        raise _missing("svhn", root / "svhn-data", SVHN_FILES, downloadable=True)
    parts = [_read_svhn(folder / f) for f in SVHN_FILES]
    x = np.concatenate([p[0] for p in parts])
    pool = _make_pool("svhn", _normalise(x, (0.5,) * 3, (0.5,) * 3), np.concatenate([p[1] for p in parts]),
                      folder)
    pool.n_train = len(parts[0][1])
    return pool


CHMNIST_DIR = "chmnist/kather_texture_2016_image_tiles_5000/Kather_texture_2016_image_tiles_5000"


def load_chmnist(root: Path, input_dim: int, num_cls: int) -> Pool:
    """ImageFolder semantics (classes = sorted folder names), PIL decode once, Resize((32,32)), ImageNet stats."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets import ImageFolder
    from torchvision.transforms.functional import resize

    folder = root / CHMNIST_DIR
    try:
        samples = ImageFolder(str(folder)).samples  # lists files only; decoding happens below, once
    except FileNotFoundError as e:
        if folder.is_dir():  # there, but without class folders of images
            raise _corrupt("chmnist", folder, str(e)) from None
        raise _missing("chmnist", folder, ["<8 class folders>/*.tif"]) from None
    images = np.empty((len(samples), 32, 32, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(samples):
        try:
            with Image.open(path) as img:
                # The same calls as the artifact's default_loader + transforms.Resize on a PIL image.
                images[i] = np.asarray(resize(img.convert("RGB"), [32, 32]))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise _corrupt("chmnist", Path(path), f"{type(e).__name__}: {e}") from None
    x = _normalise(images.transpose(0, 3, 1, 2), IMAGENET_MEAN, IMAGENET_STD)
    return _make_pool("chmnist", x, np.array([label for _, label in samples]), folder)


CINIC_DIR = "cinic10"
CINIC_PARTS = ("train", "test")  # pool order; valid/ is not read (WeMem used train and test subsets only)
# CINIC-10's own statistics (its README); WeMem's transform for CINIC is not in the facts.
CINIC_MEAN, CINIC_STD = (0.47889522, 0.47227842, 0.43047404), (0.24205776, 0.23828046, 0.25874835)


def _read_png_folder(name: str, folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """ImageFolder semantics (classes = sorted folder names); 32x32 RGB images decoded once, as uint8 NHWC."""
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
    files = [(f, c) for c, cls in enumerate(classes) for f in sorted((folder / cls).glob("*.png"))]
    if not files:
        raise _missing(name, folder, ["<class>/*.png"])
    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as img:
                images[i] = np.asarray(img.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise _corrupt(name, path, f"{type(e).__name__}: {e}") from None
    return images, np.array([c for _, c in files]), classes


def load_cinic10(root: Path, input_dim: int, num_cls: int) -> Pool:
    """CINIC-10 as released: cinic10/{train,valid,test}/<class>/*.png (32x32). Pool = train then test."""
    parts = [_read_png_folder("cinic10", root / CINIC_DIR / part) for part in CINIC_PARTS]
    if parts[0][2] != parts[1][2]:
        raise _corrupt("cinic10", root / CINIC_DIR,
                       f"train and test class folders differ: {parts[0][2]} vs {parts[1][2]}")
    x = _normalise(np.concatenate([p[0] for p in parts]).transpose(0, 3, 1, 2), CINIC_MEAN, CINIC_STD)
    pool = _make_pool("cinic10", x, np.concatenate([p[1] for p in parts]), root / CINIC_DIR)
    pool.n_train = len(parts[0][1])
    return pool


def load_digits(root: Path, input_dim: int, num_cls: int) -> Pool:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes, values 0..16) scaled to [-1, 1]."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).sub_(0.5).div_(0.5).unsqueeze(1)
    return _make_pool("digits", x, d.target, Path("sklearn.datasets.load_digits"))


MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """One idx file (LeCun's format): magic 0x0000 08 <ndim>, big-endian int32 sizes, then uint8 data."""
    import gzip

    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise _corrupt("mnist", path, f"{type(e).__name__}: {e}") from None
    if len(raw) < 4 + 4 * ndim or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise _corrupt("mnist", path, f"not an idx file of {ndim} dimension(s) of uint8")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise _corrupt("mnist", path, f"header says {shape} but holds {data.size} values")
    return data.reshape(shape)


def load_mnist(root: Path, input_dim: int, num_cls: int) -> Pool:
    """MNIST train (60000) then test (10000), 1x28x28, normalised with torchvision's usual mean / std."""
    folders = [root / "mnist", root / "MNIST" / "raw", root]
    for ext in (".gz", ""):
        names = [f + ext for f in MNIST_FILES]
        folder = _first_dir(folders, names)
        if folder is not None:
            break
    else:
        raise _missing("mnist", root, [f + ".gz" for f in MNIST_FILES] + ["(in mnist/ or MNIST/raw/)"])
    tr_x, tr_y, te_x, te_y = (_read_idx(folder / n, 3 if "images" in n else 1) for n in names)
    images = np.concatenate([tr_x, te_x])[:, None]
    return _make_pool("mnist", _normalise(images, MNIST_MEAN, MNIST_STD), np.concatenate([tr_y, te_y]), folder)


# ---------------------------------------------------------------------------------------------- tabular

def load_location(root: Path, input_dim: int, num_cls: int) -> Pool:
    path = root / "location" / "data_complete.npz"
    if not path.is_file():
        raise _missing("location", path.parent, [path.name])
    return _tabular_pool("location", *_read_npz("location", path, label_offset=1), path)


def load_texas100(root: Path, input_dim: int, num_cls: int) -> Pool:
    """The artifact's npz if present, else Shokri's text release (feats: 0/1 CSV; labels: 1-based, one a line)."""
    folder = root / "texas"
    npz = folder / "data_complete.npz"
    if npz.is_file():
        return _tabular_pool("texas100", *_read_npz("texas100", npz, label_offset=1), npz)
    feats, labels = folder / "texas" / "100" / "feats", folder / "texas" / "100" / "labels"
    if not (feats.is_file() and labels.is_file()):
        raise _missing("texas100", folder, ["data_complete.npz", "texas/100/feats + texas/100/labels"])

    def parse() -> tuple[np.ndarray, np.ndarray]:
        x = _read_csv_ints("texas100", feats).astype(np.uint8)
        return x, _read_csv_ints("texas100", labels).reshape(-1).astype(np.int64) - 1
    x, y = _cached_text("texas100", [feats, labels], folder / "texas100.cache.npz", parse)
    return _tabular_pool("texas100", x, y, feats)


PURCHASE_FILES = ("purchase100.txt", "dataset_purchase")


def _split_purchase(table: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Shokri's release puts a 1-based label first; the artifact's file puts a 0-based label last.

    The label column is the end column that is not 0/1 (100 classes); the features are all 0/1.
    """
    first, last = _is_binary(table[:, 0]), _is_binary(table[:, -1])
    if not first and last:
        return table[:, 1:].astype(np.uint8), table[:, 0].astype(np.int64) - 1
    if first and not last:
        return table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)
    raise _corrupt("purchase100", path, "cannot tell the label column: expected exactly one of the first "
                                        "and last columns to hold non-binary class labels")


def load_purchase100(root: Path, input_dim: int, num_cls: int) -> Pool:
    folder = root / "purchase100"
    path = next((folder / f for f in PURCHASE_FILES if (folder / f).is_file()), None)
    if path is None:
        raise _missing("purchase100", folder, PURCHASE_FILES)
    x, y = _cached_text("purchase100", [path], folder / "purchase100.cache.npz",
                        lambda: _split_purchase(_read_csv_ints("purchase100", path), path))
    return _tabular_pool("purchase100", x, y, path)


# ---------------------------------------------------------------------------------------------- synthetic

SYNTH_SEED = 20220810  # fixed: the data never change with the experiment's --seed
SYNTH_N = 6000
SYNTH_TYPES, SYNTH_CORE, SYNTH_EXTRA = 3, 12, 20
SYNTH_P_HI, SYNTH_P_LO = 0.22, 0.03


def make_synthetic_purchase(n: int, input_dim: int, num_cls: int, seed: int = SYNTH_SEED) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """SYNTHETIC Purchase-like shopping baskets: binary (n, input_dim) records, num_cls classes.

    Every class has SYNTH_TYPES "shopper types". A class draws SYNTH_CORE + SYNTH_TYPES * SYNTH_EXTRA
    distinct items: its core items are bought by all its types, and each type also has SYNTH_EXTRA items of
    its own. An item in a record's class/type signature is bought with probability SYNTH_P_HI (0.22), any
    other item with SYNTH_P_LO (0.03), independently, so about 4% of a row is 1 (sparse, like a basket).
    Labels and types are uniform. With the defaults (n 6000, 600 items, 20 classes; victim train 1350) the
    artifact's columnfc reaches about 100% train and 60-65% test accuracy, and the confidence of members
    separates from non-members (AUC about 0.85-0.9): the overfitting that makes membership leak visibly.
    Draws use numpy's PCG64 Generator seeded with `seed` (default SYNTH_SEED).
    """
    rng = np.random.default_rng(seed)
    per_class = SYNTH_CORE + SYNTH_TYPES * SYNTH_EXTRA
    probs = np.full((num_cls, SYNTH_TYPES, input_dim), SYNTH_P_LO)
    for c in range(num_cls):
        items = rng.choice(input_dim, per_class, replace=False)
        probs[c, :, items[:SYNTH_CORE]] = SYNTH_P_HI
        for t in range(SYNTH_TYPES):
            probs[c, t, items[SYNTH_CORE + t * SYNTH_EXTRA:SYNTH_CORE + (t + 1) * SYNTH_EXTRA]] = SYNTH_P_HI
    y = rng.integers(0, num_cls, n)
    kind = rng.integers(0, SYNTH_TYPES, n)
    x = (rng.random((n, input_dim)) < probs[y, kind]).astype(np.float32)
    return x, y


def load_synthetic_purchase(root: Path, input_dim: int, num_cls: int) -> Pool:
    per_class = SYNTH_CORE + SYNTH_TYPES * SYNTH_EXTRA
    if input_dim < per_class:
        raise UserError(f"synthetic_purchase needs input_dim >= {per_class} (each class uses {per_class} "
                        f"items), the config says input_dim={input_dim}", "raise 'input_dim' (e.g. 600)")
    log.info(f"synthetic_purchase: SYNTHETIC Purchase-like records (not real data), {SYNTH_N} rows, "
             f"seed {SYNTH_SEED}")
    x, y = make_synthetic_purchase(SYNTH_N, input_dim, num_cls)
    return _make_pool("synthetic_purchase", torch.from_numpy(x), y, Path("<generated>"))


# ---------------------------------------------------------------------------------------------- registry

DATASETS: dict[str, Loader] = {
    "cifar10": _cifar("cifar10", "cifar-10-batches-py",
                      [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]),
    "cifar100": _cifar("cifar100", "cifar-100-python", ["train", "test"]),
    "svhn": load_svhn,
    "chmnist": load_chmnist,
    "cinic10": load_cinic10,
    "location": load_location,
    "texas100": load_texas100,
    "purchase100": load_purchase100,
    "digits": load_digits,
    "mnist": load_mnist,
    "synthetic_purchase": load_synthetic_purchase,
}


def _download(name: str, root: Path) -> None:
    """torchvision fetches and md5-checks the official archives (skipped when already intact)."""
    from torchvision import datasets as tv

    try:
        if name == "svhn":
            for split in ("train", "test"):
                tv.SVHN(str(root / "svhn-data"), split=split, download=True)
        else:
            cls = tv.CIFAR10 if name == "cifar10" else tv.CIFAR100
            for train in (True, False):
                cls(str(root / f"{name}-data"), train=train, download=True)
    except (OSError, RuntimeError) as e:
        raise UserError(f"downloading {name} failed: {e}", f"get it by hand from {SOURCES[name]}") from None


DOWNLOADABLE = ("cifar10", "cifar100", "svhn")


def _check_config(pool: Pool, input_dim: int, num_cls: int) -> None:
    """The config must describe the data: class count, and features (tabular) or channels (images).

    Images also accept the flattened size C*H*W, which a columnfc model on images (digits: 64) needs.
    """
    classes = int(pool.y.max()) + 1
    if classes != num_cls:
        raise UserError(f"dataset {pool.name} has {classes} classes but the config says num_cls={num_cls}",
                        f"set \"num_cls\": {classes} in the config")
    shape = tuple(pool.x.shape[1:])
    allowed = (shape[0], int(np.prod(shape))) if len(shape) == 3 else (shape[0],)
    if input_dim not in allowed:
        what = "channels" if len(shape) == 3 else "features"
        raise UserError(f"dataset {pool.name} has {shape[0]} {what} (sample shape {shape}) but the config says "
                        f"input_dim={input_dim}", f"set \"input_dim\" to {' or '.join(map(str, allowed))}")


def load_pool(name: str, data_root: Path, *, input_dim: int, num_cls: int, download: bool = False) -> Pool:
    """Load dataset `name` as one normalised pool; only download=True may use the network (CIFAR, SVHN)."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset_name '{name}'", "valid names: " + ", ".join(DATASETS))
    root = Path(data_root)
    if download and name in DOWNLOADABLE:
        _download(name, root)
    elif download:
        log.warning(f"--download only fetches {', '.join(DOWNLOADABLE)}; {name} is read from {root}")
    pool = DATASETS[name](root, input_dim, num_cls)
    _check_config(pool, input_dim, num_cls)
    return pool


# ---------------------------------------------------------------------------------------------- splits

@dataclass
class Splits:
    """Indices into the pool, in sklearn's shuffled order (the artifact's data_index.pkl, as JSON)."""

    victim_train: np.ndarray
    victim_dev: np.ndarray
    victim_test: np.ndarray
    shadows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    n: int | None = None  # the pool size it was made for, when the file records it (data_index.json's made_with)

    def parts(self) -> list[np.ndarray]:
        return [self.victim_train, self.victim_dev, self.victim_test] + [p for s in self.shadows for p in s]

    def same_as(self, other: Splits) -> bool:
        mine, theirs = self.parts(), other.parts()
        return len(mine) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(mine, theirs))


SPLIT_DEFAULTS = {"victim": 0.5, "train": 0.45, "dev": 0.10, "test": 0.45}  # make_splits' defaults


def _check_fractions(victim: float, train: float, dev: float, test: float) -> None:
    values = {"victim": victim, "train": train, "dev": dev, "test": test}
    bad = [k for k, v in values.items() if not 0 < v < 1]
    if bad:
        raise UserError(f"bad 'split' fractions {bad}: each must be strictly between 0 and 1", f"got {values}")
    if abs(train + dev + test - 1) > 1e-6:
        raise UserError(f"bad 'split': train + dev + test = {train + dev + test:g}, must be 1",
                        f"got train {train}, dev {dev}, test {test}")


def _three_way(indices: np.ndarray, seed: int, dev_frac: float, test: float) -> tuple[np.ndarray, ...]:
    """The artifact's nested split: (trainval, test) then (train, dev); sklearn rounds each test part up."""
    trainval, test_idx = train_test_split(indices, test_size=test, random_state=seed)
    train_idx, dev_idx = train_test_split(trainval, test_size=dev_frac, random_state=seed)
    return np.asarray(train_idx), np.asarray(dev_idx), np.asarray(test_idx)


def make_splits(n: int, *, seed: int = 7, shadow_num: int = 5, victim: float = 0.5, train: float = 0.45,
                dev: float = 0.10, test: float = 0.45) -> Splits:
    """Victim half and shadow pool, then train/dev/test of each; shadow i re-splits the pool with seed + i.

    dev's share of train+dev is rounded to 4 decimals because the artifact hard-coded 0.1818 for 10/55:
    sklearn takes ceil(frac * n), and the exact 10/55 gives other sizes (SVHN victim 22340/4964 needs 0.1818).
    1 - victim is rounded to 10 decimals only to undo float noise (1 - 0.7 = 0.30000000000000004).
    """
    _check_fractions(victim, train, dev, test)
    dev_frac = round(dev / (train + dev), 4)
    try:
        half, pool = train_test_split(np.arange(n), test_size=round(1 - victim, 10), random_state=seed)
        splits = Splits(*_three_way(half, seed, dev_frac, test))
        splits.shadows = [_three_way(pool, seed + i, dev_frac, test) for i in range(shadow_num)]
    except ValueError as e:  # sklearn refuses splits that leave a part empty
        raise UserError(f"cannot apply 'split' to {n} samples: {e}", "use larger fractions or more data") from None
    return splits


def save_splits(splits: Splits, path: Path, made_with: dict[str, Any] | None = None) -> None:
    """The split as JSON; `made_with` (seed, scheme, fractions, pool size) lets a later step refuse a split made
    for other settings before it loads any data."""
    data = {"victim_train": splits.victim_train.tolist(), "victim_dev": splits.victim_dev.tolist(),
            "victim_test": splits.victim_test.tolist(),
            "shadows": [[p.tolist() for p in s] for s in splits.shadows]}
    if made_with is not None:
        data["made_with"] = made_with
    atomic_write(Path(path), lambda f: json.dump(data, f, separators=(",", ":")), mode="w")


def _read_split_file(path: Path) -> tuple[Splits, dict[str, Any] | None]:
    try:
        data = json.loads(Path(path).read_text())
        arr = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
        splits = Splits(arr(data["victim_train"]), arr(data["victim_dev"]), arr(data["victim_test"]),
                        [tuple(arr(p) for p in s) for s in data["shadows"]])  # type: ignore[misc]
        made_with = data.get("made_with")
        return splits, made_with if isinstance(made_with, dict) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"split file {path} is unreadable ({type(e).__name__}: {e})",
                        "rerun pretrain.py with --overwrite to make the split again; models made on the old "
                        "one are then refused until retrained") from None


def load_splits(path: Path) -> Splits:
    return _read_split_file(path)[0]


def split_settings(seed: int, scheme: str, n: int | None = None, **fractions: float) -> dict[str, Any]:
    """What a split is made from (data_index.json's `made_with`): seed, scheme, fractions (artifact scheme
    only: WeMem's are fixed) and, when known, the pool size."""
    out: dict[str, Any] = {"seed": seed, "split_scheme": scheme}
    if scheme != "wemem":
        out["split"] = {k: fractions[k] for k in ("victim", "train", "dev", "test") if k in fractions}
    if n is not None:
        out["n"] = n
    return out


def read_split(path: Path, *, shadow_num: int, seed: int, scheme: str, **fractions: float) -> Splits:
    """The split pretrain.py made, for the later steps (they never make one): UserError naming pretrain.py
    when the file is missing, was made with another seed / scheme / fractions, or holds fewer shadows."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"split file {path} not found: only pretrain.py makes the split",
                        "run pretrain.py on this config first")
    saved, made_with = _read_split_file(path)
    if made_with is not None:
        wanted = split_settings(seed, scheme, **fractions)
        for key in wanted:
            if made_with.get(key) != wanted[key]:
                raise UserError(f"split file {path} was made with {key} {made_with.get(key)}, this run asks for "
                                f"{wanted[key]}", "pass the split's settings, or make a new split with pretrain.py "
                                "--overwrite; models made on the old split are then refused until retrained")
    if len(saved.shadows) < shadow_num:
        raise UserError(f"split file {path} holds {len(saved.shadows)} shadow split(s), this run asks for "
                        f"shadow_num {shadow_num}", f"run pretrain.py with --shadow_num {shadow_num} first")
    out = _prefix(saved, shadow_num)
    out.n = made_with.get("n") if made_with is not None else None
    return out


def expected_splits(n: int, *, scheme: str = "artifact", n_train: int | None = None, **kw: Any) -> Splits:
    """The split the config asks for on a pool of n rows (make_splits, or WeMem's with kw's seed and shadow_num)."""
    if scheme == "wemem":
        return make_wemem_splits(n, n_train, seed=kw.get("seed", 7), shadow_num=kw.get("shadow_num", 5))
    return make_splits(n, **kw)


def check_split(saved: Splits, expected: Splits, path: Path) -> None:
    """UserError when a saved split disagrees with the config's on the shadows both have."""
    common = min(len(saved.shadows), len(expected.shadows))
    if not _prefix(saved, common).same_as(_prefix(expected, common)):
        raise UserError(f"split file {path} disagrees with the config (dataset size, seed or split changed "
                        "since it was written)", "rerun pretrain.py with --overwrite to make a new split; models "
                        "made on the old one are then refused until retrained")


def splits_for(n: int, path: Path, *, overwrite: bool = False, scheme: str = "artifact", n_train: int | None = None,
               **kw: Any) -> Splits:
    """pretrain.py's split: reuse the saved file (verified against the config) or make and save it.

    scheme "artifact" (default): make_splits with the config's fractions `kw`; "wemem": make_wemem_splits
    (its fixed fractions; `n_train` = the pool's official-train rows) with kw's seed and shadow_num.
    Shadow i depends only on seed + i, so a saved file with a different number of shadows still agrees
    on the ones both have: a later step may use fewer shadows, and more shadows extend the file.
    """
    path = Path(path)
    expected = expected_splits(n, scheme=scheme, n_train=n_train, **kw)
    if path.is_file() and not overwrite:
        saved = load_splits(path)
        check_split(saved, expected, path)
        if len(saved.shadows) >= len(expected.shadows):
            expected.n = n
            return expected
    fractions = SPLIT_DEFAULTS | {k: v for k, v in kw.items() if k in SPLIT_DEFAULTS}
    save_splits(expected, path, split_settings(kw.get("seed", 7), scheme, n, **fractions))
    expected.n = n
    return expected


def _prefix(splits: Splits, shadows: int) -> Splits:
    return Splits(splits.victim_train, splits.victim_dev, splits.victim_test, splits.shadows[:shadows])


# ---------------------------------------------------------------------------------------------- WeMem's split

WEMEM_TABULAR_TEST = 0.2  # WeMem's datasets.py: 80/20 train/test for the tabular sets (unseeded there)


def wemem_parts(n: int, n_train: int | None, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(train part, test part) of the pool, both sorted: the official split when the pool has one
    (train rows first), else a seeded 80/20 split (WeMem's was unseeded, so its rows are not reproducible).
    Mem-score rows follow the train part's order: row i is pool index train_part[i] (WeMem: train index)."""
    if n_train is not None:
        return np.arange(n_train), np.arange(n_train, n)
    train, test = train_test_split(np.arange(n), test_size=WEMEM_TABULAR_TEST, random_state=seed)
    return np.sort(train), np.sort(test)


def _wemem_three_way(half: np.ndarray, test_part: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """90 % train; the other 10 % joined (first) with the whole test part, split 34 / 66 into dev / test."""
    train, temp = train_test_split(half, test_size=0.1, random_state=seed)
    dev, test = train_test_split(np.concatenate([temp, test_part]), test_size=0.66, random_state=seed)
    return np.asarray(train), np.asarray(dev), np.asarray(test)


def make_wemem_splits(n: int, n_train: int | None, *, seed: int = 7, shadow_num: int = 5) -> Splits:
    """WeMem's split (docs/wemem.md): the train part halved (victim / attack, random_state=seed); each half as
    _wemem_three_way, shadow i on the attack half with seed + i. Members : non-members is about 73 : 27, and
    every model's non-members share the same official test rows. The artifact's make_splits stays the default.
    """
    train_part, test_part = wemem_parts(n, n_train, seed)
    try:
        victim, attack = train_test_split(train_part, test_size=0.5, random_state=seed)
        splits = Splits(*_wemem_three_way(victim, test_part, seed))
        splits.shadows = [_wemem_three_way(attack, test_part, seed + i) for i in range(shadow_num)]
    except ValueError as e:
        raise UserError(f"cannot apply WeMem's split to {n} samples: {e}", "use more data") from None
    return splits
