"""The core commands: ``variants``, ``data``, ``train`` and ``sample``."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from course_utils import distributed as dist
from course_utils import plotting
from course_utils.checkpoints import load_checkpoint
from course_utils.cli.common import (
    budget_parent,
    checkpoint_parent,
    device_parent,
    positive,
    sampler_kwargs,
    sampler_parent,
    variant_parent,
)
from course_utils.data import load
from course_utils.diffusion import describe_sampler, sample
from course_utils.errors import CourseError
from course_utils.model.cost import sample_gflops_per_image, train_gflops
from course_utils.model.unet import PRESETS, build, count_params, get_preset
from course_utils.paths import cache_dir
from course_utils.runs import resolve, run_dir, train_preset
from course_utils.system import ensure_writable
from course_utils.train import SAVE_EVERY, Autocast, get_budget


def cmd_variants(args) -> int:
    rows = [{"name": p.name, "params": count_params(build(p.name)), "train_gflops": round(train_gflops(p.config), 3),
             "sample_gflops_per_image": round(sample_gflops_per_image(p.config), 4), "description": p.description,
             "kind": p.kind, "idea": p.idea, "notebook": p.notebook} for p in PRESETS.values()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"  {'preset':<{width}}  {'params':>9}  {'GFLOP/step':>10}  {'GFLOP/img':>9}  description")
    print(f"  {'':<{width}}  {'':>9}  {'(train,128)':>10}  {'(sample)':>9}")
    for kind in dict.fromkeys(r["kind"] for r in rows):  # every kind of preset, in the registry's order
        print(f"{kind}:")
        for r in rows:
            if r["kind"] == kind:
                print(f"  {r['name']:<{width}}  {r['params']:>9,}  {r['train_gflops']:>10.1f}  "
                      f"{r['sample_gflops_per_image']:>9.2f}  {r['description']}")
    return 0


def cmd_data(args) -> int:
    t0 = time.perf_counter()
    for split in ("train", "test"):
        d = load(split)
        print(f"{split:5s}: {len(d):,} images {tuple(d.images.shape[1:])} in [{d.images.min():.0f}, "
              f"{d.images.max():.0f}] from {d.source}")
    print(f"cache folder: {cache_dir()}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_train(args) -> int:
    get_preset(args.variant)
    budget = get_budget(args.budget)
    out = Path(args.out) if args.out else run_dir(args.variant, budget.name, args.seed)
    main = dist.is_main()  # under torchrun only rank 0 writes and prints
    if main:
        ensure_writable(out)
    steps = args.steps or budget.steps_for(args.variant)
    world = dist.world_size()
    if main:
        print(f"training {args.variant} for {steps} steps ({budget.name} budget), seed {args.seed} -> {out}"
              + (f"; {world} processes, {args.batch_size // max(world, 1)} images each per step" if world > 1 else ""))
    if args.resume and not (out / "model.safetensors").is_file():
        raise CourseError(f"--resume: there is no checkpoint {out / 'model.safetensors'} to continue from. "
                          "Fix: run the same command without --resume first (or give the --out of that run).")
    callbacks = [Autocast(torch.bfloat16)] if args.bf16 else []
    try:
        model, history = train_preset(args.variant, budget, seed=args.seed, out=out, steps=steps, device=args.device,
                                      ema_decay=args.ema, resume=args.resume, save_every=args.save_every,
                                      batch_size=args.batch_size, callbacks=callbacks, compile=args.compile,
                                      progress=main)
        dist.barrier()  # rank 0 has written the checkpoint before anyone leaves
    finally:
        dist.shutdown()
    if not main:
        return 0
    net = getattr(history, "ema", None) or model
    images = sample(net, args.n, seed=args.seed, progress=True)
    plotting.save(plotting.show_grid(images, f"{args.variant}, {history.steps} steps"), out / "samples.png")
    plotting.save(plotting.plot_losses({args.variant: history}), out / "loss.png")
    print(f"final loss {history.final_loss():.4f} after {history.steps} steps in {history.seconds:.0f} s")
    print(f"wrote {out / 'model.safetensors'}, {out / 'samples.png'}, {out / 'loss.png'}")
    return 0


def cmd_sample(args) -> int:
    kwargs = sampler_kwargs(args)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise CourseError(f"--out must name a .png file, got {out}.")
    where, preset = resolve(args.variant, args.checkpoint)  # --checkpoint, else shipped, else the latest run
    model, header = load_checkpoint(where, preset, device=args.device or "cpu")
    t0 = time.perf_counter()
    images = sample(model, args.n, seed=args.seed, sigma=args.sigma, progress=True, **kwargs)
    seconds = time.perf_counter() - t0
    how = describe_sampler(args.sampler, args.steps, args.eta, model.config.T)
    plotting.save(plotting.show_grid(images, f"{args.variant} ({header.get('meta', {}).get('step', '?')} steps; {how})"),
                  out)
    print(f"wrote {args.n} samples of {args.variant} from {where} to {out} ({how}; {args.n / seconds:.1f} images/s)")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("variants", help="list every U-Net preset with its parameters and cost",
                       description="List every U-Net preset (ladder, leave-one-out, the width parts and the "
                                   "class-conditional one) with its parameter count, its "
                                   "training cost (GFLOP per 128-image step, forward and backward, counted by "
                                   "torch.utils.flop_counter) and its sampling cost (GFLOP per image over T steps).")
    s.add_argument("--json", action="store_true",
                   help="print a JSON list of {name, params, train_gflops, sample_gflops_per_image, description, ...}")
    s.set_defaults(func=cmd_variants)

    s = sub.add_parser("data", help="prepare Fashion-MNIST and say where it came from",
                       description="Find Fashion-MNIST ($FASHION_MNIST_DIR, data/, /usr/share/datasets/fashion-mnist, "
                                   "or torchvision's download), preprocess it to 16x16 in [-1, 1] and cache it.")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("train", parents=[variant_parent(), budget_parent(), device_parent()],
                       help="train a preset; writes a checkpoint, samples.png and loss.png",
                       description="Train a preset under a budget. Writes model.safetensors (atomically, every "
                                   "--save-every steps), history.json, samples.png and loss.png to --out. Several "
                                   "processes: torchrun --nproc_per_node=N -m course_utils train ... (gloo on CPUs, "
                                   "nccl on GPUs; each process trains its shard of every batch, rank 0 writes).")
    s.add_argument("--steps", type=positive, help="override the budget's number of training steps")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--out", help="output folder (default runs/BUDGET/VARIANT-seedSEED)")
    s.add_argument("--ema", type=float, default=None, metavar="DECAY", help="also keep an EMA of the weights, e.g. 0.999")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out (after Ctrl-C or a crash)")
    s.add_argument("--save-every", type=positive, default=SAVE_EVERY, metavar="K",
                   help=f"write the checkpoint every K steps (default {SAVE_EVERY}); an interruption loses at most K "
                        "steps")
    s.add_argument("-n", type=positive, default=64, help="samples in samples.png (default 64)")
    s.add_argument("--batch-size", type=positive, default=128,
                   help="images per step (default 128); under torchrun split evenly over the processes")
    s.add_argument("--bf16", action="store_true", help="run the forward pass under bf16 autocast (for GPUs)")
    s.add_argument("--compile", action="store_true", help="compile the model with torch.compile (for GPUs; the first "
                                                          "steps are slow while it compiles)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", parents=[variant_parent(), checkpoint_parent(), sampler_parent(), device_parent()],
                       help="draw samples from a trained preset into a PNG grid",
                       description="Draw samples. Uses --checkpoint, else the shipped checkpoint, else the latest run. "
                                   "--sampler ddim --steps 25 is several times faster than the 150-step DDPM sampler.")
    s.add_argument("-n", type=positive, default=64, help="number of samples (default 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sigma", default="beta", choices=["beta", "beta_tilde"],
                   help="DDPM's reverse-step variance: beta (default) or beta_tilde (posterior)")
    s.add_argument("--out", required=True, metavar="FILE.png")
    s.set_defaults(func=cmd_sample)
