"""The U-Net config as a schema: a :class:`DiffusionConfig` held by :class:`UNetConfig`, configs compared as
objects, old files read with their missing keys filled from the defaults; the ladder as a list of ideas, with the
original course's optimized model kept exact; and the study's run keys unchanged by all of it."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from course_utils import diffusion
from course_utils.checkpoints import load_checkpoint, read_checkpoint
from course_utils.errors import CheckpointError, CourseError
from course_utils.model import unet
from course_utils.model.unet import OPTIMIZED, PRESETS, UNetConfig, build, count_params
from course_utils.study import compute
from course_utils.study.runspec import Recipe, RunSpec, config_delta

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted(p for p in (ROOT / "checkpoints").glob("*.safetensors") if p.stem != "classifier")


def stored_configs():
    """Every config and run spec stored in the shipped results and manifests: (file, what, the dict)."""
    def walk(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("config", "spec") and isinstance(v, dict):
                    yield k, v
                yield from walk(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from walk(v)
    files = sorted((ROOT / "results").rglob("*.json")) + sorted((ROOT / "checkpoints").glob("*.json"))
    return [(f.relative_to(ROOT), k, v) for f in files for k, v in walk(json.loads(f.read_text()))]


# --- compatibility ---------------------------------------------------------------------------------------

def test_run_keys_are_the_ones_the_running_study_uses():
    """Pinned before DiffusionConfig existed: the study's run folders and cached records are found by these."""
    best = RunSpec.of("optimized", 3000, 0, Recipe(lr_schedule="cosine"), {"zero_terminal_snr": True, "prediction": "v"})
    assert best.key() == "a72cdd17e2c2"
    assert config_delta(best.config) == {
        "channels": [64, 64, 128], "up_convs": 4, "norm_after_up": False, "norm": "group", "act": "gelu",
        "down": "rearrange", "up": "convT2", "time_embed": "sinusoidal", "residual_first": True, "extra_skip": True,
        "zero_terminal_snr": True, "prediction": "v"}
    base = RunSpec.of("baseline", 37239, 0, Recipe(lr_schedule="cosine"), {"zero_terminal_snr": True, "prediction": "v"})
    assert base.key() == "0574c2ad122b" and config_delta(base.config) == {"zero_terminal_snr": True, "prediction": "v"}
    assert RunSpec.of("baseline", 37239, 0).key() == "788b790c4aaa"
    assert config_delta(UNetConfig().replace(T=50, beta_end=0.05, time_scale="t")) == {
        "T": 50, "beta_end": 0.05, "time_scale": "t"}
    for spec in (best, base):  # the stored flat delta reads back as the same run
        assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_every_shipped_checkpoint_reads_writes_and_loads_as_before():
    for path in CHECKPOINTS:
        _, header = read_checkpoint(path)
        stored = header["config"]
        cfg = UNetConfig.from_dict(stored)
        assert cfg.to_dict() == stored and list(cfg.to_dict()) == list(stored), path.name  # byte-identical again
        model, _ = load_checkpoint(path)  # built from the file's own config
        assert model.config == cfg
        if path.stem in unet.LADDER:
            assert cfg == PRESETS[path.stem].config, path.name
    assert UNetConfig.from_dict(read_checkpoint(ROOT / "checkpoints" / "best-cpu.safetensors")[1]["config"]).diffusion \
        == diffusion.DiffusionConfig(zero_terminal_snr=True, prediction="v")


def test_every_stored_config_and_run_spec_reads_back():
    found = stored_configs()
    assert sum(k == "config" for _, k, _ in found) >= 30 and sum(k == "spec" for _, k, _ in found) >= 10
    for f, kind, d in found:
        if kind == "spec":
            spec = RunSpec.from_dict(d)
            assert spec.to_dict() == d, f  # the same flat delta, so the same key
        else:
            cfg = UNetConfig.from_dict(d)
            cfg.validate()
            if set(unet.FIRST_FORMAT) <= set(d):  # a whole config: written back exactly
                assert cfg.to_dict() == d, f
            else:  # some fields (a delta, or the overrides a study used): each read as stored
                flat = cfg.flat()
                assert all(flat[k] == (tuple(v) if isinstance(v, list) else v) for k, v in d.items()), f


# --- the schema ------------------------------------------------------------------------------------------

def test_the_diffusion_settings_live_in_one_dataclass():
    cfg = OPTIMIZED.replace(schedule="cosine", zero_terminal_snr=True, prediction="v", T=100)
    assert cfg.diffusion == diffusion.DiffusionConfig("cosine", True, "v", 100)
    assert (cfg.schedule, cfg.zero_terminal_snr, cfg.prediction, cfg.T) == ("cosine", True, "v", 100)
    assert "diffusion" in {f.name for f in dataclasses.fields(UNetConfig)}
    assert not {"schedule", "prediction", "T"} & {f.name for f in dataclasses.fields(UNetConfig)}
    # the names are defined once, in course_utils.diffusion
    assert not hasattr(unet, "SCHEDULES") and not hasattr(unet, "PREDICTIONS")
    assert not hasattr(unet, "OMITTED_AT_DEFAULT") and not hasattr(unet, "DIFFUSION_DEFAULTS")
    assert build("baseline", schedule="cosine", prediction="v").config.diffusion.changes() == {
        "schedule": "cosine", "prediction": "v"}
    same = cfg.replace(diffusion=diffusion.DiffusionConfig("cosine", True, "v", 100))
    assert same == cfg and hash(same) == hash(cfg)


def test_flat_and_nested_forms_read_the_same():
    flat = OPTIMIZED.replace(prediction="v", zero_terminal_snr=True).to_dict()
    assert flat["prediction"] == "v" and "diffusion" not in flat and "schedule" not in flat
    nested = {k: v for k, v in flat.items() if k not in unet.DIFFUSION_FIELDS}
    nested["diffusion"] = {"prediction": "v", "zero_terminal_snr": True, "T": 150}
    assert UNetConfig.from_dict(nested) == UNetConfig.from_dict(flat) == OPTIMIZED.replace(prediction="v",
                                                                                         zero_terminal_snr=True)
    assert UNetConfig.from_dict({}) == UNetConfig()  # every missing key: its default
    assert UNetConfig.from_dict({"channels": [64, 64, 128]}).channels == (64, 64, 128)


def test_a_later_field_at_its_default_leaves_the_stored_form_alone():
    d = UNetConfig().to_dict()
    assert list(d) == list(unet.FIRST_FORMAT)
    assert UNetConfig().replace(time_scale="t", beta_end=0.05).to_dict() == {**d, "beta_end": 0.05, "time_scale": "t"}


@pytest.mark.parametrize("bad, match", [
    ({"chanels": [1, 2, 3]}, r"unknown U-Net config fields \['chanels'\]; known fields: .*'channels'"),
    ({"diffusion": {"sheddule": "cosine"}}, r"unknown U-Net config fields \['sheddule'\]"),
    ({"prediction": "x0"}, r"prediction='x0'; choose one of \('eps', 'v'\)"),
    ({"zero_terminal_snr": True}, r"zero_terminal_snr=True needs prediction='v'.*Fix: prediction='v'"),
    ({"T": 0}, r"T=0 must be a whole number >= 1"),
])
def test_bad_stored_configs_name_the_field(bad, match):
    with pytest.raises(CourseError, match=match):
        UNetConfig.from_dict(bad).validate()


def test_bad_replacements_are_clear():
    with pytest.raises(CourseError, match=r"unknown U-Net config fields \['shedule'\]"):
        OPTIMIZED.replace(shedule="cosine")
    with pytest.raises(CourseError, match="diffusion must be a DiffusionConfig"):
        OPTIMIZED.replace(diffusion={"schedule": "cosine"})
    with pytest.raises(CourseError, match="schedule='cos'"):
        build("baseline", schedule="cos")
    with pytest.raises(CourseError, match="a stored U-Net config must be a dict"):
        UNetConfig.from_dict([("channels", [1, 2, 3])])


def test_a_checkpoint_for_another_T_is_refused(tmp_path):
    from course_utils.checkpoints import save_checkpoint
    p = save_checkpoint(tmp_path / "t50.safetensors", build("baseline", T=50), "baseline", step=0)
    assert load_checkpoint(p)[0].config.T == 50
    with pytest.raises(CheckpointError, match=r"diffusion settings \{'T': 50\}, but preset 'baseline' uses "
                                              r"\{'T': 150\}.*model=build\('baseline', T=50\)"):
        load_checkpoint(p, "baseline")


# --- the ladder as a list of ideas -----------------------------------------------------------------------

def test_the_original_optimized_model_is_kept_exact():
    assert PRESETS["optimized"].config == OPTIMIZED and count_params(build("optimized")) == 1_979_777
    assert count_params(build("baseline")) == 240_385
    assert unet.TOP == "optimized" == unet.LADDER[-1]  # today the top of the ladder is the original model
    assert [i.rung for i in unet.LADDER_IDEAS] == unet.LADDER[1:]
    assert unet.registry(unet.LADDER_IDEAS)["PRESETS"] == PRESETS


def test_an_idea_before_the_original_model_is_refused():
    toy = unet.Idea("toy", {"time_dim": 16}, "toy", "toy")
    with pytest.raises(CourseError, match="rung 'optimized' must be the original"):
        unet.build_presets([toy] + unet.LADDER_IDEAS)


def _fresh_compute(monkeypatch):
    """course_utils.study.compute executed again (as another module) under the current registry."""
    spec = importlib.util.spec_from_file_location("toy_compute", compute.__file__)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "toy_compute", mod)
    spec.loader.exec_module(mod)
    return mod


def test_a_new_idea_is_a_field_and_a_ladder_entry(monkeypatch):
    """A toy idea (a wider sinusoidal time embedding: one existing field, so no new block is needed here) added to
    the ladder list in a temporary registry: its rung, its leave-one-out preset and its study rows follow."""
    before = dict(PRESETS)
    plan, plan_best, leave_one_out = list(compute.PLAN), list(compute.PLAN_BEST), list(compute.LEAVE_ONE_OUT)
    toy = unet.Idea("toy", {"time_dim": 16}, "toy", "+ a sinusoidal embedding of dim 16.", "08_putting_it_together")
    ideas = unet.LADDER_IDEAS + [toy]
    monkeypatch.setattr(unet, "LADDER_IDEAS", ideas)
    for name, value in unet.registry(ideas).items():
        monkeypatch.setattr(unet, name, value)
    top = OPTIMIZED.replace(time_dim=16)
    # its rung: the new top of the ladder; the original model stays as it was
    assert unet.LADDER[-1] == unet.TOP == "toy" and unet.get_preset("toy").config == top
    assert unet.get_preset("toy").kind == "ladder" and unet.get_preset("toy").idea == "toy"
    assert unet.get_preset("optimized").config == OPTIMIZED and count_params(build("optimized")) == 1_979_777
    # its leave-one-out preset, and every other one left out of the new top
    assert unet.get_preset("no_toy").config == OPTIMIZED and unet.get_preset("no_toy").kind == "leave-one-out"
    assert unet.get_preset("no_gelu").config == before["no_gelu"].config.replace(time_dim=16)
    assert "no_toy" in unet.ABLATED and "toy" in unet.ABLATED
    assert all(unet.PRESETS[n].config == p.config for n, p in before.items() if p.kind != "leave-one-out")
    # its rows in the study plans
    study = _fresh_compute(monkeypatch)
    assert ("toy", 0) in study.PLAN and ("toy", 0) in study.PLAN_BEST and ("toy", 0, "steps") in study.PLAN_BEST
    assert study.ORDER[-1] == "toy" and "no_gelu" in study.LEAVE_ONE_OUT
    assert "no_toy" not in study.LEAVE_ONE_OUT  # the same network as `optimized`, measured once
    # with a new top, `no_extra_skip` is no longer the `residual` rung's network: it gets rows of its own
    assert study.LEAVE_ONE_OUT == leave_one_out + ["no_extra_skip"]
    assert study.STUDIES["cpu"].spec("toy", 0).config == top
    assert [e for e in study.PLAN if e[0] != "toy"] == plan  # the existing rows stay as they were
    assert [e for e in study.PLAN_BEST if e[0] not in ("toy", "no_extra_skip")] == plan_best


def test_the_study_plan_of_the_shipped_presets_is_unchanged():
    assert compute.PLAN == [("baseline", 0), ("optimized", 0), ("upsample", 0), ("wide", 0), ("groupnorm", 0),
                            ("gelu", 0), ("rearrange", 0), ("sinusoidal", 0), ("residual", 0), ("baseline", 1),
                            ("optimized", 1), ("baseline", 2), ("optimized", 2), ("wide_channels", 0),
                            ("wide_upconvs", 0)]
    assert compute.LEAVE_ONE_OUT == ["no_upsampler", "no_width", "no_groupnorm", "no_gelu", "no_rearrange",
                                     "no_sinusoidal", "no_residual"]
