"""A small Fashion-MNIST classifier at 16x16: the feature extractor behind Fashion-FID and KID.

Inception-v3 features (the usual FID) know nothing about 16x16 grey clothes, so the course trains its
own network: three 3x3 convolutions (32, 64, 128 channels, each with BatchNorm and ReLU; the last two
with stride 2, so 16 -> 8 -> 4 pixels), flattened (128 x 4 x 4 = 2048 values, so the layout of the
garment is kept), then a hidden layer of 256 units. Strided convolutions instead of max pooling
keep training cheap on a CPU. The
256-d output of that hidden layer (after its ReLU) is the *penultimate feature vector* that
``features`` returns; a final Linear layer maps it to the 10 class logits.

The shipped weights live in ``checkpoints/classifier.safetensors`` with a manifest
``checkpoints/classifier.json`` (command, commit, steps, time, hardware, test accuracy). Regenerate
both with ``python -m course_utils train-classifier``.
"""
from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from course_utils.data import load
from course_utils.errors import CheckpointError, CourseError
from course_utils.paths import checkpoint_dir
from course_utils.system import atomic_write_bytes, atomic_write_text, git_commit, hardware, pick_device
from course_utils.train import ProgressBar, TorchScheduler, Trainer

CLASSIFIER_NAME = "classifier.safetensors"

FORMAT = "ddpm-course-classifier/1"
REGENERATE = "python -m course_utils train-classifier"
FEATURE_DIM = 256
LABEL_SMOOTHING = 0.05


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class FashionClassifier(nn.Module):
    """CNN for (N, 1, 16, 16) images in [-1, 1]; ``features`` -> (N, 256), ``forward`` -> (N, 10) logits."""

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), feature_dim: int = FEATURE_DIM,
                 num_classes: int = 10, dropout: float = 0.2):
        super().__init__()
        c1, c2, c3 = widths
        self.widths, self.feature_dim, self.num_classes = tuple(widths), feature_dim, num_classes
        self.body = nn.Sequential(
            _conv(1, c1),               # 16 x 16
            _conv(c1, c2, stride=2),    # -> 8 x 8
            _conv(c2, c3, stride=2),    # -> 4 x 4
            nn.Flatten(),               # 128 x 4 x 4 = 2048 values: keeps where things are
        )
        self.hidden = nn.Sequential(nn.Linear(c3 * 16, feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise CourseError(f"the classifier expects images of shape (N, 1, H, W) in [-1, 1], got {shape}.")
        return x.float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 256): the vectors Fashion-FID and KID compare."""
        return self.hidden(self.body(self._check(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def predict(model: FashionClassifier, images: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 256), logits (N, 10)) in eval mode, in batches; returned on the CPU."""
    was = model.training
    model.eval()
    dev = _device_of(model)
    feats, logits = [], []
    for i in range(0, len(images), batch):
        f = model.features(images[i:i + batch].to(dev))
        feats.append(f.cpu())
        logits.append(model.head(f).cpu())
    model.train(was)
    if not feats:
        return torch.zeros(0, model.feature_dim), torch.zeros(0, model.num_classes)
    return torch.cat(feats), torch.cat(logits)


@torch.no_grad()
def accuracy(model: FashionClassifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> float:
    _, logits = predict(model, images, batch)
    return float((logits.argmax(1) == labels.cpu()).float().mean())



@dataclass
class ClassifierRun:
    """How the classifier is trained; each field is also a keyword of :func:`train_classifier`. ``steps`` overrides
    ``epochs`` (an epoch is ``len(train) // batch_size`` steps); ``threads`` sets torch's CPU threads while training
    (1 is much faster than 2 on a busy 2-core machine)."""

    epochs: int = 4
    seed: int = 0
    batch_size: int = 128
    lr: float = 2e-3
    device: str | torch.device | None = None
    steps: int | None = None
    progress: bool = True
    threads: int | None = None

    def __post_init__(self):
        if self.threads is not None and self.threads < 1:
            raise CourseError(f"threads must be at least 1, got {self.threads}.")
        if self.epochs < 1 and self.steps is None:
            raise CourseError(f"epochs must be at least 1, got {self.epochs}.")
        if self.steps is not None and self.steps < 1:
            raise CourseError(f"steps must be at least 1, got {self.steps}.")


def classification_loss(tr: Trainer, batch) -> torch.Tensor:
    """The classifier's step for :class:`course_utils.train.Trainer`: cross-entropy with label smoothing 0.05."""
    x, y = batch
    return F.cross_entropy(tr.net(x), y, label_smoothing=LABEL_SMOOTHING)


def one_cycle(lr: float, total: int) -> TorchScheduler:
    """Adam's learning rate (and beta1) on a one-cycle schedule over ``total`` steps, 20% of them warming up."""
    pct = 0.2 if total != 5 else 0.25  # torch's OneCycleLR divides by zero when pct_start * total_steps == 1
    return TorchScheduler(lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total,
                                                                          pct_start=pct))


def train_classifier(run: ClassifierRun | None = None, *, train_data=None, test_data=None,
                     out: str | Path | None = None, command: str | None = None,
                     **keywords) -> tuple[FashionClassifier, dict]:
    """Train the classifier on the train split (random flips), measure accuracy on the test split.

    The keywords are the fields of :class:`ClassifierRun` (``epochs``, ``seed``, ``batch_size``, ``lr``,
    ``device``, ``steps``, ``progress``, ``threads``). Adam with a one-cycle learning-rate schedule, label smoothing
    0.05, in :class:`course_utils.train.Trainer` with :func:`classification_loss` as its step. With ``out`` the
    weights and the manifest are written there (``out`` and ``out`` with ``.json``). Returns (model, manifest).
    """
    names = [f.name for f in fields(ClassifierRun)]
    unknown = [k for k in keywords if k not in names]
    if unknown:
        raise TypeError(f"train_classifier() got an unknown keyword {unknown[0]!r}. Its keywords are: "
                        f"{', '.join(names)}, train_data, test_data, out, command.")
    run = replace(run or ClassifierRun(), **keywords)
    old_threads = torch.get_num_threads()
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    try:
        return _fit(run, train_data if train_data is not None else load("train"),
                    test_data if test_data is not None else load("test"), out, command)
    finally:
        torch.set_num_threads(old_threads)


def _fit(run: ClassifierRun, train_data, test_data, out, command) -> tuple[FashionClassifier, dict]:
    device = pick_device(str(run.device) if run.device is not None else None)
    per_epoch = max(1, len(train_data) // run.batch_size)
    total = run.steps if run.steps is not None else run.epochs * per_epoch
    torch.manual_seed(run.seed)
    model = FashionClassifier().to(device)
    callbacks = [one_cycle(run.lr, total)] + ([ProgressBar("classifier", leave=False)] if run.progress else [])
    rng = torch.get_rng_state()
    tr = Trainer(model, train_data, total, lr=run.lr, batch_size=run.batch_size, seed=run.seed, device=device,
                 loss_fn=classification_loss, callbacks=callbacks)
    torch.set_rng_state(rng)  # Trainer reseeds torch; dropout goes on from where the initialisation left it
    t0, c0 = time.perf_counter(), time.process_time()
    losses = tr.fit().losses
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    running = losses[0]
    for value in losses[1:]:
        running = 0.98 * running + 0.02 * value
    acc = accuracy(model, test_data.images, test_data.labels)
    manifest = {
        "command": command or f"python -m course_utils train-classifier --epochs {run.epochs} --seed {run.seed}",
        "git_commit": git_commit(), "epochs": round(total / per_epoch, 3), "steps": total,
        "batch_size": run.batch_size, "seed": run.seed, "wall_seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "hardware": {**hardware(), "threads": torch.get_num_threads(), "device": str(device)},
        "test_accuracy": round(acc, 4), "test_images": len(test_data), "final_train_loss": round(running, 4),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "architecture": {"widths": list(model.widths), "feature_dim": model.feature_dim},
    }
    model.cpu()
    if out is not None:
        save_classifier(model, out, manifest)
    return model, manifest


def manifest_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def classifier_path() -> Path:
    """``checkpoints/classifier.safetensors`` in the course folder: the shipped classifier."""
    return checkpoint_dir() / CLASSIFIER_NAME


def save_classifier(model: FashionClassifier, path: str | Path | None = None, manifest: dict | None = None) -> Path:
    """Write the weights (safetensors, atomically) and, if given, the manifest JSON next to them."""
    path = Path(path) if path is not None else classifier_path()
    if path.suffix != ".safetensors":
        raise CourseError(f"the classifier is saved as .safetensors; got {path}. Fix: --out NAME.safetensors")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "widths": list(model.widths), "feature_dim": model.feature_dim,
              "num_classes": model.num_classes}
    if manifest:
        header["test_accuracy"] = manifest.get("test_accuracy")
    atomic_write_bytes(path, save(tensors, metadata={"course": json.dumps(header)}))
    if manifest is not None:
        atomic_write_text(manifest_path(path), json.dumps(manifest, indent=1) + "\n")
    return path


def load_classifier(path: str | Path | None = None, device: str | torch.device = "cpu") -> FashionClassifier:
    """Load the shipped classifier (or ``path``) in eval mode. Missing/corrupt files raise CheckpointError."""
    shipped = classifier_path()
    path = Path(path) if path is not None else shipped
    if path == shipped:
        fix = (f"Fix: regenerate it with `{REGENERATE}` (2-3 minutes of CPU time), or restore it with "
               "`git checkout -- checkpoints/`.")
    else:
        fix = f"Fix: regenerate it with `{REGENERATE} --out {path}` (2-3 minutes of CPU time)."
    if not path.is_file():
        raise CheckpointError(f"the metric classifier {path} is missing. {fix}")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            md = f.metadata() or {}
        header = json.loads(md.get("course", "{}"))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the metric classifier {path} is corrupt or truncated ({e}). {fix}") from e
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a classifier checkpoint of this course (format "
                              f"{header.get('format')!r}). {fix}")
    model = FashionClassifier(tuple(header["widths"]), header["feature_dim"], header["num_classes"])
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"the metric classifier {path} does not fit the current architecture ({e}). {fix}") from e
    return model.to(device).eval()
