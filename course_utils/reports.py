"""How the studies' results are shown: their markdown tables and figures.

``course_utils.study`` computes and saves each study's numbers (``results.json``, ``summary.json``, one JSON per run);
this module renders them and nothing else. Each ``write_*`` function draws a saved result and writes its table (and
figures) beside it. The command line calls them after a study computes, so the study stays free of presentation.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from course_utils import plotting
from course_utils.model.cost import train_gflops
from course_utils.model.unet import LADDER, PRESETS, WIDTH_STEPS, same_network
from course_utils.errors import CourseError
from course_utils.stats import pooled_sd
from course_utils.study import ablation, compute
from course_utils.study.recipe import WAYS
from course_utils.system import atomic_write_text


def cell(mean: float, sd: float = math.nan, digits: int = 1) -> str:
    """``mean ± sd`` with ``digits`` decimals; the mean alone when the spread is unknown (nan)."""
    return f"{mean:.{digits}f}" + ("" if sd != sd else f" ± {sd:.{digits}f}")


def table(head: list[str], rows: list[list], align: str = "l") -> str:
    """A markdown table; ``align`` gives each column's alignment ("l" or "r"), the last letter repeating to the end."""
    align = align + align[-1] * (len(head) - len(align))
    rule = "|" + "".join("---|" if a == "l" else "---:|" for a in align)
    lines = ["|" + "|".join(f" {c} " if c != "" else " " for c in r) + "|" for r in [head, *rows]]
    return "\n".join(lines[:1] + [rule] + lines[1:]) + "\n"


# --- what the results say: changes and their verdicts (the two-spread rule) ----------------------------------

def run_spread(summary: dict, view: str) -> float | None:
    """The seed-to-seed spread of one run's FID in ``view``: :func:`course_utils.stats.pooled_sd` over the presets
    with two or more seeds (None if there are none)."""
    groups = [r[view]["fids"] for r in summary["rows"] if view in r]
    return pooled_sd(groups)


def verdict(before: dict, after: dict, spread: float | None) -> str:
    """'better', 'worse' or 'within noise' for a change of mean FID from ``before`` to ``after`` (summary views):
    a difference counts when it exceeds two spreads of a single run's FID."""
    diff = after["fid"][0] - before["fid"][0]
    if spread is None:
        return "spread not measured yet"
    if abs(diff) <= 2 * spread:
        return "within noise"
    return "better" if diff < 0 else "worse"


def step_change(before: dict, after: dict, spread: float | None) -> dict:
    """One view of one step (two summary views): the change of mean FID, its verdict, and whether it rests on a
    mid-run point (a run whose learning rate had not finished decaying) on either side."""
    return {"change": after["fid"][0] - before["fid"][0], "verdict": verdict(before, after, spread),
            "mid_run": before.get("finished") is False or after.get("finished") is False}


def steps_of_ladder(summary: dict) -> list[dict]:
    """Each step of the ladder (and of the width side study) with its change of mean FID and verdict in both
    views: [{"from", "to", "idea", "equal_steps": {"change", "verdict", "mid_run"}, "equal_compute": {...}}, ...];
    ``mid_run``: one side is a mid-run point of a run whose learning rate had not finished decaying."""
    rows = {r["preset"]: r for r in summary["rows"]}
    chains = [LADDER, WIDTH_STEPS]
    out = []
    for chain in chains:
        for before, after in zip(chain, chain[1:]):
            if before not in rows or after not in rows or (chain is WIDTH_STEPS and after == "wide"
                                                           and "wide_upconvs" not in rows):
                continue
            step = {"from": before, "to": after, "idea": PRESETS[after].idea, "width_part": chain is WIDTH_STEPS}
            for view in ("equal_steps", "equal_compute"):
                a, b = rows[before].get(view), rows[after].get(view)
                if a and b:
                    step[view] = step_change(a, b, run_spread(summary, view))
            out.append(step)
    return out


def leave_one_out_steps(summary: dict, reference: str = "optimized") -> list[dict]:
    """Each leave-one-out preset a study has measured, as a step from ``reference`` (the full model) to the model
    without one idea, in both views where both are measured: [{"from", "to", "idea", "equal_steps": {"change",
    "verdict", "mid_run"}, "equal_compute": {...}}, ...]. A positive change (``worse``) means the full model needs
    the idea. A leave-one-out preset whose network is a ladder rung's (``no_extra_skip`` is ``residual``) takes
    that rung's row."""
    rows = {r["preset"]: r for r in summary["rows"]}
    if reference not in rows:
        return []
    out = []
    for name, preset in PRESETS.items():
        row = rows.get(name) or rows.get(same_network(LADDER + [name])[name])
        if preset.kind != "leave-one-out" or row is None:
            continue
        step = {"from": reference, "to": name, "idea": preset.idea, "row": row["preset"]}
        for view in ("equal_steps", "equal_compute"):
            a, b = rows[reference].get(view), row.get(view)
            if a and b:
                step[view] = step_change(a, b, run_spread(summary, view))
        out.append(step)
    return out


def extra_seed_plan(summary: dict) -> list[tuple]:
    """The extra seeds a study's verdicts still need, as plan entries (preset, seed, kind), in ladder order:
    seed 1 of every rung (or width part) whose change lies within two pooled spreads of the threshold of two
    spreads (so |change| <= 4 spreads: one more seed could flip its verdict) -- its budget run for the equal-compute
    view, its finished equal-step run for the equal-step view (its budget run under a constant learning rate) --
    and seed 1 of every leave-one-out preset whose
    effect (its FID minus ``optimized``'s at equal compute) is within the threshold. Rows that already have a
    second seed, and steps whose spread is not measured yet, add nothing."""
    rows = {r["preset"]: r for r in summary["rows"]}
    spread = {v: run_spread(summary, v) for v in ("equal_steps", "equal_compute")}
    # under a constant learning rate a budget run's point at the reference steps is finished: it serves both views
    constant = summary["settings"]["recipe"].get("lr_schedule", "constant") == "constant"
    plan: list[tuple] = []

    def add(preset, kind, view):
        kind = "budget" if constant else kind
        if len((rows.get(preset) or {}).get(view, {}).get("fids", [])) < 2 and (preset, 1, kind) not in plan:
            plan.append((preset, 1, kind))

    for st in steps_of_ladder(summary):
        for view, kind in (("equal_compute", "budget"), ("equal_steps", "steps")):
            c, sd = st.get(view), spread[view]
            if c and sd and abs(abs(c["change"]) - 2 * sd) <= 2 * sd:
                add(st["to"], kind, view)
    ref = (rows.get("optimized") or {}).get("equal_compute")
    sd = spread["equal_compute"]
    for preset, r in rows.items():
        if PRESETS[preset].kind == "leave-one-out" and ref and sd and "equal_compute" in r:
            if abs(r["equal_compute"]["fid"][0] - ref["fid"][0]) <= 2 * sd:
                add(preset, "budget", "equal_compute")
    return plan


def difference(a: dict, b: dict, key: str = "fid") -> dict:
    """``b[key] - a[key]`` (two summary rows) with their combined seed spread and a rough verdict.

    The verdict calls a difference *clear* when it exceeds twice the combined standard deviation
    sqrt(sd_a^2 + sd_b^2); with two seeds per preset that spread is itself a rough estimate.
    """
    diff = b[key] - a[key]
    sa, sb = a.get(key + "_spread", float("nan")), b.get(key + "_spread", float("nan"))
    spread = math.sqrt((0 if sa != sa else sa) ** 2 + (0 if sb != sb else sb) ** 2)
    clear = abs(diff) > 2 * spread
    return {"diff": diff, "spread": spread, "clear": clear,
            "verdict": ("lower" if diff < 0 else "higher") if clear else "within seed noise"}


def ladder_steps(rows: list[dict], key: str = "fid") -> list[dict]:
    """For each ladder rung after the first: the change of ``key`` from the rung before."""
    by = {r["preset"]: r for r in rows}
    ladder = [r for r in rows if r["kind"] == "ladder"]
    out = []
    for prev, cur in zip(ladder, ladder[1:]):
        d = difference(prev, cur, key)
        out.append({"from": prev["preset"], "to": cur["preset"], "idea": PRESETS[cur["preset"]].idea,
                    "before": by[prev["preset"]][key], "after": cur[key], **d})
    return out


def leave_one_out(rows: list[dict], key: str = "fid", reference: str = "optimized") -> list[dict]:
    """For each leave-one-out preset: ``key`` without the idea minus ``key`` of the full model.

    A positive FID difference means the model is worse without the idea, i.e. the idea helps.
    """
    by = {r["preset"]: r for r in rows}
    if reference not in by:
        raise CourseError(f"the ablation has no {reference!r} row to compare the leave-one-out presets with.")
    out = []
    for r in rows:
        if r["kind"] == "leave-one-out":
            d = difference(by[reference], r, key)
            out.append({"preset": r["preset"], "idea": PRESETS[r["preset"]].idea, "without": r[key],
                        "with": by[reference][key], **d})
    return sorted(out, key=lambda x: -x["diff"])


# --- the compute-aware study ---------------------------------------------------------------------------------

def study_table(summary: dict) -> str:
    """Both views per preset: FID (mean ± sd over seeds) at equal steps and at equal compute, with steps and minutes."""
    s, e = summary["settings"], summary["settings"]["eval"]
    idle = "bench" in summary

    def view(v):
        if v is None:
            return ["—"] * (4 if idle else 3)
        fid = cell(*v["fid"]) + f" ({v['seeds']})" + ("*" if v.get("finished") is False else "")
        out = [fid, f"{v['step']:,}", f"{v['train_seconds'] / 60:.1f}"]
        return out + ([f"{v['idle_minutes']:.1f}" if "idle_minutes" in v else "—"] if idle else [])

    rows = [[f"{r['preset']} (width part)" if r.get("width_part") else r["preset"], f"{r['train_gflops']:.1f}",
             *view(r.get("equal_steps")), *view(r.get("equal_compute"))] for r in summary["rows"]]
    one = ["steps", "min"] + (["idle min"] if idle else [])
    head = ["preset", "GFLOP/step", "FID at equal steps", *one, "FID at equal compute", *one]
    floor = next((r[v]["fid_floor"] for r in summary["rows"] for v in ("equal_compute", "equal_steps") if v in r),
                 math.nan)
    return (table(head, rows, "lr") + f"\nFashion-FID of the EMA weights, mean ± sd over seeds (number of seeds in brackets), n = "
            f"{e['n']} samples ({e['sampler'].upper()}, {e.get('steps') or 150} steps, eta {e.get('eta', 0)}) vs "
            f"{e['n']} test images; real-vs-real floor {floor:.2f}. BatchNorm statistics of the EMA weights "
            f"{e.get('batchnorm', 'averaged')}. Equal steps: {s['reference_steps']:,} steps "
            f"each. Equal compute: {s['reference_steps']:,} steps of {s['reference']} "
            f"({compute.Study('-', reference_steps=s['reference_steps']).budget_gflop() / 1e3:.1f} TFLOP) each. "
            f"Recipe: Adam lr {s['recipe']['lr']} ({s['recipe'].get('lr_schedule', 'constant')}), batch "
            f"{s['recipe']['batch_size']}, EMA {s['recipe']['ema']} (BatchNorm statistics averaged too). Minutes: "
            "training time on the machine that made the run (median over seeds)."
            + (f" Idle min: the steps times the seconds per step `python -m course_utils study --bench` measured on "
               f"an otherwise idle machine ({(summary['bench'].get('hardware') or {}).get('cpu', summary['bench']['device'])}, "
               f"{summary['bench']['threads']} threads)." if idle else "")
            + " Width parts: the width idea's three "
            "changes one at a time (upsample -> channels -> + four up convs -> + no norm after the upsampler = wide)."
            + _recipe_note(summary) + "\n")


def _recipe_note(summary: dict) -> str:
    """What a study with other diffusion settings or a decaying learning rate adds to the table's notes."""
    s, note = summary["settings"], ""
    if s.get("overrides"):
        note += " Diffusion settings of every run: " + ", ".join(f"{k}={v}" for k, v in s["overrides"].items()) + "."
    if s["recipe"].get("lr_schedule", "constant") != "constant":
        note += (" The learning rate decays to 0 over each run's own length, so a run is finished only at its end: "
                 "a * marks a mid-run point (the equal-step point of a longer run, until the finished run of "
                 f"{s['reference_steps']:,} steps is made).")
        if summary.get("equal_step_runs"):
            note += f" Equal steps from {summary['equal_step_runs']} finished run(s) of {s['reference_steps']:,} steps."
    return note


def verdicts_table(summary: dict) -> str:
    """The ladder's steps: the change of FID and the verdict at equal steps and at equal compute; a * marks a
    change with a mid-run point on one side."""
    views = ("equal_steps", "equal_compute")
    spread = {v: run_spread(summary, v) for v in views}
    steps = steps_of_ladder(summary)
    rows = []
    for st in steps:
        label = f"{st['from']} → {st['to']}" + (" (width part)" if st["width_part"] else "")
        rows.append([label, st["idea"], *_change_cells(st)])
    head = ["step", "idea", "FID change at equal steps", "verdict", "FID change at equal compute", "verdict"]

    def sd(v):
        return (f"a spread of {spread[v]:.1f}, so a threshold of {2 * spread[v]:.1f}," if spread[v]
                else "spread not measured yet")
    star = (" A * marks a change with a mid-run point on one side: that run's learning rate had not finished "
            "decaying (see the table)." if any(st.get(v, {}).get("mid_run") for st in steps for v in views) else "")
    text = (table(head, rows, "llrlrl") + f"\nA negative change is an improvement (lower FID). A change counts only when it exceeds two "
            f"seed-to-seed spreads of a single run's FID, pooled over the presets with several seeds: "
            f"{sd('equal_steps')} at equal steps, {sd('equal_compute')} at equal compute; smaller ones are within "
            f"noise.{star}\n")
    return text + _leave_one_out_table(summary)


def _change_cells(step: dict) -> list[str]:
    """A step's change (a * when it rests on a mid-run point) and verdict at equal steps, then at equal compute."""
    cells = []
    for v in ("equal_steps", "equal_compute"):
        c = step.get(v)
        cells += [f"{c['change']:+.1f}" + ("*" if c["mid_run"] else ""), c["verdict"]] if c else ["—", "—"]
    return cells


def _leave_one_out_table(summary: dict) -> str:
    """The leave-one-out steps (:func:`leave_one_out_steps`) under the verdict table; nothing until a leave-one-out
    preset has a run of its own (the `residual` rung alone stands in for `no_extra_skip`, the ladder's last step)."""
    loo = leave_one_out_steps(summary)
    if not any(st["row"] == st["to"] for st in loo):  # no leave-one-out run of its own yet
        return ""
    rows = []
    for st in loo:
        label = f"optimized → {st['to']}" + (f" (= {st['row']})" if st["row"] != st["to"] else "")
        rows.append([label, st["idea"], *_change_cells(st)])
    head = ["leave one out", "idea removed", "FID change at equal steps", "verdict", "FID change at equal compute",
            "verdict"]
    return ("\n" + table(head, rows, "llrlrl") + "\nLeave one out: `optimized` with one idea reverted to the "
            "baseline's version, trained to the same compute budget. A positive change (worse) means the full model "
            "needs the idea; the same thresholds and * as above. A run that cannot reach the equal-step point within "
            "the budget (a costlier step) has no equal-step change.\n")


def study_curves(records: list[dict], per_step: dict | None = None, cross: dict | None = None):
    """FID against training steps and against training compute (and, given the bench's seconds per step, against
    minutes on an idle machine), one colour per rung, mean over seeds; a dotted vertical line where ``optimized``
    passes ``baseline`` (``compute.crossover``) when that lies inside the plot."""
    import matplotlib.pyplot as plt
    panels = 3 if per_step else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), sharey=True)
    colors = list(plt.get_cmap("tab10").colors) + ["#222222", "#a6a600"]
    for k, preset in enumerate(p for p in compute.ORDER if any(r["preset"] == p for r in records)):
        mine = [r for r in records if r["preset"] == preset]
        steps = sorted(set.intersection(*[{p["step"] for p in r["points"]} for r in mine]))
        if not steps:
            continue
        fids = [[compute.point_at(r, s)["fid"] for r in mine] for s in steps]
        mean = [statistics.fmean(f) for f in fids]
        xs = [steps, [s * mine[0]["train_gflops_per_step"] / 1e3 for s in steps]]
        if per_step:
            xs.append([s * per_step[preset] / 60 for s in steps] if preset in per_step else None)
        label = f"{preset} ({len(mine)} seed{'s' if len(mine) > 1 else ''})"
        mid = [i for i, s in enumerate(steps) if not all(compute.point_at(r, s).get("finished", True) for r in mine)]
        for ax, x in zip(axes, xs):
            if x is None:
                continue
            ax.plot(x, mean, "o--" if preset in compute.WIDTH_PARTS else "o-", color=colors[k % len(colors)],
                    label=label, ms=3)
            if mid:  # a mid-run point of a decaying learning rate: drawn hollow
                ax.plot([x[i] for i in mid], [mean[i] for i in mid], "o", ms=3, color=colors[k % len(colors)],
                        markerfacecolor="white")
            if len(mine) > 1:
                ax.fill_between(x, [min(f) for f in fids], [max(f) for f in fids], color=colors[k % len(colors)],
                                alpha=0.15)
    floor = records[0]["points"][0]["fid_floor"]
    labels = ["training steps (batch 128)", "training compute (TFLOP)", "minutes of training, idle 2-core machine"]
    for ax, xl in zip(axes, labels):
        ax.axhline(floor, c="k", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel=xl)
        ax.grid(alpha=0.3, which="both")
    if cross and cross.get("kind") == "measured":
        axes[1].axvline(cross["tflop"], c="k", ls="--", lw=0.8)
        axes[1].annotate(f"optimized passes baseline\n≈ {cross['tflop']:.0f} TFLOP", (cross["tflop"], floor),
                         xytext=(4, 8), textcoords="offset points", fontsize=7)
    axes[0].set_ylabel("Fashion-FID (EMA weights)")
    if any(p.get("finished") is False for r in records for p in r["points"]):
        axes[-1].plot([], [], "o", ms=3, color="grey", markerfacecolor="white",
                      label="hollow: a mid-run point\n(learning rate not yet decayed)")
    from matplotlib.ticker import FuncFormatter, NullFormatter
    for ax in axes:  # plain numbers on the log axes (no 6x10^1), majors only on x where minors would collide
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "2345" else ""))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    axes[0].set_title("equal steps: what an idea does to the network", fontsize=9)
    axes[1].set_title("equal compute: what it is worth on a machine", fontsize=9)
    if per_step:
        axes[2].set_title("equal minutes: steps x the bench's seconds per step", fontsize=9)
    fig.tight_layout()
    return fig


def crossover_text(summary: dict) -> str:
    """One paragraph: at what compute, if any, ``optimized`` passes ``baseline`` (``compute.crossover``)."""
    c = summary.get("crossover")
    if not c:
        return ""
    lo, hi = c["overlap_tflop"]
    seeds = ", ".join(f"{c['seeds'][p]} seed{'s' if c['seeds'][p] > 1 else ''} of `{p}`" for p in (c["b"], c["a"]))
    mins = (f" (about {c['optimized_idle_minutes']:.0f} min of `optimized` training on the benchmarked idle machine)"
            if "optimized_idle_minutes" in c else "")
    if c["kind"] == "measured":
        say = (f"`{c['b']}` passes `{c['a']}` at about {c['tflop']:.0f} TFLOP of training{mins}, inside the compute "
               f"both reached ({lo:.0f}–{hi:.0f} TFLOP)")
    elif c["kind"] == "from_start":
        say = (f"`{c['b']}` has the lower FID wherever both were measured ({lo:.0f}–{hi:.0f} TFLOP): the crossing lies "
               f"below {lo:.0f} TFLOP, before `{c['b']}`'s first evaluation")
    elif c["kind"] == "extrapolated":
        f = c["fit"]
        say = (f"`{c['b']}` is still worse at {hi:.0f} TFLOP (FID {c['fid_ratio_at_end']:.2f}× `{c['a']}`'s). "
               f"Extrapolated, not measured: power laws fitted to each curve's last points (slopes "
               f"{f[c['a']]['slope']:.2f} and {f[c['b']]['slope']:.2f}) cross at about {c['tflop']:,.0f} TFLOP{mins}, "
               f"{c['tflop'] / hi:.1f}× the compute both reached, if each curve keeps its recent slope")
    elif c["kind"] == "none_ahead":
        f = c["fit"]
        say = (f"`{c['b']}` is still worse at {hi:.0f} TFLOP (FID {c['fid_ratio_at_end']:.2f}× `{c['a']}`'s), and its "
               f"curve does not fall faster (slopes {f[c['a']]['slope']:.2f} for `{c['a']}`, {f[c['b']]['slope']:.2f} "
               f"for `{c['b']}` over their last points): no crossing lies ahead on these curves")
    else:
        say = "the two curves share no range of compute yet"
    mid = (" The curves include mid-run points of a decaying learning rate (labelled * in the table): they are not "
           "what a run finished at that compute would reach." if c.get("mid_run") else "")
    return f"**Crossover** ({seeds}; mean FID joined in log-log): {say}.{mid}\n"


def _setting(summary: dict) -> str:
    """A study's diffusion and training settings in a few words."""
    o, r = summary["settings"].get("overrides") or {}, summary["settings"]["recipe"]
    diff = ("the original linear schedule, ε-prediction" if not o else
            f"{o.get('schedule', 'linear')} schedule" + (" rescaled to zero terminal SNR" if o.get("zero_terminal_snr") else "")
            + f", {o.get('prediction', 'eps')}-prediction".replace("eps-", "ε-"))
    lr = "constant" if r.get("lr_schedule", "constant") == "constant" else f"{r['lr_schedule']} decay to 0 over each run"
    return f"{diff}; Adam {r['lr']:g} ({lr})"


def _pair(summary: dict, view: str, a: str = "baseline", b: str = "optimized") -> tuple[str, str, str]:
    """``a``'s and ``b``'s FID in ``view`` (mean ± sd, seeds) and the change from ``a`` to ``b`` with its verdict."""
    rows = {r["preset"]: r for r in summary["rows"]}
    va, vb = rows.get(a, {}).get(view), rows.get(b, {}).get(view)

    def fid(v):
        return "—" if v is None else cell(*v["fid"]) + f" ({v['seeds']} seed{'s' if v['seeds'] > 1 else ''})"
    change = ("—" if not (va and vb) else
              f"{vb['fid'][0] - va['fid'][0]:+.1f}: {verdict(va, vb, run_spread(summary, view))}")
    return fid(va), fid(vb), change


def _crossing(summary: dict) -> str:
    c = summary.get("crossover")
    if not c:
        return "—"
    tf = f"about {c['tflop']:,.0f} TFLOP" if c.get("tflop") else ""
    return {"measured": f"measured: {tf}" + (" (mid-run curves)" if c.get("mid_run") else ""),
            "extrapolated": f"extrapolated: {tf}, beyond the budget",
            "from_start": "before the first shared evaluation", "none_ahead": "none ahead on these curves",
            }.get(c["kind"], "the curves share no compute")


def studies_compared(first: str = "cpu", second: str = "cpu-best-recipe") -> str:
    """What changed between two studies and what it did: their settings and budgets, ``baseline`` against
    ``optimized`` in both views, the crossover, and every ladder step whose verdict differs. Says so when the
    second study has no summary yet."""
    s1, s2 = compute.load_summary(first), compute.load_summary(second)
    if s1 is None:
        raise CourseError(f"results/study/{first}/summary.json is missing. Fix: python -m course_utils study --name {first}")
    if s2 is None:
        finished, todo = compute.progress_of(second)
        return (f"The study `{second}` has no summary yet ({len(finished)} of {len(finished) + len(todo)} runs of its "
                f"plan finished; see results/study/{second}/progress.md), so there is nothing to compare yet.\n")
    head = ["", f"`{first}`", f"`{second}`"]
    budget = [f"{compute.Study('-', reference_steps=s['settings']['reference_steps']).budget_gflop() / 1e3:.0f} TFLOP "
              f"({s['settings']['reference_steps']:,} `{s['settings']['reference']}` steps)" for s in (s1, s2)]
    rows = [["diffusion and learning rate", _setting(s1), _setting(s2)], ["compute budget", *budget]]
    for view, title in (("equal_compute", "at equal compute"), ("equal_steps", "at equal steps")):
        p1, p2 = _pair(s1, view), _pair(s2, view)
        rows += [[f"`baseline` {title}", p1[0], p2[0]], [f"`optimized` {title}", p1[1], p2[1]],
                 [f"`optimized` − `baseline` {title}", p1[2], p2[2]]]
    rows.append(["where `optimized` passes `baseline`", _crossing(s1), _crossing(s2)])
    out = table(head, rows, "lll")
    v1 = {(st["from"], st["to"]): st for st in steps_of_ladder(s1)}
    changed, both = [], 0
    for st in steps_of_ladder(s2):
        old = v1.get((st["from"], st["to"]))
        for view, title in (("equal_steps", "equal steps"), ("equal_compute", "equal compute")):
            if old and old.get(view) and st.get(view):
                both += 1
                if old[view]["verdict"] != st[view]["verdict"]:
                    changed.append(f"`{st['from']}` → `{st['to']}` at {title}: {old[view]['verdict']} → "
                                   f"{st[view]['verdict']}")
    say = ("no ladder step is measured in both yet" if not both else
           f"{len(changed)} of the {both} verdicts measured in both differ" + (": " + "; ".join(changed) if changed else ""))
    out += ("\nLadder steps (one per rung, in each view): " + say + ".\n"
            "\nFID of the EMA weights, mean ± sd over seeds; a change counts when it exceeds two seed-to-seed spreads "
            "of its own study. The schedule, the prediction target, the learning-rate decay and the budget all changed "
            "together, so a difference between the columns cannot be pinned on any one of them.\n")
    return out


def study_progress(name: str = "cpu") -> str:
    """Where study ``name`` stands: every run of its plan, in the plan's order, with each evaluation made so far
    (step: FID; * a mid-run point of a decaying learning rate), and how many runs are finished."""
    st = compute.get_study(name)
    finished, todo = compute.progress_of(st.name)
    done = {compute._entry(f) for f in finished}
    rows = []
    for preset, seed, kind in map(compute._entry, st.plan):
        rec = compute.load_run(preset, seed, st.name, kind)
        spec = st.spec(preset, seed, kind)
        evals = ", ".join(f"{p['step']:,}: {p['fid']:.1f}" + ("*" if p.get("finished") is False else "")
                          for p in rec["points"]) if rec else ""
        state = ("finished" if (preset, seed, kind) in done
                 else "under way" if rec else "to do")
        rows.append([spec.label, seed, f"{spec.steps:,}", f"{spec.steps * train_gflops(preset) / 1e3:.0f}", state,
                     evals or "—"])
    head = ["run", "seed", "steps", "TFLOP", "state", "FID at each evaluation so far (step: FID)"]
    return (f"{len(finished)} of {len(finished) + len(todo)} runs of the plan finished.\n\n" + table(head, rows, "lrrrl")
            + "\nA * marks a mid-run point: the learning rate had not finished its decay there. A `-NNNNsteps` run is "
              "the finished equal-step run. Evaluations: Fashion-FID of the EMA weights, n = "
            + f"{st.evaluation['n']}, {st.evaluation['sampler'].upper()} {st.evaluation['steps']} steps.\n")


def write_progress(name: str = "cpu") -> Path:
    """results/study/<name>/progress.md: :func:`study_progress`."""
    f = compute.study_dir(compute.get_study(name).name) / "progress.md"
    atomic_write_text(f, study_progress(name))
    return f


def write_study(name: str = "cpu") -> dict | None:
    """Render study ``name``'s saved summary: table.md, verdicts.md, crossover.md (where ``optimized`` passes
    ``baseline``, once both have a curve), compared.md (against the first study, for any other) and curves.png
    beside its summary.json."""
    summary, records = compute.load_summary(name), compute.load_all(name)
    if not summary or not summary["rows"]:
        return summary
    folder = compute.study_dir(name)
    atomic_write_text(folder / "table.md", study_table(summary))
    atomic_write_text(folder / "verdicts.md", verdicts_table(summary))
    if summary.get("crossover"):
        atomic_write_text(folder / "crossover.md", crossover_text(summary))
    if name != "cpu" and compute.load_summary("cpu"):  # what changed against the first study
        atomic_write_text(folder / "compared.md", studies_compared("cpu", name))
    plotting.save(study_curves(records, compute.seconds_per_step(name), summary.get("crossover")),
                  folder / "curves.png")
    return summary


# --- the ablation ------------------------------------------------------------------------------------------

def ablation_table(rows: list[dict], budget: str, n: int, speed: dict | None = None) -> str:
    """Every preset's measures (mean ± sd over seeds), with each step's cost beside its measured speed."""
    cols = ablation.COLUMNS
    flops = bool(rows) and all("train_gflops" in r for r in rows)
    head = (["preset", "kind", "params", "steps"] + (["GFLOP/step", "GFLOP/image"] if flops else [])
            + [label for _, label, _ in cols])
    body = [[r["preset"], r["kind"] + (f" (the same network as {r['same_network_as']}: its runs)"
                                       if r.get("same_network_as") else ""), f"{r['params']:,}", r["steps"]]
            + ([f"{r['train_gflops']:.1f}", f"{r['sample_gflops_per_image']:.2f}"] if flops else [])
            + [cell(r[k], r[k + "_spread"], d) for k, _, d in cols] for r in rows]
    ref = rows[0] if rows else {}
    speeds = (f"the speeds are medians of {speed['presets'][0]['repeats']} rounds of a short benchmark that goes round "
              f"all presets, on {speed['device']} with {speed['threads']} threads (train: batch 128; sampling: "
              f"{speed['presets'][0]['sample_n']} images, 150 steps)." if speed and speed.get("presets") else
              "the speeds are the best of the seeds' training and evaluation runs (other work on the machine only "
              "slows a run down).")
    return (table(head, body, "llrr") + f"\nBudget `{budget}`; mean ± standard deviation over seeds {ref.get('seeds')}; "
            f"FID and KID from {n} samples vs {n} test images; {speeds} Real-vs-real at the same n: FID "
            f"{ref.get('fid_floor', math.nan):.2f}, KID {ref.get('kid_floor', math.nan):.4f}; checkerboard of real "
            f"images {ref.get('checkerboard_real', math.nan):.4f}."
            + (" GFLOP/step: a 128-image training step, forward and backward; GFLOP/image: one sample, 150 steps "
               "(torch.utils.flop_counter)." if flops else "") + "\n")


def loss_panels(histories: dict, reference: str = "optimized"):
    """Seed 0's loss curves: the ladder rungs on the left, the leave-one-out presets (and ``reference``) on the right."""
    import matplotlib.pyplot as plt
    ladder = {p: h for p, h in histories.items() if PRESETS[p].kind == "ladder"}
    loo = {p: h for p, h in histories.items() if PRESETS[p].kind != "ladder"}
    if reference in histories and loo:
        loo = {reference: histories[reference], **loo}
    panels = [(t, h) for t, h in (("ladder rungs", ladder), ("leave one out", loo)) if h]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 3.8), squeeze=False, sharey=True)
    for ax, (title, hs) in zip(axes[0], panels):
        plotting.plot_losses(hs, ax=ax, title=f"{title} (seed 0)")
    fig.tight_layout()
    return fig


def ablation_bars(rows: list[dict]):
    """Bar charts of FID (mean ± sd over seeds, floor dashed) and checkerboard / real per preset."""
    import matplotlib.pyplot as plt
    colors = ["tab:blue" if r["kind"] == "ladder" else "tab:orange" for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.8))
    x = range(len(rows))
    a1.bar(x, [r["fid"] for r in rows], yerr=[0 if r["fid_spread"] != r["fid_spread"] else r["fid_spread"]
                                               for r in rows], color=colors, capsize=3)
    a1.axhline(rows[0]["fid_floor"], ls="--", c="k", lw=1, label="real vs real (floor)")
    a1.set_ylabel("Fashion-FID (lower is better)")
    a2.bar(x, [r["checkerboard"] / r["checkerboard_real"] for r in rows], color=colors)
    a2.axhline(1, ls="--", c="k", lw=1, label="real images")
    a2.axhline(2, ls=":", c="tab:red", lw=1, label="2x real")
    a2.set(yscale="log", ylabel="checkerboard score / real images'")
    for ax in (a1, a2):
        ax.legend(fontsize=8)
        ax.set_xticks(list(x), [r["preset"] for r in rows], rotation=60, ha="right", fontsize=8)
    a1.set_title("blue: ladder rungs, orange: optimized minus one idea", fontsize=9)
    fig.tight_layout()
    return fig


def write_ablation(result: dict) -> dict:
    """Render an :func:`~course_utils.study.ablation.ablate` result in its folder: table.md, summary.png and, for a
    result made in this process (which still holds its loss histories and sample grids), losses.png and samples.png."""
    out, saved = Path(result["out"]), ablation.load_results(folder=result["out"])
    atomic_write_text(out / "table.md", ablation_table(saved["summary"], saved["budget"], saved["n"], saved.get("bench")))
    plotting.save(ablation_bars(saved["summary"]), out / "summary.png")
    if result.get("histories"):
        plotting.save(loss_panels(result["histories"]), out / "losses.png")
        plotting.save(plotting.compare_grids(result["grids"], nrow=4, size=2.2, cols=6), out / "samples.png")
    return saved


def refresh_ablation(folder: str | Path, speed: dict | None = None) -> dict:
    """Re-summarize a saved ablation without training or sampling again: measure the speeds anew (or take
    ``speed``, a :func:`course_utils.evaluation.bench.bench` result), then rewrite results.json, table.md and summary.png."""
    ablation.resummarize(folder, speed)
    return write_ablation({"out": folder})


# --- smaller studies --------------------------------------------------------------------------------------

def samplers_table(result: dict) -> str:
    """DDPM against DDIM at each K and eta: FID, speed and the pixel statistics, each beside DDPM's."""
    rows = [[r["label"], f"{r['fid']:.2f}", f"{r['fid_vs_ddpm']:.2f}", f"{r['images_per_s']:.1f}",
             f"{r['speedup_vs_ddpm']:.1f}", f"{r['dark_fraction']:.3f}", f"{r['class_entropy']:.2f}"]
            for r in result["rows"]]
    head = ["sampler", "Fashion-FID", "× DDPM's FID", "images/s", "× DDPM's speed", "dark fraction", "class entropy"]
    r0, hw = result["rows"][0], result["hardware"]
    return (table(head, rows, "lr") + f"\n`{result['name']}` ({result['train_steps']} training steps), n = {result['n']} "
            f"samples vs {result['n']} test images, sampling seed {result['seed']}; real-vs-real FID floor "
            f"{r0['fid_floor']:.2f}; real images' dark fraction {r0['dark_fraction_real']:.3f}, class entropy "
            f"{r0['class_entropy_real']:.2f} bits. Speeds on {hw['cuda'] or hw['cpu']} with {hw['threads']} threads, "
            "batches of 250 images.\n")


def write_samplers(result: dict, out: str | Path) -> None:
    """Render a sampler comparison in ``out``: table.md and fid_vs_steps.png."""
    atomic_write_text(Path(out) / "table.md", samplers_table(result))
    plotting.save(samplers_plot(result), Path(out) / "fid_vs_steps.png")


def samplers_plot(result: dict):
    """FID and speed against the number of DDIM steps K, DDPM's as dashed lines."""
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ddpm = result["rows"][0]
    for eta in sorted({r["eta"] for r in result["rows"] if r["sampler"] == "ddim"}):
        rs = [r for r in result["rows"] if r["sampler"] == "ddim" and r["eta"] == eta]
        a1.plot([r["steps"] for r in rs], [r["fid"] for r in rs], "o-", label=f"DDIM, eta {eta:g}")
        a2.plot([r["steps"] for r in rs], [r["images_per_s"] for r in rs], "o-", label=f"DDIM, eta {eta:g}")
    a1.axhline(ddpm["fid"], c="k", ls="--", lw=1, label="DDPM, 150 steps")
    a1.axhline(ddpm["fid_floor"], c="gray", ls=":", lw=1, label="real vs real")
    a2.axhline(ddpm["images_per_s"], c="k", ls="--", lw=1, label="DDPM, 150 steps")
    a1.set_ylabel(f"Fashion-FID (n = {result['n']})")
    a2.set(ylabel="images / s", yscale="log")
    for ax in (a1, a2):
        ax.set(xlabel="sampling steps K", xscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{result['name']}: DDIM vs DDPM", fontsize=9)
    fig.tight_layout()
    return fig


def ema_table(result: dict) -> str:
    """ema-check: FID of one run at each step, scored each way of :data:`course_utils.study.recipe.WAYS`."""
    rows = [[f"{r['step']:,}"] + [f"{r[w]['fid']:.1f}" for w in WAYS] for r in result["rows"]]
    floor = result["rows"][0]["raw"]["fid_floor"] if result["rows"] else math.nan
    return (table(["steps", *WAYS.values()], rows, "r") + f"\nFashion-FID of `{result['preset']}` (one run, seed "
            f"{result['seed']}, EMA decay {result['ema']}), n = {result['n']} samples (DDPM, 150 steps) vs {result['n']} "
            f"test images; real-vs-real floor {floor:.2f}. Recomputed: exact averages over 50 fresh batches of 128 "
            "noised training images.\n")


def write_ema(result: dict, out: str | Path) -> str:
    """Render an ema-check result as ``out``/table.md; returns the table."""
    text = ema_table(result)
    atomic_write_text(Path(out) / "table.md", text)
    return text


def bench_text(result: dict) -> str:
    """The benchmark as a text table, with the header saying exactly what was measured."""
    rows, hw = result["presets"], result["hardware"]
    r0 = rows[0]
    lines = [f"device {result['device']} ({hw['cuda'] or hw['cpu']}), torch {result['torch']}, {result['threads']} "
             f"threads; data pipeline {result['data_seconds_per_epoch']:.3f} s per epoch (468 batches of 128 with flips)",
             f"medians of {r0['repeats']} rounds over the presets; a round times {r0['steps_per_repeat']} training "
             f"steps of batch {r0['batch']} and one sampling run of {r0['sample_n']} images x {r0['T']} steps",
             f"{'preset':<14} {'params':>10} {'GFLOP/step':>10} {'steps/s':>8} {'s/step':>7} {'GFLOP/s':>8} "
             f"{'GFLOP/img':>9} {'img/s':>7}"]
    lines += [f"{r['name']:<14} {r['params']:>10,} {r['train_gflops']:>10.1f} {r['train_steps_per_s']:>8.2f} "
              f"{1 / r['train_steps_per_s']:>7.3f} {r['train_gflops_per_s']:>8.1f} "
              f"{r['sample_gflops_per_image']:>9.2f} {r['sample_images_per_s']:>7.1f}" for r in rows]
    return "\n".join(lines)

