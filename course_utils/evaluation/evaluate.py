"""Measure a trained DDPM: Fashion-FID and KID, checkerboard score, classifier confidence, class spread.

Every number comes with its reference on real data at the same sample count n:

* ``fid`` / ``kid``: n generated samples vs n images of the test split; ``fid_floor`` / ``kid_floor``:
  the same metric between two disjoint sets of real images (n test vs n train images), i.e. what a
  perfect generator would score at this n. FID is biased upwards for small n, so only the gap to the
  floor means something, and only numbers at the same n can be compared.
* ``checkerboard`` vs ``checkerboard_real``: mean Nyquist amplitude (``course_utils.evaluation.metrics``).
* ``confidence``: mean of the classifier's top softmax probability on the samples (real test images
  score ``confidence_real``); low values mean the classifier cannot tell what the samples are.
* ``class_entropy``: entropy in bits of the histogram of predicted classes; log2(10) = 3.32 bits is
  a perfectly even spread over the 10 classes, 0 means every sample looks like one class.
* ``dark_fraction`` vs ``dark_fraction_real``: share of near-black pixels (backgrounds).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.classifier import load_classifier, predict
from course_utils.evaluation.fid import fid_from_features, kid_from_features
from course_utils.evaluation.metrics import checkerboard_score, dark_fraction

REAL_SEED = 0          # which real images form the reference sets (fixed, so every model meets the same ones)
MAX_N = 10000          # the size of the test split
_real_cache: dict = {}
_default_classifier = None


@dataclass(frozen=True)
class EvalSettings:
    """How a run is scored: ``n`` samples (``sampler``, ``steps``, ``eta``, seed ``seed``) against ``n`` test
    images; ``batchnorm="recomputed"`` recomputes the EMA weights' BatchNorm statistics first (``ema-check``)."""

    n: int = 500
    sampler: str = "ddim"
    steps: int | None = 50
    eta: float = 1.0
    batchnorm: str = "recomputed"
    seed: int = 0
    clip_x0: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, default in (("seed", 0), ("clip_x0", False)):
            if d[k] == default:
                del d[k]  # as the first study's records wrote it
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EvalSettings":
        return cls(**d)

    def sample_kwargs(self) -> dict:
        return {"sampler": self.sampler, "steps": self.steps, "eta": self.eta, "clip_x0": self.clip_x0}


def default_classifier():
    """The shipped classifier, loaded once per process."""
    global _default_classifier
    if _default_classifier is None:
        _default_classifier = load_classifier()
    return _default_classifier


def real_images(split: str, n: int, seed: int = REAL_SEED) -> torch.Tensor:
    """n images of ``split`` chosen by a seeded permutation (no flips)."""
    data = load(split)
    if n > len(data):
        raise CourseError(f"n={n} is more than the {len(data)} images of the {split} split.")
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data.images[idx]


def class_entropy(logits: torch.Tensor, num_classes: int = 10) -> float:
    """Entropy (bits) of the histogram of argmax classes."""
    counts = torch.bincount(logits.argmax(1), minlength=num_classes).double()
    p = counts / counts.sum()
    p = p[p > 0]
    return float(-(p * p.log2()).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def confidence(logits: torch.Tensor) -> float:
    """Mean over images of the largest softmax probability."""
    return float(logits.double().softmax(1).max(1).values.mean())


def _reference(classifier, n: int, kid_subsets: int) -> dict:
    """Real-data features and every real-vs-real number for this n (cached per classifier and n)."""
    key = (id(classifier), n, kid_subsets)
    hit = _real_cache.get(key)
    if hit is not None and hit["classifier"] is classifier:
        return hit
    test = real_images("test", n)
    train = real_images("train", n)
    f_test, l_test = predict(classifier, test)
    f_train, _ = predict(classifier, train)
    kid_floor, kid_floor_std = kid_from_features(f_train, f_test, subsets=kid_subsets)
    ref = {"classifier": classifier, "features": f_test,
           "fid_floor": fid_from_features(f_train, f_test), "kid_floor": kid_floor, "kid_floor_std": kid_floor_std,
           "checkerboard_real": checkerboard_score(test), "dark_fraction_real": dark_fraction(test),
           "confidence_real": confidence(l_test), "class_entropy_real": class_entropy(l_test)}
    if len(_real_cache) > 8:
        _real_cache.clear()
    _real_cache[key] = ref
    return ref


def generate(model: torch.nn.Module, n: int, seed: int = 0, batch: int = 250, **sample_kwargs) -> torch.Tensor:
    """n samples in batches of ``batch``; batch i uses seed ``seed * 1000 + i`` (reproducible, disjoint noise)."""
    out = []
    for i, start in enumerate(range(0, n, batch)):
        out.append(sample(model, min(batch, n - start), seed=seed * 1000 + i, **sample_kwargs))
    return torch.cat(out)


def evaluate_images(images: torch.Tensor, classifier=None, kid_subsets: int = 100) -> dict:
    """All metrics for given images (N, 1, 16, 16) in [-1, 1] against N real test images."""
    images = torch.as_tensor(images).float().cpu()
    if images.ndim != 4 or images.shape[1:] != (1, 16, 16):
        raise CourseError(f"expected images of shape (N, 1, 16, 16), got {tuple(images.shape)}.")
    n = len(images)
    if not 2 <= n <= MAX_N:
        raise CourseError(f"need between 2 and {MAX_N} images (the test split's size), got {n}.")
    clf = classifier if classifier is not None else default_classifier()
    ref = _reference(clf, n, kid_subsets)
    feats, logits = predict(clf, images.clamp(-1, 1))
    kid, kid_std = kid_from_features(feats, ref["features"], subsets=kid_subsets)
    return {
        "n": n,
        "fid": fid_from_features(feats, ref["features"]), "fid_floor": ref["fid_floor"],
        "kid": kid, "kid_std": kid_std, "kid_floor": ref["kid_floor"],
        "checkerboard": checkerboard_score(images), "checkerboard_real": ref["checkerboard_real"],
        "confidence": confidence(logits), "confidence_real": ref["confidence_real"],
        "class_entropy": class_entropy(logits), "class_entropy_real": ref["class_entropy_real"],
        "class_entropy_uniform": math.log2(10),
        "dark_fraction": dark_fraction(images), "dark_fraction_real": ref["dark_fraction_real"],
    }


def evaluate(model: torch.nn.Module, n: int = 1000, seed: int = 0, classifier=None, batch: int = 250,
             kid_subsets: int = 100, **sample_kwargs) -> dict:
    """Draw n samples from ``model`` (``course_utils.diffusion.sample``, in batches) and measure them.

    Returns a dict with fid, fid_floor, kid, kid_std, kid_floor, checkerboard, checkerboard_real,
    confidence, confidence_real, class_entropy, class_entropy_real, class_entropy_uniform,
    dark_fraction, dark_fraction_real and n, and how the samples were drawn: sampler, sampler_steps, eta,
    sample_seconds and images_per_s. ``classifier`` defaults to the shipped one; ``sample_kwargs`` go to
    :func:`course_utils.diffusion.sample` (e.g. ``sampler="ddim", steps=25``).
    """
    if not isinstance(n, int) or not 2 <= n <= MAX_N:
        raise CourseError(f"n must be a whole number between 2 and {MAX_N} (the test split's size), got {n!r}.")
    if not isinstance(batch, int) or batch < 1:
        raise CourseError(f"batch must be a whole number >= 1, got {batch!r}.")
    clf = classifier if classifier is not None else default_classifier()  # fail early, before sampling
    import time
    t0 = time.perf_counter()
    images = generate(model, n, seed=seed, batch=batch, **sample_kwargs)
    seconds = time.perf_counter() - t0
    sampler = sample_kwargs.get("sampler", "ddpm")
    steps = sample_kwargs.get("steps") or (25 if sampler == "ddim" else getattr(getattr(model, "config", None), "T", 150))
    return {**evaluate_images(images, clf, kid_subsets=kid_subsets), "sampler": sampler, "sampler_steps": steps,
            "eta": sample_kwargs.get("eta", 0.0) if sampler == "ddim" else None,
            "sample_seconds": seconds, "images_per_s": n / seconds}


def format_report(result: dict, name: str = "") -> str:
    """Human-readable lines: every generated-sample number beside its real-data reference."""
    r = result
    head = f"{name}: " if name else ""
    return "\n".join([
        f"{head}{r['n']} samples vs {r['n']} real test images (reference: real vs real at the same n)",
        f"  FID            {r['fid']:10.4f}   real-vs-real floor {r['fid_floor']:.4f}",
        f"  KID            {r['kid']:10.5f}   (std {r['kid_std']:.5f})   real-vs-real floor {r['kid_floor']:.5f}",
        f"  checkerboard   {r['checkerboard']:10.4f}   real images {r['checkerboard_real']:.4f}",
        f"  confidence     {r['confidence']:10.4f}   real images {r['confidence_real']:.4f}",
        f"  class entropy  {r['class_entropy']:10.4f}   real images {r['class_entropy_real']:.4f} bits "
        f"(uniform over 10 classes: {r['class_entropy_uniform']:.4f})",
        f"  dark fraction  {r['dark_fraction']:10.4f}   real images {r['dark_fraction_real']:.4f}",
    ])
