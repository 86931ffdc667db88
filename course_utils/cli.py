"""``python -m course_utils COMMAND`` — the course's command line. ``--help`` works on every command."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import CourseError


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}")
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {n}")
    return n


def cmd_variants(args) -> int:
    from .unet import PRESETS, build, count_params
    rows = [{"name": p.name, "params": count_params(build(p.name)), "description": p.description,
             "kind": p.kind, "idea": p.idea, "notebook": p.notebook} for p in PRESETS.values()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows)
    for kind in ("ladder", "leave-one-out"):
        print(f"{kind}:")
        for r in rows:
            if r["kind"] == kind:
                print(f"  {r['name']:<{width}}  {r['params']:>9,}  {r['description']}")
    return 0


def cmd_data(args) -> int:
    from .data import cache_dir, load
    t0 = time.perf_counter()
    for split in ("train", "test"):
        d = load(split)
        print(f"{split:5s}: {len(d):,} images {tuple(d.images.shape[1:])} in [{d.images.min():.0f}, "
              f"{d.images.max():.0f}] from {d.source}")
    print(f"cache folder: {cache_dir()}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_train(args) -> int:
    from . import plotting
    from .checkpoints import _ensure_writable
    from .diffusion import sample
    from .runs import run_dir, train_preset
    from .train import get_budget
    from .unet import get_preset
    get_preset(args.variant)
    budget = get_budget(args.budget)
    out = Path(args.out) if args.out else run_dir(args.variant, budget.name, args.seed)
    _ensure_writable(out)
    steps = args.steps or budget.steps_for(args.variant)
    print(f"training {args.variant} for {steps} steps ({budget.name} budget), seed {args.seed} -> {out}")
    if args.resume and not (out / "model.safetensors").is_file():
        raise CourseError(f"--resume: there is no checkpoint {out / 'model.safetensors'} to continue from. "
                          "Fix: run the same command without --resume first (or give the --out of that run).")
    model, history = train_preset(args.variant, budget, seed=args.seed, out=out, steps=steps,
                                  ema_decay=args.ema, resume=args.resume, save_every=args.save_every)
    net = getattr(history, "ema", None) or model
    images = sample(net, args.n, seed=args.seed, progress=True)
    plotting.save(plotting.show_grid(images, f"{args.variant}, {history.steps} steps"), out / "samples.png")
    plotting.save(plotting.plot_losses({args.variant: history}), out / "loss.png")
    print(f"final loss {history.final_loss():.4f} after {history.steps} steps in {history.seconds:.0f} s")
    print(f"wrote {out / 'model.safetensors'}, {out / 'samples.png'}, {out / 'loss.png'}")
    return 0


def cmd_sample(args) -> int:
    from . import plotting
    from .checkpoints import load_checkpoint
    from .cli_eval import find_checkpoint
    from .diffusion import sample
    from .unet import get_preset
    get_preset(args.variant)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise CourseError(f"--out must name a .png file, got {out}.")
    where = args.checkpoint or find_checkpoint(args.variant)  # shipped checkpoint first, then the latest run
    model, header = load_checkpoint(where, args.variant)
    images = sample(model, args.n, seed=args.seed, sigma=args.sigma, progress=True)
    plotting.save(plotting.show_grid(images, f"{args.variant} ({header.get('meta', {}).get('step', '?')} steps)"), out)
    print(f"wrote {args.n} samples of {args.variant} from {where} to {out}")
    return 0


def cmd_bench(args) -> int:
    from .bench import bench
    result = bench(args.variants or None, repeats=args.repeats, steps=args.steps, samples=args.samples,
                   device=args.device)
    rows = result["presets"]
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"device {result['device']}, torch {result['torch']}, {result['threads']} threads; data pipeline "
              f"{result['data_seconds_per_epoch']:.3f} s per epoch (468 batches of 128 with flips)")
        print(f"{'preset':<12} {'params':>10} {'train steps/s':>14} {'s/step':>7} {'sample img/s':>13}   (medians of {args.repeats})")
        for r in rows:
            print(f"{r['name']:<12} {r['params']:>10,} {r['train_steps_per_s']:>14.2f} {1 / r['train_steps_per_s']:>7.3f} "
                  f"{r['sample_images_per_s']:>13.1f}")
    return 0


def cmd_ablate(args) -> int:
    from .ablation import ablate
    budget = args.budget
    if args.steps:
        from .ship import ladder_budget
        budget = ladder_budget(args.steps)
    result = ablate(budget, seeds=args.seeds, presets=args.presets or None, n=args.n, out=args.out,
                    retrain=args.retrain)
    print(result["table"])
    print(f"wrote {result['out']}/results.json, table.md, losses.png, samples.png")
    return 0


def cmd_ship(args) -> int:
    from .ship import ship
    command = "python -m course_utils ship " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["ship"] else \
        "python -m course_utils ship"
    ship(args.steps, args.seeds, args.n, args.final_steps, args.final_n, args.ema, args.checkpoints, args.results,
         skip_final=args.skip_final, skip_ladder=args.skip_ladder, command=command.strip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_utils",
                                description="Optimizing a DDPM U-Net on Fashion-MNIST: the course's command line.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("variants", help="list every U-Net preset with its parameter count",
                       description="List every U-Net preset (ladder and leave-one-out) with parameters and a description.")
    s.add_argument("--json", action="store_true", help="print a JSON list of {name, params, description, ...}")
    s.set_defaults(func=cmd_variants)

    s = sub.add_parser("data", help="prepare Fashion-MNIST and say where it came from",
                       description="Find Fashion-MNIST ($FASHION_MNIST_DIR, data/, /usr/share/datasets/fashion-mnist, "
                                   "or torchvision's download), preprocess it to 16x16 in [-1, 1] and cache it.")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("train", help="train a preset; writes a checkpoint, samples.png and loss.png",
                       description="Train a preset under a budget. Writes model.safetensors (atomically, every "
                                   "--save-every steps), history.json, samples.png and loss.png to --out.")
    s.add_argument("variant", metavar="VARIANT", help="a preset name (see: python -m course_utils variants)")
    s.add_argument("--budget", help="ci | quick | full (default: $COURSE_BUDGET, else full on a GPU, quick on a CPU)")
    s.add_argument("--steps", type=_positive, help="override the budget's number of training steps")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--out", help="output folder (default runs/BUDGET/VARIANT-seedSEED)")
    s.add_argument("--ema", type=float, default=None, metavar="DECAY", help="also keep an EMA of the weights, e.g. 0.999")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out (after Ctrl-C or a crash)")
    s.add_argument("--save-every", type=_positive, default=100, metavar="K",
                   help="write the checkpoint every K steps (default 100); an interruption loses at most K steps")
    s.add_argument("-n", type=_positive, default=64, help="samples in samples.png (default 64)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained preset into a PNG grid",
                       description="Draw samples. Uses --checkpoint, else the shipped checkpoint, else the latest run.")
    s.add_argument("variant", metavar="VARIANT")
    s.add_argument("--checkpoint", help="a .safetensors checkpoint of this preset")
    s.add_argument("-n", type=_positive, default=64, help="number of samples (default 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sigma", default="beta", choices=["beta", "beta_tilde"],
                   help="reverse-step variance: beta (default) or beta_tilde (posterior)")
    s.add_argument("--out", required=True, metavar="FILE.png")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("bench", help="training steps/s and sampling images/s per preset (medians)",
                       description="Measure the data pipeline, training steps/s (batch 128) and sampling images/s "
                                   "(T steps) per preset; reports medians over repeats.")
    s.add_argument("variants", nargs="*", metavar="VARIANT", help="presets to measure (default: the ladder)")
    s.add_argument("--repeats", type=_positive, default=3)
    s.add_argument("--steps", type=_positive, default=5, help="training steps per repeat")
    s.add_argument("--samples", type=_positive, default=16, help="images per sampling run")
    s.add_argument("--device", help="cpu | cuda | mps (default: best available)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("ablate", help="train and evaluate the ladder and the leave-one-out presets; write a table",
                       description="Train every preset (or those named) for the same number of steps under a budget "
                                   "and several seeds, evaluate each (FID/KID vs the real-vs-real floor, checkerboard), "
                                   "and write results.json, table.md (mean and spread over seeds), losses.png and "
                                   "samples.png to --out (default results/ablation/BUDGET).")
    s.add_argument("presets", nargs="*", metavar="PRESET", help="presets to include (default: all)")
    s.add_argument("--budget", help="ci | quick | full (default: $COURSE_BUDGET, else full on a GPU, quick on a CPU)")
    s.add_argument("--steps", type=_positive, help="train every preset for exactly STEPS steps (budget 'ladder', "
                   "results/ablation/ladder; overrides --budget)")
    s.add_argument("--seeds", type=_positive, default=2, help="seeds per preset (default 2)")
    s.add_argument("-n", type=_positive, default=500, help="samples per evaluation (default 500)")
    s.add_argument("--out", help="results folder")
    s.add_argument("--retrain", action="store_true", help="train again even if a run of this budget exists")
    s.set_defaults(func=cmd_ablate)

    from . import ship as sh
    s = sub.add_parser(
        "ship", help="regenerate everything shipped: the ablation, the equal-step ladder checkpoints, the final model",
        description="Regenerate the shipped results and checkpoints: (1) the final optimized model "
                    f"({sh.FINAL_STEPS} steps, EMA {sh.FINAL_EMA}) -> checkpoints/{sh.FINAL_NAME}.safetensors; "
                    "(2) the ablation of every ladder and leave-one-out preset at the same number of steps "
                    f"(default {sh.LADDER_STEPS}) and seeds (default {sh.SEEDS}) -> results/ablation/ladder/; "
                    "(3) the seed-0 ladder runs as fp16 checkpoints/<preset>.safetensors with manifests. "
                    "Finished runs in runs/ are reused, so an interrupted ship continues where it stopped. "
                    "Measured on 2 CPU cores: see the README.")
    s.add_argument("--steps", type=_positive, default=sh.LADDER_STEPS, help=f"steps per preset (default {sh.LADDER_STEPS})")
    s.add_argument("--seeds", type=_positive, default=sh.SEEDS, help=f"ablation seeds (default {sh.SEEDS})")
    s.add_argument("-n", type=_positive, default=sh.ABLATION_N, help=f"samples per ablation evaluation (default {sh.ABLATION_N})")
    s.add_argument("--final-steps", type=_positive, default=sh.FINAL_STEPS, help=f"final model's steps (default {sh.FINAL_STEPS})")
    s.add_argument("--final-n", type=_positive, default=sh.FINAL_N, help=f"final model's evaluation samples (default {sh.FINAL_N})")
    s.add_argument("--ema", type=float, default=sh.FINAL_EMA, help=f"final model's EMA decay (default {sh.FINAL_EMA})")
    s.add_argument("--skip-ladder", action="store_true", help="only the final model")
    s.add_argument("--skip-final", action="store_true", help="only the ablation and ladder checkpoints")
    s.add_argument("--checkpoints", metavar="DIR", help="where to write checkpoints (default checkpoints/)")
    s.add_argument("--results", metavar="DIR", help="where to write the ablation (default results/ablation/ladder)")
    s.set_defaults(func=cmd_ship)

    from .cli_eval import add_parsers
    add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except CourseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; a checkpoint saved before the interruption is kept (continue with --resume).",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
