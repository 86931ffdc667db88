"""The study's commands: ``bench``, ``ablate`` and ``ship``."""
from __future__ import annotations

import json
from dataclasses import replace

from course_utils import figures, reports
from course_utils.cli.common import budget_parent, checkpoint_parent, device_parent, fraction, positive, positive_float
from course_utils.errors import CourseError
from course_utils.lessons.noise_schedule import SETTINGS
from course_utils.paths import relative
from course_utils.study import best as be
from course_utils.study import compute as co
from course_utils.study import schedules as sc
from course_utils.study import ship as sh
from course_utils.study.ablation import ablate
from course_utils.evaluation.bench import bench
from course_utils.study.recipe import ema_check, ema_dir
from course_utils.study.runspec import LR_SCHEDULES
from course_utils.evaluation.samplers import compare_samplers, samplers_dir


def cmd_bench(args) -> int:
    result = bench(args.variants or None, repeats=args.repeats, steps=args.steps, samples=args.samples,
                   device=args.device)
    print(json.dumps(result, indent=1) if args.json else reports.bench_text(result))
    return 0


def cmd_ablate(args) -> int:
    result = ablate(args.budget, seeds=args.seeds, presets=args.presets or None, n=args.n, out=args.out,
                    retrain=args.retrain, steps=args.steps)
    saved = reports.write_ablation(result)
    print(reports.ablation_table(saved["summary"], saved["budget"], saved["n"], saved["bench"]))
    print(f"wrote {result['out']}/results.json, table.md, losses.png, samples.png")
    return 0


def cmd_ship(args) -> int:
    sh.ship(args.checkpoints, args.results, args.command_line, steps=args.steps, seeds=args.seeds, n=args.n,
            final_steps=args.final_steps, final_n=args.final_n, ema=args.ema, skip_final=args.skip_final,
            skip_ladder=args.skip_ladder, after_ablation=reports.write_ablation)
    return 0


def cmd_compare_samplers(args) -> int:
    result = compare_samplers(args.name, args.checkpoint, n=args.n, steps=args.steps, etas=args.eta, seed=args.seed,
                              out=args.out)
    out = args.out or samplers_dir(args.name)
    reports.write_samplers(result, out)
    print(f"wrote {out}/results.json, table.md, fid_vs_steps.png ({len(result['rows'])} samplers)")
    return 0


def cmd_study(args) -> int:
    name = args.name or co.RECIPES[args.recipe or "original"]
    st = co.get_study(name)
    if args.recipe and args.name and args.name not in co.STUDIES:  # a study of its own under that recipe
        st = replace(co.STUDIES[co.RECIPES[args.recipe]], name=args.name)
    if args.lr or args.batch_size or args.ema or args.lr_schedule:
        base = st.recipe
        st = replace(st, recipe=co.make_recipe(args.lr or base["lr"], args.batch_size or base["batch_size"],
                                                    args.ema or base["ema"],
                                                    args.lr_schedule or base.get("lr_schedule", "constant")))
    if args.bench:
        result = co.write_bench(st.name, device=args.device)
        print(reports.bench_text(result))
        print(f"wrote {co.bench_file(st.name)}: the table's idle minutes and the curves against minutes use it")
        if co.load_all(st.name):
            co.summarize(st.name)
            reports.write_study(st.name)
        return 0
    if args.summary:
        out = co.summarize(st.name)
        reports.write_study(st.name)
        reports.write_progress(st)
    else:
        plan = None
        if args.extra_seeds and args.only:
            raise CourseError("--extra-seeds and --only both choose the runs. Fix: give one of them.")
        if args.extra_seeds:
            plan = reports.extra_seed_plan(co.summarize(st.name))
            print("the extra seeds the verdicts need: " + (", ".join(f"{p}:{s}" + (":steps" if k == "steps" else "")
                                                                     for p, s, k in plan) or "none"))
        if args.only:
            plan = []
            for item in args.only:
                preset, seed, kind = (item.split(":") + ["0", "budget"])[:3]
                if not seed.isdigit() or kind not in ("budget", "steps"):
                    raise CourseError(f"--only {item!r}: write PRESET, PRESET:SEED or PRESET:SEED:steps (the "
                                      "finished equal-step run), e.g. baseline:1 or baseline:0:steps.")
                plan.append((preset, int(seed), kind))
        def after_run(_):
            reports.write_study(st.name)
            reports.write_progress(st)
            if st.name == be.STUDY and (choice := be.refresh_study_row(st.name)) and not choice["keep"]:
                print(f"this study now beats best-cpu: {choice['why']}. Retrain it: python -m course_utils "
                      "best-cpu --from-study")

        out = co.study(st, plan=plan, max_runs=args.max_runs, device=args.device, after_run=after_run,
                       after_point=lambda: reports.write_progress(st))
        after_run(out)
    print(reports.study_table(out) if out["rows"] else "no finished milestone yet")
    if out.get("crossover"):
        print(reports.crossover_text(out))
    print(f"results in {co.study_dir(st.name)}")
    return 0


def cmd_best_cpu(args) -> int:
    choice = None
    if args.from_study:
        if args.conditional or args.steps:
            raise CourseError("--from-study chooses the preset and the steps itself. Fix: leave out --conditional "
                              "and --steps.")
        choice = be.study_choice(args.from_study)
        print(reports.table(["preset", "steps", "run", "seeds", "FID", "idle min"],
                            [[r["preset"], f"{r['steps']:,}", r["kind"], r["seeds"],
                              reports.cell(r["fid"], r["fid_sd"] if r["fid_sd"] is not None else float("nan")),
                              f"{r['idle_minutes']:.1f}"] for r in choice["candidates"]], "lrlrrr"))
        if choice["keep"]:
            f = be.name_study_row(choice, args.checkpoints)
            print(f"{choice['why']}.\nNothing to retrain: {relative(f)} now names its study row.")
            return 0
        print(f"chosen: {choice['why']}")
        recipe = choice["recipe"]
    else:
        recipe = {**(be.COND if args.conditional else be.BEST), **({"steps": args.steps} if args.steps else {})}
    be.ship_best(recipe, n=args.n, checkpoints=args.checkpoints, command=args.command_line, device=args.device,
                 name=be.COND_NAME if args.conditional else be.NAME, chosen=choice)
    return 0


def cmd_figures(args) -> int:
    if args.list:
        for name, fn in figures.registry().items():
            doc = (fn.__doc__ or "").strip().split("\n")[0]
            print(f"{name:<36} {doc}")
        return 0
    written = figures.make(args.only or None, out=args.out)
    print(f"{len(written)} figure(s) in {written[0].parent if written else args.out or figures.figures_dir()}")
    return 0


def cmd_compare_schedules(args) -> int:
    result = sc.compare_schedules(args.schedules or None, seeds=tuple(range(args.seeds)), preset=args.preset,
                                  steps=args.steps, n=args.n, out=args.out, device=args.device)
    print(sc.markdown(result))
    print(f"results in {args.out or sc.schedules_dir(args.preset)}")
    return 0


def cmd_ema_check(args) -> int:
    result = ema_check(args.preset, steps=args.steps, ema=args.ema, n=args.n, device=args.device)
    print(reports.write_ema(result, ema_dir(args.preset)))
    return 0


def _add_bench(sub) -> None:
    s = sub.add_parser("bench", parents=[device_parent()],
                       help="training and sampling speed per preset (medians), beside its FLOPs",
                       description="Measure the data pipeline, training steps/s (batch 128) and sampling images/s "
                                   "(all T steps) per preset with torch.utils.benchmark: each preset's figure is the "
                                   "median of --repeats rounds that go round all presets. Beside them: the FLOPs of "
                                   "a training step and of one sampled image, and the achieved GFLOP/s.")
    s.add_argument("variants", nargs="*", metavar="VARIANT", help="presets to measure (default: the ladder)")
    s.add_argument("--repeats", type=positive, default=3, help="rounds over the presets (default 3)")
    s.add_argument("--steps", type=positive, default=5, help="training steps per preset and round (default 5)")
    s.add_argument("--samples", type=positive, default=16, help="images per sampling run (default 16)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bench)


def _add_compare_samplers(sub) -> None:
    s = sub.add_parser("compare-samplers", parents=[checkpoint_parent()],
                       help="DDIM at several step counts against 150-step DDPM: Fashion-FID and images/s",
                       description="Evaluate one trained model with the DDPM sampler (all T steps) and with DDIM at each "
                                   "--steps K and --eta, on the same n samples; write results/samplers/NAME/ "
                                   "(results.json, table.md, fid_vs_steps.png). Each configuration is cached, so an "
                                   "interrupted comparison continues.")
    s.add_argument("name", metavar="NAME", help="a preset or a shipped checkpoint such as optimized-final")
    s.add_argument("-n", type=positive, default=1000, help="samples per configuration (default 1000)")
    s.add_argument("--steps", type=positive, nargs="+", default=[10, 25, 50, 150], help="DDIM step counts K")
    s.add_argument("--eta", type=fraction, nargs="+", default=[0.0, 1.0],
                   help="DDIM noise levels (default 0 and 1, as in the shipped table: 0 is deterministic, 1 draws fresh noise like DDPM)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    s.add_argument("--out", help="results folder (default results/samplers/NAME)")
    s.set_defaults(func=cmd_compare_samplers)


def _add_ema_check(sub) -> None:
    s = sub.add_parser("ema-check", parents=[device_parent()],
                       help="does the EMA meet the right BatchNorm statistics? FID five ways along one run",
                       description="Train PRESET once with an EMA (resumable), and at each --steps evaluate the raw and "
                                   "the EMA weights with running, averaged, copied or recomputed BatchNorm statistics. "
                                   "Writes results/recipe/PRESET-ema-batchnorm/ (results.json, table.md).")
    s.add_argument("preset", nargs="?", default="baseline", metavar="PRESET", help="default baseline")
    s.add_argument("--steps", type=positive, nargs="+", default=[1000, 2000, 4000], help="where to evaluate")
    s.add_argument("--ema", type=float, default=0.999, help="EMA decay (default 0.999)")
    s.add_argument("-n", type=positive, default=500, help="samples per evaluation (default 500)")
    s.set_defaults(func=cmd_ema_check)


def _add_study(sub) -> None:
    s = sub.add_parser("study", parents=[device_parent()],
                       help="the compute-aware study: every rung to the same training compute, FID along the way",
                       description="Train every ladder rung to the same training compute (a cheaper rung gets more "
                                   "steps), evaluating its EMA weights at 1/8, 1/4, 1/2 and 1 of its budget and at "
                                   f"the equal-step points (Fashion-FID, n = {co.EVAL['n']}, "
                                   f"{co.EVAL['sampler'].upper()} {co.EVAL['steps']} steps). --recipe original (the "
                                   "default): the original schedule and a constant learning rate, the compute of "
                                   f"{co.REFERENCE_STEPS:,} {co.REFERENCE} steps, in results/study/cpu. --recipe best: "
                                   "best-cpu's recipe (zero-terminal-SNR schedule, v-prediction, cosine learning "
                                   f"rate), the compute of {co.STUDIES['cpu-best-recipe'].reference_steps:,} "
                                   f"{co.REFERENCE} steps, in results/study/cpu-best-recipe. Another recipe (--lr, "
                                   "--lr-schedule, --batch-size, --ema) belongs in a study of its own name (--name). "
                                   "Resumable: each milestone's evaluation is saved to results/study/NAME/runs/ as it "
                                   "is made, and a new start continues with the next missing one. On 2 CPU cores a "
                                   "run takes 10-60 minutes; see docs/results.md.")
    s.add_argument("--recipe", choices=sorted(co.RECIPES), help="original (default) or best: which study to make")
    s.add_argument("--name", help="the study's folder under results/study (default: the recipe's, cpu or "
                                  "cpu-best-recipe)")
    s.add_argument("--only", nargs="+", metavar="PRESET[:SEED[:steps]]",
                   help="make only these runs (default: the whole plan); :steps is the finished equal-step run")
    s.add_argument("--extra-seeds", action="store_true",
                   help="make seed 1 of every rung whose change lies within two spreads of the verdict's threshold, "
                        "and of every leave-one-out preset within the threshold (after the plan: it reads the summary)")
    s.add_argument("--max-runs", type=positive, help="stop after starting this many runs (the rest: next time)")
    s.add_argument("--summary", action="store_true",
                   help="only rewrite summary.json, table.md, verdicts.md, crossover.md, curves.png and progress.md")
    s.add_argument("--bench", action="store_true",
                   help="only time a training step of every preset of the study (a few minutes; run it on an "
                        "otherwise idle machine) into results/study/NAME/bench.json: the table's idle minutes and "
                        "the curves against minutes are its steps times these seconds")
    s.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                   help="constant or cosine: decay the learning rate to 0 over each run's budget")
    s.add_argument("--lr", type=positive_float, help=f"Adam's learning rate (default {co.RECIPE['lr']})")
    s.add_argument("--batch-size", type=positive, help=f"images per step (default {co.RECIPE['batch_size']})")
    s.add_argument("--ema", type=fraction, help=f"EMA decay (default {co.RECIPE['ema']})")
    s.set_defaults(func=cmd_study)


def _add_compare_schedules(sub) -> None:
    s = sub.add_parser("compare-schedules", parents=[device_parent()],
                       help="the noise schedules on one preset at equal steps: FID, dark fraction, class entropy",
                       description="Train PRESET under each noise schedule (linear, cosine, linear_scaled, "
                                   "linear_zero_snr with v-prediction) for the same --steps and --seeds, with an EMA, "
                                   "and evaluate each on -n DDPM samples; also start each network from the true "
                                   "q(x_T) of held-out test images (a diagnostic: it leaks data, so no FID). Writes "
                                   "results/schedules/PRESET/ (results.json, table.md, samples/). Resumable: every "
                                   "finished evaluation is saved and reused.")
    s.add_argument("schedules", nargs="*", metavar="SCHEDULE", help=f"default: all of {', '.join(SETTINGS)}")
    s.add_argument("--preset", default=sc.PRESET, help=f"the network (default {sc.PRESET})")
    s.add_argument("--steps", type=positive, default=sc.STEPS, help=f"training steps per run (default {sc.STEPS})")
    s.add_argument("--seeds", type=positive, default=len(sc.SEEDS), help=f"seeds 0..SEEDS-1 (default {len(sc.SEEDS)})")
    s.add_argument("-n", type=positive, default=sc.N, help=f"samples per evaluation (default {sc.N})")
    s.add_argument("--out", help="results folder (default results/schedules/PRESET)")
    s.set_defaults(func=cmd_compare_schedules)


def _add_best_cpu(sub) -> None:
    s = sub.add_parser("best-cpu", parents=[device_parent()],
                       help="train and ship the best U-Net for 30 minutes of a 2-core CPU (checkpoints/best-cpu)",
                       description=f"Train {be.BEST['preset']} with {be.BEST.get('overrides') or 'its own config'} "
                                   f"for {be.BEST['steps']} steps (batch "
                                   f"{be.BEST['batch_size']}, Adam lr {be.BEST['lr']} on a {be.BEST['lr_schedule']} "
                                   f"schedule, EMA {be.BEST['ema']}): the network, noise schedule and recipe "
                                   "the measurements pick for half an hour of a 2-core CPU. Then evaluate its EMA weights (Fashion-FID, "
                                   f"n = {be.N}, DDPM) and write checkpoints/{be.NAME}.safetensors and its manifest. "
                                   f"Resumable: the run trains in runs/{be.NAME}/ with a checkpoint every 100 steps.")
    s.add_argument("--steps", type=positive, help=f"training steps (default {be.BEST['steps']}; another number "
                                                  f"needs runs/{be.NAME}/ moved away)")
    s.add_argument("-n", type=positive, default=be.N, help=f"evaluation samples (default {be.N})")
    s.add_argument("--checkpoints", metavar="DIR", help="where to write the checkpoint (default checkpoints/)")
    s.add_argument("--from-study", nargs="?", const=be.STUDY, metavar="STUDY",
                   help=f"choose the preset and steps from a study instead (default {be.STUDY}): the finished run "
                        f"with the lowest FID among those that train within {be.MAX_MINUTES} min on the study's "
                        "benchmarked idle machine (it needs the study's bench.json). It replaces today's best-cpu only if its "
                        "FID is lower by more than two seed-to-seed spreads; otherwise the manifest is kept and only "
                        "its why and study_row are rewritten to name today's recipe's row of the study")
    s.add_argument("--conditional", action="store_true",
                   help=f"train {be.COND['preset']} (class labels, context dropout 0.1) with the same recipe instead, "
                        f"in runs/{be.COND_NAME}/, and ship it as checkpoints/{be.COND_NAME}.safetensors with a "
                        f"guidance sweep in its manifest ({be.SWEEP['n_per_class']} samples per class, "
                        f"{be.SWEEP['sampler'].upper()} {be.SWEEP['steps']} steps, at w = 0, 0.5, 1, 2, 4); notebook 10")
    s.set_defaults(func=cmd_best_cpu)


def _add_figures(sub) -> None:
    s = sub.add_parser("figures", help="draw the walkthroughs' figures into walkthroughs/figures/",
                       description="Draw every figure of the walkthroughs from the shipped checkpoints and results "
                                   "into walkthroughs/figures/ (a figure is code in course_utils/figures, never a "
                                   "pasted picture). Takes a minute or two on a CPU.")
    s.add_argument("--only", nargs="+", metavar="NAME", help="only these figures (file names; see --list)")
    s.add_argument("--out", metavar="DIR", help="another folder (default walkthroughs/figures/)")
    s.add_argument("--list", action="store_true", help="name every figure and what it shows, and stop")
    s.set_defaults(func=cmd_figures)


def _add_ablate(sub) -> None:
    s = sub.add_parser("ablate", parents=[budget_parent()],
                       help="train and evaluate the ladder and the leave-one-out presets; write a table",
                       description="Train every preset (or those named) for the same number of steps under a budget "
                                   "and several seeds, evaluate each (FID/KID vs the real-vs-real floor, checkerboard), "
                                   "and write results.json, table.md (mean and spread over seeds), losses.png and "
                                   "samples.png to --out (default results/ablation/BUDGET).")
    s.add_argument("presets", nargs="*", metavar="PRESET", help="presets to include (default: all)")
    s.add_argument("--steps", type=positive, help="train every preset for exactly STEPS steps (budget 'ladder', "
                   "results/ablation/ladder; overrides --budget)")
    s.add_argument("--seeds", type=positive, default=2, help="seeds per preset (default 2)")
    s.add_argument("-n", type=positive, default=500, help="samples per evaluation (default 500)")
    s.add_argument("--out", help="results folder")
    s.add_argument("--retrain", action="store_true", help="train again even if a run of this budget exists")
    s.set_defaults(func=cmd_ablate)


def _add_ship(sub) -> None:
    s = sub.add_parser(
        "ship", help="regenerate everything shipped: the ablation, the equal-step ladder checkpoints, the final model",
        description="Regenerate the shipped results and checkpoints: (1) the final optimized model "
                    f"({sh.FINAL_STEPS} steps, EMA {sh.FINAL_EMA}) -> checkpoints/{sh.FINAL_NAME}.safetensors; "
                    "(2) the ablation of every ladder and leave-one-out preset at the same number of steps "
                    f"(default {sh.LADDER_STEPS}) and seeds (default {sh.SEEDS}) -> results/ablation/ladder/; "
                    "(3) the seed-0 ladder runs as fp16 checkpoints/<preset>.safetensors with manifests. "
                    "Finished runs in runs/ are reused, so an interrupted ship continues where it stopped. "
                    "Measured on 2 CPU cores: see docs/results.md.")
    s.add_argument("--steps", type=positive, default=sh.LADDER_STEPS, help=f"steps per preset (default {sh.LADDER_STEPS})")
    s.add_argument("--seeds", type=positive, default=sh.SEEDS, help=f"ablation seeds (default {sh.SEEDS})")
    s.add_argument("-n", type=positive, default=sh.ABLATION_N, help=f"samples per ablation evaluation (default {sh.ABLATION_N})")
    s.add_argument("--final-steps", type=positive, default=sh.FINAL_STEPS, help=f"final model's steps (default {sh.FINAL_STEPS})")
    s.add_argument("--final-n", type=positive, default=sh.FINAL_N, help=f"final model's evaluation samples (default {sh.FINAL_N})")
    s.add_argument("--ema", type=float, default=sh.FINAL_EMA, help=f"final model's EMA decay (default {sh.FINAL_EMA})")
    s.add_argument("--skip-ladder", action="store_true", help="only the final model")
    s.add_argument("--skip-final", action="store_true", help="only the ablation and ladder checkpoints")
    s.add_argument("--checkpoints", metavar="DIR", help="where to write checkpoints (default checkpoints/)")
    s.add_argument("--results", metavar="DIR", help="where to write the ablation (default results/ablation/ladder)")
    s.set_defaults(func=cmd_ship)


def add_parsers(sub) -> None:
    _add_bench(sub)
    _add_compare_samplers(sub)
    _add_ema_check(sub)
    _add_study(sub)
    _add_compare_schedules(sub)
    _add_best_cpu(sub)
    _add_figures(sub)
    _add_ablate(sub)
    _add_ship(sub)
