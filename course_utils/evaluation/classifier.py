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
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.errors import CheckpointError, CourseError
from course_utils.paths import checkpoint_dir
from course_utils.system import atomic_write_bytes, atomic_write_text, git_commit, hardware, pick_device

CLASSIFIER_NAME = "classifier.safetensors"

FORMAT = "ddpm-course-classifier/1"
REGENERATE = "python -m course_utils train-classifier"
FEATURE_DIM = 256


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



def train_classifier(epochs: int = 4, seed: int = 0, batch_size: int = 128, lr: float = 2e-3,
                     device: str | torch.device | None = None, steps: int | None = None,
                     progress: bool = True, train_data=None, test_data=None,
                     out: str | Path | None = None, command: str | None = None,
                     threads: int | None = None) -> tuple[FashionClassifier, dict]:
    """Train the classifier on the train split (random flips), measure accuracy on the test split.

    Adam with a one-cycle learning-rate schedule, label smoothing 0.05. ``steps`` overrides
    ``epochs`` (468 steps of 128 make an epoch; tests use a handful). With ``out`` the weights and the
    manifest are written there (``out`` and ``out`` with ``.json``). ``threads`` sets torch's CPU
    threads while training (1 is much faster than 2 on a busy 2-core machine). Returns (model, manifest).
    """
    old_threads = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise CourseError(f"threads must be at least 1, got {threads}.")
        torch.set_num_threads(threads)
    try:
        return _train(epochs, seed, batch_size, lr, device, steps, progress, train_data, test_data, out, command)
    finally:
        torch.set_num_threads(old_threads)


def _train(epochs, seed, batch_size, lr, device, steps, progress, train_data, test_data, out, command):
    from course_utils.data import Batches, load
    if epochs < 1 and steps is None:
        raise CourseError(f"epochs must be at least 1, got {epochs}.")
    if steps is not None and steps < 1:
        raise CourseError(f"steps must be at least 1, got {steps}.")
    device = pick_device(str(device) if device is not None else None)
    train_data = train_data if train_data is not None else load("train")
    test_data = test_data if test_data is not None else load("test")
    per_epoch = max(1, len(train_data) // batch_size)
    total = steps if steps is not None else epochs * per_epoch
    torch.manual_seed(seed)
    model = FashionClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.2)
    batches = Batches(train_data.to(device) if hasattr(train_data, "to") else train_data, batch_size, seed=seed)
    it = range(total)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="classifier", leave=False)
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    running = None
    for _ in it:
        x, y = next(batches)
        loss = F.cross_entropy(model(x), y.to(device), label_smoothing=0.05)
        if not torch.isfinite(loss):
            raise CourseError("the classifier's loss became NaN/inf. Fix: lower --lr or use another --seed.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        lv = float(loss.detach())
        running = lv if running is None else 0.98 * running + 0.02 * lv
        if progress and hasattr(it, "set_postfix"):
            it.set_postfix(loss=f"{running:.3f}", refresh=False)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    model.eval()
    acc = accuracy(model, test_data.images, test_data.labels)
    threads_used = torch.get_num_threads()
    manifest = {
        "command": command or f"python -m course_utils train-classifier --epochs {epochs} --seed {seed}",
        "git_commit": git_commit(), "epochs": round(total / per_epoch, 3), "steps": total,
        "batch_size": batch_size, "seed": seed, "wall_seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "hardware": {**hardware(), "threads": threads_used, "device": str(device)}, "test_accuracy": round(acc, 4),
        "test_images": len(test_data), "final_train_loss": round(running, 4),
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
    from safetensors.torch import save

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
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file
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
