"""Helpers that keep the notebooks short: the budget banner and the rung-vs-rung comparison.

Every notebook from 02 on calls :func:`compare` to train its rung and the previous one under the
current budget (reusing runs already made), overlay their loss curves, show samples side by side
and print the checkerboard score beside the real data's.
"""
from __future__ import annotations

import os

import torch

from course_utils import plotting, reports
from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.metrics import checkerboard_score
from course_utils.model.unet import LADDER, build, count_params
from course_utils.paths import relative
from course_utils.study import compute
from course_utils.runs import as_variant, load_shipped, train_preset
from course_utils.system import pick_device
from course_utils.train import get_budget


def setup(seed: int = 0):
    """Print the budget and device, seed everything, and return the budget."""
    budget = get_budget()
    torch.manual_seed(seed)
    device = pick_device()
    src = "COURSE_BUDGET" if os.environ.get("COURSE_BUDGET") else "default for this machine"
    print(f"budget: {budget.name} ({src}) - {budget.description}")
    print(f"device: {device}; torch {torch.__version__}")
    return budget


def _variants(presets) -> list[tuple[str, object, object]]:
    """(label, item, config) for each item: anything :func:`course_utils.runs.as_variant` takes."""
    out = []
    for item in presets:
        label, preset, overrides, model = as_variant(item)
        config = model.config if model is not None else build(preset, **overrides).config
        out.append((label, item, config))
    return out


def compare(presets: list, budget=None, retrain: bool = False, n: int | None = None, seed: int = 0,
            show: bool = True, steps: int | None = None) -> dict:
    """Train (or reuse) each preset under ``budget`` and compare them like with like.

    An item is a preset name, a preset with changed config fields, ``("wide", {"act": "gelu"})``, a UNetConfig, or
    a U-Net you built (``cu.build("optimized", act="silu")``, or with a module of your own:
    ``cu.build("wide", act=MyGELU)``). Each variant trains in its own run folder and is shown under a name like
    ``wide+act=gelu``.
    Every network trains the same number of steps: ``steps`` if given, else the largest the budget gives any of
    them (a narrow variant beside a wide rung trains the narrow budget's steps, which is slow for the wide one;
    ``steps=budget.steps_wide`` keeps such a comparison short).
    Returns {label: {"model", "history", "samples", "checkerboard", ...}} plus "real" for the test
    images' checkerboard score.
    """
    budget = get_budget(budget) if not hasattr(budget, "steps_for") else budget
    n = n or budget.samples
    variants = _variants(presets)
    labels = [label for label, _, _ in variants]
    if len(set(labels)) < len(labels):
        raise CourseError(f"compare() got the same network twice: {labels}. Fix: list each variant once.")
    # the same number of steps for every compared network
    if steps is None:
        steps = max(budget.steps_for(config) for _, _, config in variants)
    elif isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise CourseError(f"compare(steps={steps!r}): steps must be a whole number of training steps, at least 1. "
                          "Fix: steps=budget.steps_wide, or leave it out to use the budget's.")
    real = load("test").images[:max(n, 256)]
    cb_real = checkerboard_score(real)
    results: dict = {"real": {"checkerboard": cb_real}}
    presets = labels
    for p, item, _ in variants:
        model, hist = train_preset(item, budget, seed=seed, retrain=retrain, steps=steps)
        imgs = sample(model, n, seed=seed)
        results[p] = {"model": model, "history": hist, "samples": imgs, "checkerboard": checkerboard_score(imgs),
                      "params": count_params(model), "steps": hist.steps,
                      "s_per_step": hist.seconds / max(hist.steps, 1), "final_loss": hist.final_loss()}
    if show:
        from IPython.display import display
        display(plotting.plot_losses({p: results[p]["history"] for p in presets}))
        grids = {f"{p} ({results[p]['steps']} steps)": results[p]["samples"] for p in presets}
        grids["real (test split)"] = real[:n]
        display(plotting.compare_grids(grids))
        import matplotlib.pyplot as plt
        plt.close("all")
        w = max(12, *(len(p) for p in presets))
        print(f"{'preset':<{w}} {'params':>10} {'steps':>6} {'s/step':>7} {'final loss':>11} {'checkerboard':>13} {'x real':>7}")
        for p in presets:
            r = results[p]
            print(f"{p:<{w}} {r['params']:>10,} {r['steps']:>6} {r['s_per_step']:>7.3f} {r['final_loss']:>11.4f} "
                  f"{r['checkerboard']:>13.4f} {r['checkerboard'] / cb_real:>7.1f}")
        print(f"{'real':<{w}} {'':>10} {'':>6} {'':>7} {'':>11} {cb_real:>13.4f} {1.0:>7.1f}")
        if budget.name == "ci":
            print("(ci budget: a few steps only, so the samples are still noise; run with COURSE_BUDGET=quick.)")
    return results


def shipped_samples(presets: list[str], n: int = 16, seed: int = 0, show: bool = True) -> dict:
    """Samples from the shipped checkpoints (checkpoints/PRESET.safetensors) of the presets that have one."""
    out = {}
    cb_real = None
    for p in presets:
        found = load_shipped(p, p)
        if found is None:
            print(f"{p}: no shipped checkpoint (checkpoints/{p}.safetensors); train one with "
                  f"python -m course_utils train {p}")
            continue
        model, header = found
        imgs = sample(model, n, seed=seed)
        out[f"{p} (shipped, {header['meta'].get('step', '?')} steps)"] = imgs
        cb_real = cb_real if cb_real is not None else checkerboard_score(load("test").images[:256])
        cb = checkerboard_score(imgs)
        print(f"{p} (shipped, {header['meta'].get('step', '?')} steps): checkerboard {cb:.4f} = {cb / cb_real:.1f}x "
              f"real images' ({cb_real:.4f}); {n} samples")
    if show and out:
        import matplotlib.pyplot as plt
        from IPython.display import display
        display(plotting.compare_grids(out))
        plt.close("all")
    return out


def rung_evidence(*presets: str, name: str = "cpu", show: bool = True) -> dict:
    """The shipped compute-aware study's evidence for a rung: ``rung_evidence("groupnorm")`` compares it with the
    rung before it on the ladder; ``rung_evidence("upsample", "wide_channels", ...)`` walks a chain of presets.

    For each step of the chain, at equal steps and at equal compute: the FID (mean ± sd over seeds), the change
    and a verdict (better / worse / within noise: a change counts when it exceeds two seed-to-seed spreads of a
    single run). With ``show``: the curves of FID against training compute and the sample grids of the runs.
    Returns {"rows": [...], "spread": {...}}."""
    if len(presets) == 1:
        if presets[0] not in LADDER[1:]:
            raise CourseError(f"{presets[0]!r} has no rung before it; name the presets to compare, e.g. "
                              "rung_evidence('upsample', 'wide').")
        presets = (LADDER[LADDER.index(presets[0]) - 1], presets[0])
    summary = compute.load_summary(name)
    rows = {r["preset"]: r for r in (summary or {}).get("rows", [])}
    missing = [p for p in presets if p not in rows or "equal_compute" not in rows[p]]
    if missing:
        print(f"The shipped study ({relative(compute.study_dir(name))}) has no finished run of {', '.join(missing)} yet. "
              f"Make it with: python -m course_utils study --only {' '.join(missing)}")
        presets = tuple(p for p in presets if p not in missing)
        if len(presets) < 2:
            return {"rows": [], "spread": {}}
    views = {"equal_steps": "equal steps", "equal_compute": "equal compute"}
    spread = {v: reports.run_spread(summary, v) for v in views}
    out = []
    for before, after in zip(presets, presets[1:]):
        row = {"from": before, "to": after}
        for v in views:
            a, b = rows[before].get(v), rows[after].get(v)
            if a and b:
                row[v] = {"before": a["fid"], "after": b["fid"], "steps": (a["step"], b["step"]),
                          **reports.step_change(a, b, spread[v])}
        out.append(row)
    if show:
        def fid(m_sd, seeds):
            m, sd = m_sd
            return f"{m:.1f}" + ("" if sd != sd else f" ± {sd:.1f}") + f" ({seeds})"
        e = summary["settings"]["eval"]
        print(f"Shipped compute-aware study ({relative(compute.study_dir(name))}): "
              f"Fashion-FID of the EMA weights, n = {e['n']}, {e['sampler'].upper()} {e.get('steps')} steps; "
              "mean ± sd (seeds)")
        print(f"{'change':<28} {'view':<14} {'steps':>13} {'before':>17} {'after':>17} {'change':>7}  verdict")
        for row in out:
            for v, label in views.items():
                if v in row:
                    r = row[v]
                    print(f"{row['from'] + ' -> ' + row['to']:<28} {label:<14} "
                          f"{r['steps'][0]:>6,}/{r['steps'][1]:<6,} {fid(r['before'], rows[row['from']][v]['seeds']):>17} "
                          f"{fid(r['after'], rows[row['to']][v]['seeds']):>17} {r['change']:>+7.1f}  {r['verdict']}")
        for v, label in views.items():
            sd = spread[v]
            print(f"seed-to-seed spread of one run at {label}: " + (f"{sd:.1f} FID (so a change beyond {2 * sd:.1f} "
                  "counts)" if sd else "not measured yet (one seed per rung)"))
        _show_evidence(presets, summary, name)
    return {"rows": out, "spread": spread}


def _show_evidence(presets, summary, name) -> None:
    """FID against training compute for ``presets`` (the other rungs faint) beside their sample grids."""
    import matplotlib.pyplot as plt
    from IPython.display import display
    from PIL import Image

    records = compute.load_all(name)
    grids = [(p, compute.samples_file(p, 0, name)) for p in presets] if len(presets) <= 4 else []
    grids = [(p, f) for p, f in grids if f.is_file()]  # (a long chain: the curves only)
    fig, axes = plt.subplots(1, 1 + len(grids), figsize=(4.2 + 2.3 * len(grids), 3.2), squeeze=False,
                             gridspec_kw={"width_ratios": [1.8] + [1] * len(grids)})
    ax = axes[0, 0]
    colors = plt.get_cmap("tab10").colors
    for p in compute.ORDER:
        mine = [r for r in records if r["preset"] == p]
        if not mine:
            continue
        steps = sorted(set.intersection(*[{q["step"] for q in r["points"]} for r in mine]))
        x = [s * mine[0]["train_gflops_per_step"] / 1e3 for s in steps]
        y = [sum(compute.point_at(r, s)["fid"] for r in mine) / len(mine) for s in steps]
        if p in presets:
            ax.plot(x, y, "o-", ms=3, color=colors[presets.index(p) % 10], label=p)
        else:
            ax.plot(x, y, "-", color="0.8", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute (TFLOP)")
    ax.set_ylabel("Fashion-FID")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("FID vs compute (grey: the other rungs)", fontsize=9)
    for a, (p, f) in zip(axes[0, 1:], grids):
        a.imshow(Image.open(f), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        a.set_title(f"{p}, end of its budget", fontsize=9)
        a.axis("off")
    fig.tight_layout()
    display(fig)
    plt.close(fig)


# --- the verdict card: one rung's evidence at a glance, every number read from the shipped studies -------------

# the studies a card shows, in its columns: (study name, column title)
CARD_STUDIES = (("cpu", "original schedule"), ("cpu-best-recipe", "best recipe"))
CARD_VIEWS = (("equal_steps", "at equal steps"), ("equal_compute", "at equal compute"))


def rung_before(rung: str) -> str:
    """The preset a rung is compared with: the rung before it on the ladder (or, for a width part, the part before)."""
    from course_utils.model.unet import WIDTH_STEPS
    for chain in (LADDER, WIDTH_STEPS):
        if rung in chain[1:]:
            return chain[chain.index(rung) - 1]
    raise CourseError(f"{rung!r} has no rung before it. Fix: name a rung of the ladder after the first: "
                      f"{', '.join(LADDER[1:])}.")


def _idea(rung: str) -> str:
    """The preset's one-line idea, without the '+ ' that chains the presets' descriptions."""
    import re
    from course_utils.model.unet import PRESETS
    text = re.split(r"(?:^|: |baseline )\+ ", PRESETS[rung].description)[-1]
    return text[:1].upper() + text[1:]


def _study_effect(summary: dict | None, before: str, after: str) -> dict:
    """One study's evidence for one step: {"status": "running"} (no summary yet), or per view the FIDs before and
    after, the change, the noise threshold (two seed-to-seed spreads) and the verdict ({"status": "missing"} for a
    view the study has not measured yet for both presets)."""
    if summary is None:
        return {"status": "running"}
    rows = {r["preset"]: r for r in summary.get("rows", [])}
    out: dict = {"status": "ok"}
    for view, _ in CARD_VIEWS:
        a, b = (rows.get(before) or {}).get(view), (rows.get(after) or {}).get(view)
        if not (a and b):
            out[view] = {"status": "missing"}
            continue
        spread = reports.run_spread(summary, view)
        out[view] = {"status": "ok", "before": a["fid"][0], "after": b["fid"][0], **reports.step_change(a, b, spread),
                     "threshold": None if spread is None else 2 * spread,
                     "steps": (a["step"], b["step"]), "seeds": (a["seeds"], b["seeds"])}
    if all(out[v]["status"] == "missing" for v, _ in CARD_VIEWS):
        out["status"] = "missing"
    return out


def _gflops(rung: str, summaries: dict) -> float:
    """Training GFLOP of one 128-image step: from the first shipped summary that has the rung, else counted."""
    for s in summaries.values():
        row = next((r for r in (s or {}).get("rows", []) if r["preset"] == rung), None)
        if row is not None:
            return row["train_gflops"]
    from course_utils.model.cost import train_gflops
    return train_gflops(rung)


def _study_settings(summary: dict | None) -> dict | None:
    """What 'equal steps' and 'equal compute' mean in a study, and how its FID is measured."""
    if summary is None:
        return None
    s = summary["settings"]
    ref = next((r for r in summary["rows"] if r["preset"] == s["reference"]), None)
    per_step = ref["train_gflops"] if ref else compute.train_gflops(s["reference"])
    return {"reference": s["reference"], "reference_steps": s["reference_steps"],
            "budget_tflop": s["reference_steps"] * per_step / 1e3, "n": s["eval"]["n"],
            "sampler": s["eval"]["sampler"], "sampler_steps": s["eval"].get("steps")}


def _sentence(step: dict, studies=CARD_STUDIES) -> str:
    """One plain sentence from the verdicts: the first study's, then whether the others agree."""
    first, rest = step["studies"][studies[0][0]], [step["studies"][n] for n, _ in studies[1:]]
    a, b = step["from"], step["to"]
    ratio = step["cost"][1] / step["cost"][0]
    if first["status"] != "ok" or "ok" != first["equal_steps"]["status"] or "ok" != first["equal_compute"]["status"]:
        return f"The shipped study has not measured `{a}` → `{b}` in both views yet, so there is no verdict to give."
    vs, vc = first["equal_steps"]["verdict"], first["equal_compute"]["verdict"]
    cost = "the same FLOPs per step" if abs(ratio - 1) < 0.005 else f"{ratio:.2f}× the FLOPs per step"
    per_step = {"within noise": "makes no measurable change per step", "better": "is better per step",
                "worse": "is worse per step"}
    if vs == vc == "within noise":
        text = (f"`{b}` neither helps nor hurts measurably, at {cost}: both changes stay inside the noise threshold, "
                f"so this study cannot tell it apart from `{a}`")
    elif vs == vc and vs in ("better", "worse"):
        text = f"`{b}` is {vs} than `{a}` both per step and at equal compute, at {cost}"
    elif vc == "worse" and vs in per_step and ratio > 1:
        text = f"`{b}` {per_step[vs]} but is worse at equal compute: it costs {cost} and does not buy them back"
    elif vc == "better" and vs in per_step and ratio < 1:
        text = f"`{b}` {per_step[vs]} but is better at equal compute: at {cost} it gets more steps for the same FLOPs"
    else:
        text = f"`{b}` is {vs} at equal steps and {vc} at equal compute, at {cost}"
    for other, (_, title) in zip(rest, studies[1:]):
        if other["status"] == "running":
            text += f"; the {title}'s study is still running"
        elif other["status"] == "missing" or other["equal_compute"]["status"] != "ok":
            text += f"; the {title}'s study has not reached this rung yet"
        else:
            ws, wc = other["equal_steps"].get("verdict", "not measured"), other["equal_compute"]["verdict"]
            same = (ws, wc) == (vs, vc)
            text += (f"; under the {title} the verdicts are the same" if same else
                     f"; under the {title} it is {ws} at equal steps and {wc} at equal compute")
    return text + "."


def card_data(*rungs: str, studies=CARD_STUDIES) -> dict:
    """The numbers of :func:`verdict_card`, read from the shipped studies' summary.json files: for each rung, the
    step from the rung before it, its idea, its training cost per 128-image step (before, after) and, per study,
    its effect at equal steps and at equal compute with the noise threshold and verdict; then one sentence."""
    if not rungs:
        raise CourseError("verdict_card() needs a rung, e.g. verdict_card('gelu').")
    summaries = {name: compute.load_summary(name) for name, _ in studies}
    steps = []
    for rung in rungs:
        before = rung_before(rung)
        step = {"from": before, "to": rung, "idea": _idea(rung),
                "cost": (_gflops(before, summaries), _gflops(rung, summaries)),
                "studies": {name: _study_effect(summaries[name], before, rung) for name, _ in studies}}
        step["sentence"] = _sentence(step, studies)
        steps.append(step)
    return {"steps": steps, "studies": list(studies),
            "settings": {name: _study_settings(summaries[name]) for name, _ in studies},
            "samples": {name: {p: compute.samples_file(p, 0, name) for p in dict.fromkeys(
                [q for st in steps for q in (st["from"], st["to"])])} for name, _ in studies}}


def _effect_text(e: dict) -> str:
    """One cell of the card: change (before → after), verdict and threshold."""
    if e["status"] == "running":
        return "still running (no summary yet)"
    if e["status"] == "missing":
        return "not measured yet"
    star = "*" if e["mid_run"] else ""
    thr = "threshold not measured yet" if e["threshold"] is None else f"threshold ±{e['threshold']:.1f}"
    verdict = e["verdict"] if e["threshold"] is not None else "no verdict yet"
    seeds = f"{e['seeds'][0]} vs {e['seeds'][1]} seed{'s' if e['seeds'][1] > 1 else ''}"
    return f"{e['change']:+.1f}{star} ({e['before']:.1f} → {e['after']:.1f}, {seeds}): {verdict} ({thr})"


class VerdictCard:
    """A rendered verdict card: HTML in a notebook, plain text when printed (``print(card)``) or in a terminal."""

    def __init__(self, data: dict):
        self.data = data

    def _cell(self, step: dict, name: str, view: str) -> str:
        e = step["studies"][name]
        return _effect_text(e if e["status"] != "ok" else e[view])

    def _notes(self) -> list[str]:
        notes = ["FID: Fashion-FID of the EMA weights, lower is better; a change counts only beyond the threshold "
                 "(two seed-to-seed spreads of one run's FID), else it is within noise."]
        for name, title in self.data["studies"]:
            s = self.data["settings"][name]
            if s is None:
                notes.append(f"{title}: results/study/{name}/summary.json is not there yet (the study is still "
                             f"running); its column fills in when it is.")
            else:
                notes.append(f"{title} (results/study/{name}/): equal steps = {s['reference_steps']:,} steps each; "
                             f"equal compute = {s['budget_tflop']:.1f} TFLOP each ({s['reference_steps']:,} steps of "
                             f"{s['reference']}); n = {s['n']} samples, {s['sampler'].upper()} {s['sampler_steps']} "
                             "steps.")
        if any(e.get(v, {}).get("mid_run") for st in self.data["steps"] for e in st["studies"].values()
               for v, _ in CARD_VIEWS):
            notes.append("*: a mid-run point of a run whose learning rate had not finished decaying.")
        return notes

    def _grids(self) -> list[tuple[str, list[tuple[str, object]]]]:
        """Per study with both sample grids on disk: (title, [(preset, png path), ...])."""
        out = []
        for name, title in self.data["studies"]:
            files = self.data["samples"][name]
            if files and all(f.is_file() for f in files.values()):
                out.append((title, list(files.items())))
        return out

    def __str__(self) -> str:
        titles = [t for _, t in self.data["studies"]]
        lines = []
        for st in self.data["steps"]:
            a, b = st["cost"]
            lines += [f"Verdict card: {st['from']} -> {st['to']}",
                      f"  idea: {st['idea']}",
                      f"  cost: {a:.1f} -> {b:.1f} GFLOP per 128-image training step (x{b / a:.2f})",
                      "  FID change (" + " | ".join(titles) + "):"]
            lines += [f"    {label + ':':<18}" + " | ".join(self._cell(st, n, view) for n, _ in self.data["studies"])
                      for view, label in CARD_VIEWS]
            lines.append(f"  in one sentence: {st['sentence']}")
        for title, files in self._grids():
            lines.append(f"  samples ({title}, end of each run's compute budget): "
                         + ", ".join(f"{p}: {relative(f)}" for p, f in files))
        lines += ["  " + n for n in self._notes()]
        return "\n".join(lines).replace("→", "->").replace("×", "x").replace("±", "+-")

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import base64
        import html
        import re

        def esc(text: str) -> str:  # escaped, with `code` as <code>
            return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))
        cols = self.data["studies"]
        parts = ['<div class="course-verdict-card" style="border:1px solid #999;border-radius:6px;padding:8px 12px;'
                 'max-width:820px;font-size:13px;line-height:1.4">']
        for k, st in enumerate(self.data["steps"]):
            a, b = st["cost"]
            parts.append("<hr style='margin:6px 0'>" if k else "")
            parts.append(f"<div style='font-weight:bold;font-size:14px'>Verdict card: <code>{esc(st['from'])}</code> "
                         f"→ <code>{esc(st['to'])}</code></div>")
            parts.append(f"<div><b>Idea</b>: {esc(st['idea'])}</div>")
            parts.append(f"<div><b>Cost</b>: {a:.1f} → {b:.1f} GFLOP per 128-image training step "
                         f"(×{b / a:.2f})</div>")
            head = "".join(f"<th style='text-align:left'>{esc(t)}</th>" for _, t in cols)
            rows = "".join(f"<tr><td>FID change {esc(label)}</td>"
                           + "".join(f"<td style='text-align:left'>{esc(self._cell(st, n, view))}</td>" for n, _ in cols)
                           + "</tr>" for view, label in CARD_VIEWS)
            parts.append(f"<table style='margin:4px 0'><tr><th></th>{head}</tr>{rows}</table>")
            parts.append(f"<div><b>In one sentence</b>: {esc(st['sentence'])}</div>")
        for title, files in self._grids():
            width = 274 if len(files) <= 2 else 206  # 2x (or 1.5x) the 137-pixel grid, pixels kept sharp
            imgs = "".join(
                f"<figure style='display:inline-block;margin:4px 12px 0 0'><img alt='{esc(p)}' "
                f"src='data:image/png;base64,{base64.b64encode(f.read_bytes()).decode()}' "
                f"style='width:{width}px;image-rendering:pixelated'><figcaption style='font-size:12px'>"
                f"<code>{esc(p)}</code></figcaption></figure>" for p, f in files)
            parts.append(f"<div style='margin-top:6px'><b>Samples</b> ({esc(title)}, seed 0, end of each run's "
                         f"compute budget):<br>{imgs}</div>")
        parts.append("<div style='color:#555;font-size:12px;margin-top:4px'>"
                     + "<br>".join(esc(n) for n in self._notes()) + "</div></div>")
        return "".join(parts)


def verdict_card(*rungs: str) -> VerdictCard:
    """The verdict card of one or more rungs (each against the rung before it): the idea, its cost in training GFLOP
    per 128-image step, the FID change at equal steps and at equal compute with the noise threshold and the verdict
    for each shipped study (original schedule | best recipe; a study still running says so), one sample grid and
    one sentence. Every number comes from results/study/*/summary.json. ``nb.verdict_card("gelu")``."""
    return VerdictCard(card_data(*rungs))
