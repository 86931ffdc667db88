"""The evaluation commands: ``train-classifier`` and ``evaluate``."""
from __future__ import annotations

import json
from pathlib import Path

from course_utils.checkpoints import load_checkpoint
from course_utils.cli.common import (
    checkpoint_parent,
    device_parent,
    positive,
    sampler_kwargs,
    sampler_parent,
    variant_parent,
)
from course_utils.diffusion import describe_sampler
from course_utils.errors import CourseError
from course_utils.evaluation.classifier import classifier_path, manifest_path, train_classifier
from course_utils.evaluation.evaluate import MAX_N, default_classifier, evaluate, format_report
from course_utils.evaluation.guidance import WEIGHTS, format_sweep, guidance_sweep
from course_utils.runs import resolve
from course_utils.system import ensure_writable


def cmd_train_classifier(args) -> int:
    out = Path(args.out) if args.out else classifier_path()
    if out.suffix != ".safetensors":
        raise CourseError(f"--out must name a .safetensors file, got {out}.")
    ensure_writable(out.parent)
    print(f"training the metric classifier for {args.epochs} epoch(s), seed {args.seed} -> {out}")
    _, manifest = train_classifier(epochs=args.epochs, seed=args.seed, device=args.device, out=out,
                                   command=args.command_line, threads=args.threads)
    print(f"test accuracy {manifest['test_accuracy']:.4f} on {manifest['test_images']} test images after "
          f"{manifest['steps']} steps in {manifest['wall_seconds']:.0f} s")
    print(f"wrote {out} and {manifest_path(out)}")
    return 0


def cmd_evaluate(args) -> int:
    kwargs = sampler_kwargs(args)
    if args.n < 2 or args.n > MAX_N:
        raise CourseError(f"-n must lie between 2 and {MAX_N} (the test split's size), got {args.n}.")
    path, preset = resolve(args.variant, args.checkpoint)
    default_classifier()  # a missing classifier fails before any sampling
    model, header = load_checkpoint(path, preset, device=args.device or "cpu")
    how = describe_sampler(args.sampler, args.steps, args.eta, model.config.T)
    if model.config.num_classes:  # class-conditional: accuracy, FID and diversity per guidance weight
        per_class = max(1, args.n // model.config.num_classes)
        if not args.json:
            print(f"evaluating the class-conditional {args.variant} from {path}: {per_class} samples per class at "
                  f"each guidance weight ({how}), seed {args.seed}")
        result = guidance_sweep(model, weights=args.guidance or WEIGHTS, n_per_class=per_class, seed=args.seed,
                                batch=args.batch, progress=not args.json, **kwargs)
        print(json.dumps({"variant": args.variant, "checkpoint": str(path), **kwargs, **result}, indent=1)
              if args.json else format_sweep(result))
        return 0
    if args.guidance:
        raise CourseError(f"--guidance needs a class-conditional model; {args.variant} has no class labels.")
    if not args.json:
        print(f"evaluating {args.variant} from {path} ({header.get('meta', {}).get('step', '?')} steps, "
              f"{header.get('weights', 'model')} weights): sampling {args.n} images ({how}), seed {args.seed}")
    result = evaluate(model, n=args.n, seed=args.seed, batch=args.batch, **kwargs)
    if args.json:
        print(json.dumps({"variant": args.variant, "checkpoint": str(path), "seed": args.seed, **kwargs, **result},
                         indent=1))
    else:
        print(format_report(result, args.variant))
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser(
        "train-classifier", parents=[device_parent()],
        help="train the small Fashion-MNIST classifier behind Fashion-FID/KID",
        description="Train the 16x16 Fashion-MNIST classifier whose penultimate features Fashion-FID and KID "
                    "compare. Trains on the train split (random flips), reports accuracy on the test split and "
                    "writes the weights (safetensors) plus a JSON manifest (command, commit, steps, time, "
                    "hardware, accuracy) next to them. About 2-3 minutes on a CPU.")
    s.add_argument("--epochs", type=positive, default=4, help="passes over the 60,000 training images (default 4)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--out", metavar="PATH.safetensors",
                   help="where to write the weights (default checkpoints/classifier.safetensors; the manifest "
                        "goes to the same name with .json)")
    s.add_argument("--threads", type=positive, default=None,
                   help="CPU threads for torch while training (default: torch's choice; 1 is often faster on "
                        "a busy machine)")
    s.set_defaults(func=cmd_train_classifier)

    s = sub.add_parser(
        "evaluate", parents=[variant_parent(), checkpoint_parent(), sampler_parent(), device_parent()],
        help="Fashion-FID, KID, checkerboard score and more for a trained preset",
        description="Sample N images from a trained preset and measure them against N real test images: "
                    "Fashion-FID and KID (each beside its real-vs-real floor at the same N), checkerboard score, "
                    "classifier confidence, class entropy and dark-pixel fraction (each beside real images). "
                    "The checkpoint is --checkpoint, else checkpoints/VARIANT.safetensors, else "
                    "runs/{full,quick,ci}/VARIANT-seed0/model.safetensors.")
    s.add_argument("--guidance", type=float, nargs="+", metavar="W",
                   help="guidance weights for a class-conditional model (default 0 0.5 1 2 4); such a model is "
                        "evaluated per weight: classifier accuracy on the requested class (overall and per class, "
                        "beside real test images'), Fashion-FID and the feature spread within classes")
    s.add_argument("-n", type=positive, default=1000,
                   help="samples to draw and real images to compare with (default 1000; at most 10000). "
                        "Compare FID only between runs with the same N.")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default 0); the real images are fixed")
    s.add_argument("--batch", type=positive, default=250, help="images sampled at once (default 250)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=cmd_evaluate)
