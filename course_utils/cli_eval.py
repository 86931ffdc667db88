"""Command-line subcommands of the metrics layer: ``train-classifier`` and ``evaluate``.

``course_utils.cli`` registers them with ``add_parsers(sub)``.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from .cli import _positive
from .errors import CourseError




def cmd_train_classifier(args) -> int:
    from .classifier import CLASSIFIER_PATH, manifest_path, train_classifier
    from .checkpoints import _ensure_writable
    out = Path(args.out) if args.out else CLASSIFIER_PATH
    if out.suffix != ".safetensors":
        raise CourseError(f"--out must name a .safetensors file, got {out}.")
    _ensure_writable(out.parent)
    command = "python -m course_utils train-classifier " + " ".join(
        shlex.quote(a) for a in (["--epochs", str(args.epochs), "--seed", str(args.seed)]
                                 + (["--threads", str(args.threads)] if args.threads else [])
                                 + (["--out", args.out] if args.out else [])))
    print(f"training the metric classifier for {args.epochs} epoch(s), seed {args.seed} -> {out}")
    _, manifest = train_classifier(epochs=args.epochs, seed=args.seed, device=args.device, out=out,
                                   command=command, threads=args.threads)
    print(f"test accuracy {manifest['test_accuracy']:.4f} on {manifest['test_images']} test images after "
          f"{manifest['steps']} steps in {manifest['wall_seconds']:.0f} s")
    print(f"wrote {out} and {manifest_path(out)}")
    return 0


def find_checkpoint(variant: str, checkpoint: str | None = None) -> Path:
    """--checkpoint, else checkpoints/VARIANT.safetensors, else runs/{full,quick,ci}/VARIANT-seed0/model.safetensors."""
    from .runs import run_dir, shipped_path
    if checkpoint:
        p = Path(checkpoint)
        if not p.is_file():
            raise CourseError(f"--checkpoint {p} does not exist. Fix: give the path of a .safetensors file.")
        return p
    candidates = [shipped_path(variant)] + [run_dir(variant, b, 0) / "model.safetensors" for b in ("full", "quick", "ci")]
    for c in candidates:
        if c.is_file():
            return c
    raise CourseError(f"no trained {variant!r} found; looked in:\n  " + "\n  ".join(str(c) for c in candidates)
                      + f"\nFix: python -m course_utils train {variant}   (or pass --checkpoint PATH).")


def cmd_evaluate(args) -> int:
    from .checkpoints import load_checkpoint
    from .evaluate import default_classifier, evaluate, format_report
    from .unet import get_preset
    get_preset(args.variant)
    path = find_checkpoint(args.variant, args.checkpoint)
    default_classifier()  # a missing classifier fails before any sampling
    model, header = load_checkpoint(path, args.variant)
    if not args.json:
        print(f"evaluating {args.variant} from {path} ({header.get('meta', {}).get('step', '?')} steps, "
              f"{header.get('weights', 'model')} weights): sampling {args.n} images, seed {args.seed}")
    result = evaluate(model, n=args.n, seed=args.seed, batch=args.batch)
    if args.json:
        print(json.dumps({"variant": args.variant, "checkpoint": str(path), "seed": args.seed, **result}, indent=1))
    else:
        print(format_report(result, args.variant))
    return 0


def add_parsers(sub) -> None:
    """Add ``train-classifier`` and ``evaluate`` to the CLI's subparsers."""
    s = sub.add_parser(
        "train-classifier", help="train the small Fashion-MNIST classifier behind Fashion-FID/KID",
        description="Train the 16x16 Fashion-MNIST classifier whose penultimate features Fashion-FID and KID "
                    "compare. Trains on the train split (random flips), reports accuracy on the test split and "
                    "writes the weights (safetensors) plus a JSON manifest (command, commit, steps, time, "
                    "hardware, accuracy) next to them. About 2-3 minutes on a CPU.")
    s.add_argument("--epochs", type=_positive, default=4, help="passes over the 60,000 training images (default 4)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--out", metavar="PATH.safetensors",
                   help="where to write the weights (default checkpoints/classifier.safetensors; the manifest "
                        "goes to the same name with .json)")
    s.add_argument("--threads", type=_positive, default=None,
                   help="CPU threads for torch while training (default: torch's choice; 1 is often faster on "
                        "a busy machine)")
    s.add_argument("--device", help="cpu | cuda | mps (default: best available)")
    s.set_defaults(func=cmd_train_classifier)

    s = sub.add_parser(
        "evaluate", help="Fashion-FID, KID, checkerboard score and more for a trained preset",
        description="Sample N images from a trained preset and measure them against N real test images: "
                    "Fashion-FID and KID (each beside its real-vs-real floor at the same N), checkerboard score, "
                    "classifier confidence, class entropy and dark-pixel fraction (each beside real images). "
                    "The checkpoint is --checkpoint, else checkpoints/VARIANT.safetensors, else "
                    "runs/{full,quick,ci}/VARIANT-seed0/model.safetensors.")
    s.add_argument("variant", metavar="VARIANT", help="a preset name (see: python -m course_utils variants)")
    s.add_argument("--checkpoint", metavar="PATH", help="a .safetensors checkpoint of this preset")
    s.add_argument("-n", type=_positive, default=1000,
                   help="samples to draw and real images to compare with (default 1000; at most 10000). "
                        "Compare FID only between runs with the same N.")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default 0); the real images are fixed")
    s.add_argument("--batch", type=_positive, default=250, help="images sampled at once (default 250)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=cmd_evaluate)
