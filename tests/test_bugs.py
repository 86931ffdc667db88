"""Three bugs a review found, each with a test that failed on the code before the fix."""
import json

import pytest

from conftest import run_cli

from course_utils.model.unet import PRESETS


def test_variants_lists_every_preset():
    """`variants` printed only the ladder and leave-one-out presets, though its help says every preset."""
    r = run_cli("variants")
    assert r.returncode == 0
    names = {line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ") and line.split()}
    assert set(PRESETS) <= names, sorted(set(PRESETS) - names)
    assert "width:" in r.stdout and "conditional:" in r.stdout


def test_save_every_has_one_default():
    """--save-every defaulted to 100 on the command line but 200 in train() and train_preset()."""
    from course_utils.cli.main import build_parser
    from course_utils.train import SAVE_EVERY, TrainOptions
    sub = build_parser()._subparsers._group_actions[0].choices["train"]
    cli_default = next(a.default for a in sub._actions if "--save-every" in a.option_strings)
    assert TrainOptions().save_every == cli_default == SAVE_EVERY  # train_preset passes it on to train's options


@pytest.mark.slow
def test_ema_check_never_reuses_rows_made_with_other_settings(tmp_path, monkeypatch):
    """ema-check cached rows as runs/step{m}.json with no settings check: --ema 0.99 reused the 0.999 rows."""
    from course_utils.study import recipe
    from course_utils.study.runspec import RunSpec
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path / "runs"))
    trained = []
    real = RunSpec.train_to
    monkeypatch.setattr(RunSpec, "train_to", lambda self, step, *a: trained.append(self.recipe.ema) or real(self, step, *a))
    out = tmp_path / "out"
    kw = dict(steps=(2,), out=out, progress=False, device="cpu")
    first = recipe.ema_check("baseline", ema=0.9, n=4, **kw)
    assert recipe.ema_check("baseline", ema=0.9, n=4, **kw)["rows"] == first["rows"]  # the same settings: reused
    assert trained == [0.9]
    recipe.ema_check("baseline", ema=0.5, n=4, **kw)  # another EMA: another run, and the row made anew
    assert trained == [0.9, 0.5]
    assert json.loads((out / "runs" / "step2.json").read_text())["spec"]["recipe"]["ema"] == 0.5
    more = recipe.ema_check("baseline", ema=0.5, n=6, **kw)  # another sample count: evaluated anew
    assert more["n"] == 6 and json.loads((out / "runs" / "step2.json").read_text())["points"][0]["eval"]["n"] == 6
