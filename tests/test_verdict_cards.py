"""The verdict cards of notebooks 03-07 (``nb.verdict_card``): every number is the shipped study's, the best-recipe
column says the study is still running until its summary.json exists and fills in from it once it does, and each
notebook shows its card (with the 'what you should see under quick' box) instead of a pasted verdict. No training."""
from __future__ import annotations

import copy
import json
import shutil
from html import unescape
from pathlib import Path

import pytest

from course_utils import notebook as nb
from course_utils import reports
from course_utils.study import compute

ROOT = Path(__file__).resolve().parents[1]
# the card each notebook shows: its rungs, each against the rung before it
CARDS = {"03_group_norm": ("groupnorm",), "04_gelu": ("gelu",), "05_rearrange_pooling": ("rearrange",),
         "06_sinusoidal_time_embeddings": ("sinusoidal",), "07_residual_blocks": ("residual", "optimized")}
RUNGS = [r for rungs in CARDS.values() for r in rungs]
VIEWS = ("equal_steps", "equal_compute")


def _results(tmp_path: Path, monkeypatch, best: dict | None) -> Path:
    """A results folder with the shipped original-schedule study and, if given, a best-recipe summary."""
    (tmp_path / "study" / "cpu").mkdir(parents=True)
    shutil.copy(compute.study_dir("cpu") / "summary.json", tmp_path / "study" / "cpu" / "summary.json")
    shutil.copytree(compute.study_dir("cpu") / "samples", tmp_path / "study" / "cpu" / "samples")
    if best is not None:
        (tmp_path / "study" / "cpu-best-recipe").mkdir(parents=True)
        (tmp_path / "study" / "cpu-best-recipe" / "summary.json").write_text(json.dumps(best, indent=1))
    monkeypatch.setattr(compute, "results_dir", lambda: tmp_path)
    return tmp_path


def _expected(summary: dict, before: str, after: str) -> dict:
    """What the card must say for one step, computed here from the summary itself."""
    rows = {r["preset"]: r for r in summary["rows"]}
    step = next(s for s in reports.steps_of_ladder(summary) if (s["from"], s["to"]) == (before, after))
    out = {}
    for view in VIEWS:
        spread = reports.run_spread(summary, view)
        out[view] = {"before": rows[before][view]["fid"][0], "after": rows[after][view]["fid"][0],
                     "change": step[view]["change"], "verdict": step[view]["verdict"], "threshold": 2 * spread,
                     "seeds": (rows[before][view]["seeds"], rows[after][view]["seeds"])}
    out["cost"] = (rows[before]["train_gflops"], rows[after]["train_gflops"])
    return out


def _best_like(summary: dict, shift: float = -80.0, drop: str | None = None) -> dict:
    """A best-recipe summary with the same layout as the original study's: other FIDs, one row left out if asked,
    and the equal-step points marked mid-run (as a cosine-schedule study writes them before its short runs)."""
    best = copy.deepcopy(summary)
    best["name"], best["settings"]["reference_steps"] = "cpu-best-recipe", 3000
    best["rows"] = [r for r in best["rows"] if r["preset"] != drop]
    for r in best["rows"]:
        for view in VIEWS:
            if view in r:
                r[view]["fids"] = [f + shift * (1 + 0.1 * k) for k, f in enumerate(r[view]["fids"])]
                fids = r[view]["fids"]
                r[view]["fid"] = [sum(fids) / len(fids), r[view]["fid"][1]]
        r["equal_steps"]["finished"] = False
    return best


@pytest.mark.parametrize("rung", RUNGS)
def test_the_cards_numbers_are_the_shipped_studys(rung, tmp_path, monkeypatch):
    _results(tmp_path, monkeypatch, best=None)
    summary = compute.load_summary("cpu")
    data = nb.card_data(rung)
    (step,) = data["steps"]
    before = nb.rung_before(rung)
    assert (step["from"], step["to"]) == (before, rung)
    want = _expected(summary, before, rung)
    assert step["cost"] == pytest.approx(want["cost"])
    text = str(nb.VerdictCard(data))
    html = unescape(nb.VerdictCard(data)._repr_html_())
    assert f"{want['cost'][0]:.1f} -> {want['cost'][1]:.1f} GFLOP" in text
    for view in VIEWS:
        got, w = step["studies"]["cpu"][view], want[view]
        for key in ("before", "after", "change", "threshold"):
            assert got[key] == pytest.approx(w[key]), (rung, view, key)
        assert got["verdict"] == w["verdict"] and w["verdict"] in ("better", "worse", "within noise")
        seeds = f"{w['seeds'][0]} vs {w['seeds'][1]} seed{'s' if w['seeds'][1] > 1 else ''}"
        cell = (f"{w['change']:+.1f} ({w['before']:.1f} -> {w['after']:.1f}, {seeds}): {w['verdict']} "
                f"(threshold +-{w['threshold']:.1f})")
        assert cell in text, (cell, text)
        assert cell.replace("->", "→").replace("+-", "±") in html
    assert step["sentence"].endswith(".") and step["sentence"] in html.replace("<code>", "`").replace("</code>", "`")


def test_the_best_recipe_column_says_still_running_without_its_summary(tmp_path, monkeypatch):
    _results(tmp_path, monkeypatch, best=None)
    card = nb.verdict_card("gelu")
    (step,) = card.data["steps"]
    assert step["studies"]["cpu-best-recipe"] == {"status": "running"}
    text, html = str(card), card._repr_html_()
    assert text.count("still running") >= 3 and "best recipe" in text  # both views, the sentence, the note
    assert html.count("still running") >= 3 and "best recipe" in html
    assert "the best recipe's study is still running" in step["sentence"]


def test_the_best_recipe_column_fills_in_from_its_summary(tmp_path, monkeypatch):
    original = json.loads((compute.study_dir("cpu") / "summary.json").read_text())
    best = _best_like(original, drop="sinusoidal")
    _results(tmp_path, monkeypatch, best=best)
    for rung in ("gelu", "optimized"):
        (step,) = nb.card_data(rung)["steps"]
        want = _expected(best, nb.rung_before(rung), rung)
        got = step["studies"]["cpu-best-recipe"]
        assert got["status"] == "ok"
        for view in VIEWS:
            for key in ("before", "after", "change", "threshold"):
                assert got[view][key] == pytest.approx(want[view][key]), (rung, view, key)
            assert got[view]["verdict"] == want[view]["verdict"]
        assert got["equal_steps"]["mid_run"] and not got["equal_compute"]["mid_run"]
        text = str(nb.verdict_card(rung))
        w = want["equal_compute"]
        assert f"{w['change']:+.1f} ({w['before']:.1f} -> {w['after']:.1f}, " in text and f"): {w['verdict']} (" in text
        assert f"{want['equal_steps']['change']:+.1f}*" in text and "*: a mid-run point" in text
        assert "still running" not in text and "3,000 steps each" in text
    # a rung the running study has not reached yet, and the step after it
    for rung in ("sinusoidal", "residual"):
        (step,) = nb.card_data(rung)["steps"]
        assert step["studies"]["cpu-best-recipe"]["status"] == "missing"
        assert "not measured yet" in str(nb.verdict_card(rung)) and "has not reached this rung yet" in step["sentence"]


def test_a_card_without_a_rung_before_it_is_refused():
    with pytest.raises(nb.CourseError, match="no rung before it"):
        nb.card_data("baseline")


def _cells(stem: str) -> list[tuple[str, str]]:
    cells = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
    return [(c["cell_type"], "".join(c["source"])) for c in cells]


def _prose(stem: str) -> str:
    """The words of a document, whitespace collapsed: a path ending .md, or a notebook stem (its markdown cells)."""
    if stem.endswith(".md"):
        return " ".join((ROOT / stem).read_text().split())
    return " ".join(" ".join(src.split()) for kind, src in _cells(stem) if kind == "markdown")


@pytest.mark.parametrize("stem", sorted(CARDS))
def test_notebooks_03_to_07_show_their_card_and_the_quick_box(stem):
    cells = _cells(stem)
    appendix = next((i for i, (kind, src) in enumerate(cells) if src.startswith("## Appendix")), len(cells))
    calls = [src for kind, src in cells[:appendix] if kind == "code" and "nb.verdict_card(" in src]
    args = ", ".join(f'"{r}"' for r in CARDS[stem])
    assert len(calls) == 1 and calls[0].strip() == f"nb.verdict_card({args})", calls  # (the Appendix may add more)
    markdown = "\n".join(src for kind, src in cells if kind == "markdown")
    assert "The verdict so far" not in markdown, "a pasted verdict: the card computes it"
    boxes = [src for kind, src in cells if kind == "markdown"
             and src.startswith("> **What you should see under `quick`, and when you won't")]
    assert len(boxes) == 1, f"{stem}: one 'What you should see under `quick`' box"
    card = next(i for i, (kind, src) in enumerate(cells) if kind == "code" and "nb.verdict_card(" in src)
    box = next(i for i, (kind, src) in enumerate(cells) if src in boxes)
    exercises = next(i for i, (kind, src) in enumerate(cells) if src.startswith("## Exercises"))
    assert card < box < exercises


@pytest.mark.parametrize("stem", [p.stem for p in sorted((ROOT / "notebooks").glob("0[2-7]_*.ipynb"))])
def test_notebooks_02_to_07_keep_one_appendix_just_before_the_takeaways(stem):
    # (the 2,000-word limit outside the Appendix: tests/test_course_structure.py)
    appendix = [i for i, (kind, src) in enumerate(_cells(stem)) if kind == "markdown" and src.startswith("## Appendix")]
    if appendix:
        takeaways = next(i for i, (kind, src) in enumerate(_cells(stem)) if src.startswith("## Takeaways"))
        assert len(appendix) == 1 and appendix[0] < takeaways, "one Appendix, just before the Takeaways"


# The sentences of notebooks 03-08 (and of walkthroughs, named by path) that state a rung's verdict in words, each
# in its own scope: "the studies'" means every study that has measured the rung (so a best-recipe run that crosses
# the threshold fails this test and the sentence must be rewritten); "the original-schedule study" means
# results/study/cpu only.
VERDICT_SENTENCES = [
    ("03_group_norm", "in the original-schedule study it made FID worse, at equal steps and at equal compute",
     "groupnorm", ("cpu",), ("equal_steps", "equal_compute"), "worse"),
    ("03_group_norm", "at equal compute; under the best recipe, so far within noise",
     "groupnorm", ("cpu-best-recipe",), ("equal_steps", "equal_compute"), "within noise"),
    ("04_gelu", "in the original-schedule study GELU's effect on FID was within noise",
     "gelu", ("cpu",), ("equal_steps", "equal_compute"), "within noise"),
    ("04_gelu", "(within noise in the original-schedule study;",
     "gelu", ("cpu",), ("equal_steps", "equal_compute"), "within noise"),
    ("04_gelu", "under the best recipe, one seed so far, within noise > at equal steps",
     "gelu", ("cpu-best-recipe",), ("equal_steps",), "within noise"),
    ("04_gelu", "within noise > at equal steps and worse at equal compute",
     "gelu", ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("04_gelu", "under the best recipe, one seed so far, it was worse at equal compute",
     "gelu", ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("walkthroughs/04_gelu.md", "original-schedule study's verdict: **within noise** in both views",
     "gelu", ("cpu",), ("equal_steps", "equal_compute"), "within noise"),
    ("walkthroughs/04_gelu.md", "(under the best recipe, one seed so far, worse at equal compute)",
     "gelu", ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("walkthroughs/02_checkerboard_artifacts.md", "FID is within noise (original schedule)", "upsample", ("cpu",),
     ("equal_steps", "equal_compute"), "within noise"),
    ("walkthroughs/02_checkerboard_artifacts.md", "or worse (best recipe, one seed)", "upsample",
     ("cpu-best-recipe",), ("equal_steps", "equal_compute"), "worse"),
    ("walkthroughs/02_checkerboard_artifacts.md", "In the original-schedule study (the figure's) the FID change is "
     "within noise both at equal steps and at equal compute", "upsample", ("cpu",), ("equal_steps", "equal_compute"),
     "within noise"),
    ("walkthroughs/02_checkerboard_artifacts.md", "the fix is **worse** in both views", "upsample",
     ("cpu-best-recipe",), ("equal_steps", "equal_compute"), "worse"),
    ("05_rearrange_pooling", "at equal compute it was worse in the original-schedule study",
     "rearrange", ("cpu",), ("equal_compute",), "worse"),
    ("05_rearrange_pooling", "under the best recipe, one seed so far, better",
     "rearrange", ("cpu-best-recipe",), ("equal_compute",), "better"),
    ("05_rearrange_pooling", "per step its effect was within noise in both",
     "rearrange", ("cpu", "cpu-best-recipe"), ("equal_steps",), "within noise"),
    ("walkthroughs/05_rearrange_pooling.md", "within noise per step in both studies",
     "rearrange", ("cpu", "cpu-best-recipe"), ("equal_steps",), "within noise"),
    ("walkthroughs/05_rearrange_pooling.md", "worse in the original-schedule study, better under the best recipe",
     "rearrange", ("cpu",), ("equal_compute",), "worse"),
    ("walkthroughs/05_rearrange_pooling.md", "better under the best recipe (one seed so far)",
     "rearrange", ("cpu-best-recipe",), ("equal_compute",), "better"),
    ("walkthroughs/05_rearrange_pooling.md", "(under the best recipe, one seed so far, better at equal compute)",
     "rearrange", ("cpu-best-recipe",), ("equal_compute",), "better"),
    ("walkthroughs/05_rearrange_pooling.md", "it ends **better** at equal compute",
     "rearrange", ("cpu-best-recipe",), ("equal_compute",), "better"),
    ("05_rearrange_pooling", "per step the change > is within noise even in the studies' far longer runs",
     "rearrange", ("cpu", "cpu-best-recipe"), ("equal_steps",), "within noise"),
    ("06_sinusoidal_time_embeddings", "(within noise in the > original-schedule study;",
     "sinusoidal", ("cpu",), ("equal_steps", "equal_compute"), "within noise"),
    ("06_sinusoidal_time_embeddings", "under the best recipe, one seed so far, within noise at equal steps",
     "sinusoidal", ("cpu-best-recipe",), ("equal_steps",), "within noise"),
    ("06_sinusoidal_time_embeddings", "within noise at equal steps and worse at equal > compute",
     "sinusoidal", ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("06_sinusoidal_time_embeddings", "in the original-schedule study its effect on FID was within noise; under",
     "sinusoidal", ("cpu",), ("equal_steps", "equal_compute"), "within noise"),
    ("06_sinusoidal_time_embeddings", "under the best recipe, one seed so far, it was worse at equal compute",
     "sinusoidal", ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("walkthroughs/06_sinusoidal_time_embeddings.md", "Measure before you believe: within noise in the original-schedule",
     "sinusoidal", ("cpu",), ("equal_steps", "equal_compute"), "within noise"),
    ("walkthroughs/06_sinusoidal_time_embeddings.md", "worse at equal compute under the best recipe (one seed so far)",
     "sinusoidal", ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("walkthroughs/06_sinusoidal_time_embeddings.md", "original-schedule study within noise at equal steps and at equal",
     "sinusoidal", ("cpu",), ("equal_steps", "equal_compute"), "within noise"),
    ("walkthroughs/06_sinusoidal_time_embeddings.md", "one seed so far, within noise at equal steps and **worse** at",
     "sinusoidal", ("cpu-best-recipe",), ("equal_steps",), "within noise"),
    ("walkthroughs/06_sinusoidal_time_embeddings.md", "within noise at equal steps and **worse** at equal compute",
     "sinusoidal", ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("walkthroughs/06_sinusoidal_time_embeddings.md", "does the embedding lower FID in the original-schedule study? "
     "**Answer:** no, the change is within noise", "sinusoidal", ("cpu",), ("equal_steps", "equal_compute"),
     "within noise"),
    ("docs/results.md", "the upsampler, GELU and the sinusoidal embedding are **worse**",
     ("upsample", "gelu", "sinusoidal"), ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("docs/results.md", "width, GroupNorm and the residual first block are within noise",
     ("wide", "groupnorm", "residual"), ("cpu-best-recipe",), ("equal_compute",), "within noise"),
    ("docs/results.md", "rearrange pooling and, by far the largest, the extra skip", ("rearrange", "optimized"),
     ("cpu-best-recipe",), ("equal_compute",), "better"),
    ("docs/results.md", "In the first study too the extra skip was the ladder's largest gain, and the residual first block was worse there", "optimized",
     ("cpu",), ("equal_compute",), "better"),
    ("docs/results.md", "In the first study too the extra skip was the ladder's largest gain, and the residual first block was worse there", "residual",
     ("cpu",), ("equal_compute",), "worse"),
    ("07_residual_blocks", "In the original-schedule study it was worse in both views, on one seed",
     "residual", ("cpu",), ("equal_steps", "equal_compute"), "worse"),
    ("07_residual_blocks", "under the best recipe, one seed so far, it was within noise in both views",
     "residual", ("cpu-best-recipe",), ("equal_steps", "equal_compute"), "within noise"),
    ("07_residual_blocks", "The extra skip was better in both studies and both views",
     "optimized", ("cpu", "cpu-best-recipe"), ("equal_steps", "equal_compute"), "better"),
    ("walkthroughs/07_residual_blocks.md", "the extra skip clearly better in both studies; the residual first block "
     "worse in the original-schedule study", "residual", ("cpu",), ("equal_steps", "equal_compute"), "worse"),
    ("walkthroughs/07_residual_blocks.md", "the extra skip clearly better in both studies", "optimized",
     ("cpu", "cpu-best-recipe"), ("equal_steps", "equal_compute"), "better"),
    ("walkthroughs/07_residual_blocks.md", "within noise under the best recipe (one seed so far)", "residual",
     ("cpu-best-recipe",), ("equal_steps", "equal_compute"), "within noise"),
    ("walkthroughs/07_residual_blocks.md", "In the original-schedule study the residual first block is **worse** in "
     "both views", "residual", ("cpu",), ("equal_steps", "equal_compute"), "worse"),
    ("walkthroughs/07_residual_blocks.md", "under the best recipe (one seed so far) the block is within noise in both "
     "views", "residual", ("cpu-best-recipe",), ("equal_steps", "equal_compute"), "within noise"),
    ("walkthroughs/07_residual_blocks.md", "and the extra skip again clearly **better**", "optimized",
     ("cpu", "cpu-best-recipe"), ("equal_steps", "equal_compute"), "better"),
    ("08_putting_it_together", "**The extra skip**, the largest gain in both studies", "optimized",
     ("cpu", "cpu-best-recipe"), ("equal_compute",), "better"),
    ("08_putting_it_together", "(there GroupNorm, rearrange pooling and the residual block were worse)",
     ("groupnorm", "rearrange", "residual"), ("cpu",), ("equal_compute",), "worse"),
    ("08_putting_it_together", "Under the best recipe rearrange pooling gains too", "rearrange",
     ("cpu-best-recipe",), ("equal_compute",), "better"),
    ("walkthroughs/08_putting_it_together.md", "The extra skip, the largest gain in both studies", "optimized",
     ("cpu", "cpu-best-recipe"), ("equal_compute",), "better"),
    ("walkthroughs/08_putting_it_together.md", "(there GroupNorm, rearrange pooling and the residual block were worse)",
     ("groupnorm", "rearrange", "residual"), ("cpu",), ("equal_compute",), "worse"),
    ("walkthroughs/08_putting_it_together.md", "under the best recipe rearrange pooling gains too", "rearrange",
     ("cpu-best-recipe",), ("equal_compute",), "better"),
    ("walkthroughs/02_checkerboard_artifacts.md", "FID got **worse** by", "no_upsampler", ("cpu-best-recipe",),
     ("equal_compute",), "worse"),
    ("docs/results.md", "removing the upsampler fix from `optimized` makes FID **worse**", "no_upsampler",
     ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("docs/results.md", "although adding it to `baseline` made FID worse too", "upsample", ("cpu-best-recipe",),
     ("equal_compute",), "worse"),
    ("docs/results.md", "steps at equal compute) makes FID **better** by", "no_width", ("cpu-best-recipe",),
     ("equal_compute",), "better"),
    ("docs/results.md", "while per step it is worse (at 3,000", "no_width",
     ("cpu-best-recipe",), ("equal_steps",), "worse"),
    ("walkthroughs/03_group_norm.md", "in the original-schedule study clearly worse, at equal steps and at equal "
     "compute", "groupnorm", ("cpu",), ("equal_steps", "equal_compute"), "worse"),
    ("walkthroughs/03_group_norm.md", "under the best recipe, one seed so far, within noise in both views",
     "groupnorm", ("cpu-best-recipe",), ("equal_steps", "equal_compute"), "within noise"),
    ("walkthroughs/03_group_norm.md", "(`no_groupnorm`) is within noise too", "no_groupnorm", ("cpu-best-recipe",),
     ("equal_steps", "equal_compute"), "within noise"),
    ("docs/results.md", "For GroupNorm they agree: removing it", "no_groupnorm", ("cpu-best-recipe",),
     ("equal_compute",), "within noise"),
    ("docs/results.md", "within noise, as adding it did", "groupnorm", ("cpu-best-recipe",), ("equal_compute",),
     "within noise"),
    ("docs/results.md", "GELU splits like the upsampler: adding it on the ladder made FID worse", "gelu",
     ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("docs/results.md", "makes FID **worse** as well, by", "no_gelu", ("cpu-best-recipe",),
     ("equal_steps", "equal_compute"), "worse"),
    ("walkthroughs/04_gelu.md", "In the original-schedule study (the figure's) GELU's FID changes are favourable in "
     "direction at equal steps and at equal compute, and both are **within noise**", "gelu", ("cpu",),
     ("equal_steps", "equal_compute"), "within noise"),
    ("walkthroughs/04_gelu.md", "adding GELU is within noise at equal steps", "gelu", ("cpu-best-recipe",),
     ("equal_steps",), "within noise"),
    ("walkthroughs/04_gelu.md", "within noise at equal steps and **worse** at equal compute, yet removing", "gelu",
     ("cpu-best-recipe",), ("equal_compute",), "worse"),
    ("walkthroughs/04_gelu.md", "removing it from the full model (`no_gelu`) is **worse** too", "no_gelu",
     ("cpu-best-recipe",), ("equal_steps", "equal_compute"), "worse"),
    ("08_putting_it_together", "and the full model without width scores lower still", "no_width",
     ("cpu-best-recipe",), ("equal_compute",), "better"),
    ("08_putting_it_together", "but width alone is within noise", "wide", ("cpu-best-recipe",), ("equal_compute",),
     "within noise"),
]


def _rungs(rung):
    """A VERDICT_SENTENCES entry names one rung, or a tuple of rungs when one sentence lists several; a name
    ``no_X`` is a leave-one-out step from ``optimized`` (``reports.leave_one_out_steps``)."""
    return (rung,) if isinstance(rung, str) else rung


@pytest.mark.parametrize("stem, sentence, rung, studies, views, expected", VERDICT_SENTENCES,
                         ids=[f"{Path(s[0]).stem[:2]}-{'+'.join(_rungs(s[2]))}-{len(s[3])}" for s in VERDICT_SENTENCES])
def test_a_verdict_stated_in_words_holds_in_every_study_it_speaks_for(stem, sentence, rung, studies, views, expected):
    from course_utils import reports
    from course_utils.study import compute
    markdown = _prose(stem)
    assert sentence in markdown, f"{stem}: the sentence is gone; update VERDICT_SENTENCES"
    for one in _rungs(rung):
        measured = 0
        for name in studies:
            summary = compute.load_summary(name)
            steps = reports.leave_one_out_steps(summary) if one.startswith("no_") else reports.steps_of_ladder(summary)
            st = next((s for s in steps if s["to"] == one and not s.get("width_part")), None) if summary else None
            for view in views:
                if st is not None and view in st and "verdict" in st[view]:
                    measured += 1
                    assert st[view]["verdict"] == expected, (one, name, view, st[view])
        assert measured >= len(views), one  # a sentence speaks only of views a study has measured


@pytest.mark.parametrize("stem, phrase, rung", [
    ("04_gelu", "under the best recipe, one seed so far", "gelu"),
    ("walkthroughs/04_gelu.md", "under the best recipe, one seed so far", "gelu"),
    ("05_rearrange_pooling", "under the best recipe, one seed so far", "rearrange"),
    ("walkthroughs/05_rearrange_pooling.md", "under the best recipe (one seed so far)", "rearrange"),
    ("walkthroughs/05_rearrange_pooling.md", "under the best recipe, one seed so far", "rearrange"),
    ("walkthroughs/05_rearrange_pooling.md", "on one seed so far", "rearrange"),
    ("walkthroughs/02_checkerboard_artifacts.md", "(best recipe, one seed)", "upsample"),
    ("walkthroughs/02_checkerboard_artifacts.md", "under the best recipe, one seed so far", "upsample"),
    ("06_sinusoidal_time_embeddings", "under the best recipe, one seed so far", "sinusoidal"),
    ("07_residual_blocks", "under the best recipe, one seed so far", "residual"),
    ("08_putting_it_together", "rearrange pooling gains too (one seed)", "rearrange"),
    ("08_putting_it_together", '"no_width")["equal_compute"]["fid"][0]-->, one seed)', "no_width"),
    ("walkthroughs/02_checkerboard_artifacts.md", "(`no_upsampler`, best recipe, one seed so far)", "no_upsampler"),
    ("docs/results.md", "on one seed each, they disagree", "no_upsampler"),
    ("walkthroughs/03_group_norm.md", "under the best recipe, one seed so far", "groupnorm"),
    ("walkthroughs/03_group_norm.md", "under the best recipe, one seed so far", "no_groupnorm"),
    ("walkthroughs/04_gelu.md", "Under the best recipe, one seed so far, adding GELU", "gelu"),
    ("walkthroughs/04_gelu.md", "Under the best recipe, one seed so far, adding GELU", "no_gelu"),
    ("docs/results.md", "(the second table under the verdicts; one seed each)", "no_groupnorm"),
    ("docs/results.md", "(the second table under the verdicts; one seed each)", "no_gelu"),
    ("walkthroughs/08_putting_it_together.md", "rearrange pooling gains too (one seed)", "rearrange"),
    ("walkthroughs/07_residual_blocks.md", "under the best recipe (one seed so far)", "residual"),
    ("walkthroughs/07_residual_blocks.md", "within noise under the best recipe (one seed so far)", "residual"),
    ("walkthroughs/06_sinusoidal_time_embeddings.md", "under the best recipe (one seed so far)", "sinusoidal"),
    ("walkthroughs/06_sinusoidal_time_embeddings.md", "under the best recipe, one seed so far", "sinusoidal"),
], ids=lambda v: Path(v).stem[:12] if isinstance(v, str) else v)
def test_a_best_recipe_verdict_said_to_rest_on_one_seed_does(stem, phrase, rung):
    """'one seed so far' stays true until the extra seeds land; then the sentence must be rewritten."""
    from course_utils.study import compute
    markdown = _prose(stem)
    assert phrase in markdown, f"{stem}: the phrase is gone; update this test's cases"
    row = next(r for r in compute.load_summary("cpu-best-recipe")["rows"] if r["preset"] == rung)
    assert [len(row[v]["fids"]) for v in ("equal_steps", "equal_compute") if v in row] in ([1], [1, 1]), row["seeds"]


def test_results_says_the_best_recipe_ladder_gains_only_in_its_last_step_while_that_holds():
    """docs/results.md: the rungs up to `residual` leave it above `baseline` at equal compute, so the whole ladder's
    gain lies in its last step, the extra skip. True of the summary, or the sentence must go."""
    from course_utils.study import compute
    text = _prose("docs/results.md")
    assert "above `baseline`. So on this ladder the gain at equal compute comes from its last step, the extra skip" \
        in text, "docs/results.md: the sentence is gone; update this test"
    rows = {r["preset"]: r for r in compute.load_summary("cpu-best-recipe")["rows"]}
    fid = {p: rows[p]["equal_compute"]["fid"][0] for p in ("baseline", "residual", "optimized")}
    assert fid["residual"] > fid["baseline"] > fid["optimized"], fid


def test_notebook_and_walkthrough_08_call_the_extra_skip_the_largest_gain_in_both_studies_and_the_only_one_in_the_first():
    """Section 7's row 'Which idea pays for itself': the verdict entries hold each named verdict; this holds the
    superlatives, at equal compute, on the ladder's own steps (width parts aside)."""
    from course_utils import reports
    from course_utils.study import compute
    for stem in ("08_putting_it_together", "walkthroughs/08_putting_it_together.md"):
        assert "The extra skip, the largest gain in both studies and the only one in the first" in \
            _prose(stem).replace("**", ""), f"{stem}: the sentence is gone; update this test"
    for name in ("cpu", "cpu-best-recipe"):
        steps = [s for s in reports.steps_of_ladder(compute.load_summary(name)) if not s["width_part"]]
        largest = min(steps, key=lambda s: s["equal_compute"]["change"])
        assert largest["to"] == "optimized", (name, largest["to"])
        if name == "cpu":
            assert [s["to"] for s in steps if s["equal_compute"]["verdict"] == "better"] == ["optimized"]


def test_results_calls_no_width_the_lowest_fid_of_the_best_recipe_study_and_too_slow_for_best_cpu_while_it_is():
    from course_utils.study import best, compute
    text = _prose("docs/results.md")
    assert "the lowest FID of this study so far, on one seed" in text and "so it does not replace it" in text, \
        "docs/results.md: the sentence is gone; update this test"
    rows = compute.load_summary("cpu-best-recipe")["rows"]
    ec = {r["preset"]: r["equal_compute"] for r in rows if "equal_compute" in r}
    assert min(ec, key=lambda p: ec[p]["fid"][0]) == "no_width" and len(ec["no_width"]["fids"]) == 1
    assert ec["no_width"]["idle_minutes"] > best.MAX_MINUTES
