"""Real Fashion-MNIST, found offline when possible, preprocessed once to 16x16 tensors in [-1, 1].

Search order for the four IDX files: ``$FASHION_MNIST_DIR``, the repository's cache (``data/``),
``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package ``dataset-fashion-mnist``), and last
torchvision's download when the machine is online. The preprocessed tensors are cached as
safetensors in the cache folder, so later runs load in well under a second.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.errors import CourseError, DatasetNotFound
from course_utils.paths import cache_dir

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
SYSTEM_DIR = Path(os.environ.get("COURSE_SYSTEM_DATA_DIR", "/usr/share/datasets/fashion-mnist"))
IMG_SIZE = 16


def how_to_get_it(searched: list[str]) -> str:
    return ("Fashion-MNIST was not found. Looked in:\n  " + "\n  ".join(searched) + "\n"
            "Get it in any one of these ways:\n"
            "  1. Debian/Ubuntu: sudo apt-get install -y dataset-fashion-mnist  (files land in /usr/share/datasets/fashion-mnist)\n"
            "  2. Put the four files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,\n"
            "     t10k-labels-idx1-ubyte.gz (gzipped or not) in a folder and set FASHION_MNIST_DIR=/that/folder\n"
            f"  3. Copy them into the course's cache folder {cache_dir() / 'FashionMNIST' / 'raw'}\n"
            "  4. Go online once: python -m course_utils data  downloads them with torchvision")


def _find_file(folder: Path, stem: str) -> Path | None:
    for sub in ("", "FashionMNIST/raw", "raw"):
        for name in (stem + ".gz", stem):
            p = folder / sub / name
            if p.is_file():
                return p
    return None


def _folder_complete(folder: Path) -> bool:
    return all(_find_file(folder, s) for split in FILES.values() for s in split[:2])


def _read_idx(path: Path, expect_dims: int, expect_n: int) -> np.ndarray:
    """One IDX file (gzipped or not) read by torchvision's reader, checked for its shape; a bad file raises
    :class:`DatasetNotFound` with the fix."""
    import tempfile

    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor
    fix = "Fix: delete it and get the file again (sudo apt-get install --reinstall dataset-fashion-mnist, or download it anew)."
    with tempfile.TemporaryDirectory() as tmp:
        plain = path
        if path.suffix == ".gz":  # torchvision's reader takes plain files: unzip to a temporary copy
            plain = Path(tmp) / path.stem
            try:
                with gzip.open(path, "rb") as f:
                    plain.write_bytes(f.read())
            except (OSError, EOFError) as e:
                raise DatasetNotFound(f"{path} is corrupt or truncated ({e}). {fix}") from e
        try:
            x = read_sn3_pascalvincent_tensor(str(plain), strict=True)
        except Exception as e:  # torchvision raises KeyError, AssertionError or RuntimeError on a damaged header
            why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise DatasetNotFound(f"{path} is incomplete or truncated: torchvision cannot read it as an IDX file "
                                  f"({why}). {fix}") from e
    if x.dtype != torch.uint8 or x.ndim != expect_dims or x.shape[0] != expect_n:
        raise DatasetNotFound(f"{path} holds a {x.dtype} array of shape {tuple(x.shape)}, expected {expect_n} uint8 "
                              f"items with {expect_dims} dimension(s). Fix: check that it is the right Fashion-MNIST "
                              "file, or get it again.")
    return x.numpy()


def locate_raw(download: bool = True) -> tuple[Path, str]:
    """Return (folder holding the IDX files, a sentence saying where they came from)."""
    searched = []
    env = os.environ.get("FASHION_MNIST_DIR")
    candidates = []
    if env:
        candidates.append((Path(env).expanduser(), "$FASHION_MNIST_DIR"))
    else:
        searched.append("$FASHION_MNIST_DIR (not set)")
    candidates += [(cache_dir(), "the course's cache"), (SYSTEM_DIR, "the Debian package dataset-fashion-mnist")]
    for folder, label in candidates:
        searched.append(f"{folder} ({label})")
        if folder.is_dir():
            if _folder_complete(folder):
                return folder, f"{label}: {folder}"
            if env and label == "$FASHION_MNIST_DIR":
                missing = [s for split in FILES.values() for s in split[:2] if not _find_file(folder, s)]
                raise DatasetNotFound(f"FASHION_MNIST_DIR={folder} is missing {', '.join(missing)} (.gz or plain). "
                                      "Fix: put all four files there, or unset FASHION_MNIST_DIR.\n"
                                      + how_to_get_it(searched))
    if download and os.environ.get("COURSE_OFFLINE", "") not in ("1", "true", "yes"):
        searched.append("torchvision download (needs the internet)")
        try:
            from torchvision.datasets import FashionMNIST
            root = cache_dir()
            for split in (True, False):
                FashionMNIST(str(root), train=split, download=True)
            if _folder_complete(root):
                return root, f"downloaded by torchvision into {root}"
        except Exception:  # offline, blocked, or a mirror that fails its checksum
            pass
    raise DatasetNotFound(how_to_get_it(searched))


def preprocess(images: np.ndarray | torch.Tensor, size: int = IMG_SIZE) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, size, size) in [-1, 1], antialiased bilinear resize of the whole set at once."""
    x = torch.as_tensor(np.array(images, copy=True)).float().div(255.0)[:, None]
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).mul(2).sub(1).contiguous()


@dataclass
class FashionData:
    images: torch.Tensor  # (N, 1, 16, 16) float32 in [-1, 1]
    labels: torch.Tensor  # (N,) int64
    split: str
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> "FashionData":
        return FashionData(self.images.to(device), self.labels.to(device), self.split, self.source)


def load(split: str = "train", size: int = IMG_SIZE, download: bool = True) -> FashionData:
    """The real Fashion-MNIST ``split`` ("train" or "test") as 16x16 tensors in [-1, 1], cached after the first call."""
    from safetensors.torch import load_file, save_file

    if split not in FILES:
        raise DatasetNotFound(f"unknown split {split!r}; use 'train' (for training) or 'test' (for evaluation).")
    cache = cache_dir() / f"fashion_{split}_{size}.safetensors"
    if cache.is_file():
        try:
            t = load_file(str(cache))
            if t["images"].shape == (FILES[split][2], 1, size, size):
                return FashionData(t["images"], t["labels"].long(), split, f"cache {cache}")
        except Exception:
            pass  # a damaged cache is rebuilt below
    folder, source = locate_raw(download)
    img_stem, lab_stem, n = FILES[split]
    images = _read_idx(_find_file(folder, img_stem), 3, n)
    labels = _read_idx(_find_file(folder, lab_stem), 1, n)
    x = preprocess(images, size)
    y = torch.from_numpy(labels.astype(np.int64))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
        save_file({"images": x, "labels": y}, str(tmp))
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only checkout still works, only slower
    return FashionData(x, y, split, source)


class Batches:
    """Shuffled mini-batches with a random horizontal flip per image, drawn on the data's own device.

    Iterating forever: ``next(batches)`` returns (images, labels). Whole epochs are permutations of
    the set; with a seed the sequence is reproducible.

    With ``world`` > 1 (multi-process training) every process uses the same seed, so all draw the same permutation,
    and process ``rank`` takes its own ``batch_size / world`` images of each batch: together the processes see
    exactly the batches one process would, each image once per epoch.
    """

    def __init__(self, data: FashionData, batch_size: int = 128, flip: bool = True, seed: int | None = 0,
                 drop_last: bool = True, rank: int = 0, world: int = 1):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise CourseError(f"batch_size must be a whole number >= 1, got {batch_size!r}. Fix: e.g. batch_size=128.")
        if not (isinstance(world, int) and world >= 1 and 0 <= rank < world and batch_size % world == 0):
            raise CourseError(f"batch_size {batch_size} must split evenly over {world} processes (rank {rank}). "
                              f"Fix: a batch size divisible by {world}, e.g. {max(world, batch_size // world * world)}.")
        self.data, self.batch_size, self.flip, self.drop_last = data, batch_size, flip, drop_last
        self.rank, self.world, self.shard = rank, world, batch_size // world
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(seed if seed is not None else torch.seed())
        self.epoch, self._perm, self._pos = 0, None, 0

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self._pos, "gen": self.gen.get_state()}

    def __iter__(self):
        return self

    def __next__(self):
        n = len(self.data)
        if self._perm is None or self._pos + (self.batch_size if self.drop_last else 1) > n:
            self._perm = torch.randperm(n, generator=self.gen)
            self._pos = 0
            self.epoch += 1
        start = self._pos + self.rank * self.shard
        idx = self._perm[start:min(start + self.shard, self._pos + self.batch_size)]
        self._pos += self.batch_size
        idx = idx.to(self.data.images.device)
        x = self.data.images[idx]
        if self.flip:
            mask = (torch.rand(len(idx), generator=self.gen) < 0.5).to(x.device).view(-1, 1, 1, 1)
            x = torch.where(mask, x.flip(-1), x)
        return x, self.data.labels[idx]
