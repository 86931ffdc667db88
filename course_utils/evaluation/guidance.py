"""Classifier-free guidance, measured (notebook 10, ``evaluate`` on a class-conditional checkpoint).

For each guidance weight w, draw the same number of samples of every class (e = (1 + w) e_cond - w e_uncond, see
:func:`course_utils.diffusion.guided_output`) and ask the course's Fashion-MNIST classifier:

- **accuracy**: how often it assigns a sample to the class that was asked for, overall and per class, beside its
  accuracy on real test images (the bar a guided model should reach);
- **Fashion-FID** of all the samples against as many real test images;
- **diversity**: the spread of the classifier's features within each class (the root of the mean squared distance
  to the class mean, averaged over classes), beside the same spread for real test images. Guidance that buys
  accuracy by drawing the same few garments shows here.
"""
from __future__ import annotations

import time

import torch

from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.classifier import predict
from course_utils.evaluation.evaluate import default_classifier, evaluate_images

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")


def spread_within_classes(features: torch.Tensor, labels: torch.Tensor) -> float:
    """sqrt(mean over classes of the mean squared distance of a class's features to their mean)."""
    per = []
    for c in labels.unique():
        f = features[labels == c]
        if len(f) > 1:
            per.append(((f - f.mean(0)) ** 2).sum(1).mean())
    return float(torch.stack(per).mean().sqrt()) if per else float("nan")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, list[float]]:
    """(overall accuracy, per-class accuracy for classes 0..9) of argmax(logits) against ``labels``."""
    right = logits.argmax(1) == labels
    per = [float(right[labels == c].float().mean()) if bool((labels == c).any()) else float("nan") for c in range(10)]
    return float(right.float().mean()), per


def real_reference(n_per_class: int, classifier) -> dict:
    """The classifier on real test images: accuracy (overall, per class) and the feature spread within classes,
    from the first ``n_per_class`` test images of each class."""
    test = load("test")
    idx = torch.cat([torch.nonzero(test.labels == c).flatten()[:n_per_class] for c in range(10)])
    feats, logits = predict(classifier, test.images[idx])
    acc, per = accuracy(logits, test.labels[idx])
    return {"accuracy": acc, "per_class": per, "spread": spread_within_classes(feats, test.labels[idx])}


def guidance_sweep(model, weights=WEIGHTS, n_per_class: int = 100, seed: int = 0, classifier=None,
                   batch: int = 250, progress: bool = False, **sample_kwargs) -> dict:
    """For each w in ``weights``: ``n_per_class`` guided samples of each class, their accuracy (overall and per
    class), Fashion-FID and feature spread; and the same measures for real test images under "real"."""
    if not getattr(getattr(model, "config", None), "num_classes", 0):
        raise CourseError("guidance needs a class-conditional model (num_classes > 0), e.g. the preset "
                          "optimized_cond or checkpoints/optimized_cond-final.safetensors.")
    if not isinstance(n_per_class, int) or n_per_class < 1:
        raise CourseError(f"n_per_class must be a whole number >= 1, got {n_per_class!r}.")
    clf = classifier if classifier is not None else default_classifier()
    labels = torch.arange(10).repeat_interleave(n_per_class)
    rows = []
    for w in weights:
        t0 = time.perf_counter()
        parts = []
        for i, start in enumerate(range(0, len(labels), batch)):
            lab = labels[start:start + batch]
            parts.append(sample(model, len(lab), seed=seed * 1000 + i, labels=lab, guidance=float(w), **sample_kwargs))
        images = torch.cat(parts)
        seconds = time.perf_counter() - t0
        feats, logits = predict(clf, images)
        acc, per = accuracy(logits, labels)
        m = evaluate_images(images, clf)
        rows.append({"w": float(w), "accuracy": acc, "per_class": per, "fid": m["fid"], "fid_floor": m["fid_floor"],
                     "spread": spread_within_classes(feats, labels), "dark_fraction": m["dark_fraction"],
                     "sample_seconds": seconds})
        if progress:
            print(f"w = {w:g}: accuracy {acc:.3f}, FID {m['fid']:.1f}, spread {rows[-1]['spread']:.2f}", flush=True)
    return {"n_per_class": n_per_class, "seed": seed, "rows": rows, "real": real_reference(n_per_class, clf),
            "classes": list(CLASSES)}


def format_sweep(result: dict) -> str:
    """A plain-text table: one row per w, then real images."""
    real = result["real"]
    def worst(per):
        c = min(range(10), key=lambda k: per[k])
        return f"{CLASSES[c]} ({per[c]:.2f})"
    lines = [f"{'w':>4} {'accuracy':>9} {'FID':>7} {'spread':>7} {'worst class':>24}"]
    for r in result["rows"]:
        lines.append(f"{r['w']:>4g} {r['accuracy']:>9.3f} {r['fid']:>7.1f} {r['spread']:>7.2f} {worst(r['per_class']):>24}")
    lines.append(f"{'real':>4} {real['accuracy']:>9.3f} {'':>7} {real['spread']:>7.2f} {worst(real['per_class']):>24}")
    lines.append(f"({result['n_per_class']} samples per class; FID floor {result['rows'][0]['fid_floor']:.1f} at "
                 f"n = {10 * result['n_per_class']}; spread: features' distance to their class mean)")
    return "\n".join(lines)
