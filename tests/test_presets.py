"""Every preset: its exact parameter count, its place on the ladder, shapes, and the blocks it is built from."""
import pytest
import torch
from torch import nn

import course_utils as cu
from course_utils.model import blocks
from course_utils.model.unet import ABLATED, BASELINE, IDEAS, LADDER, OPTIMIZED, PRESETS, WIDTH_STEPS

PARAMS = {
    "baseline": 240_385, "upsample": 214_785, "wide": 1_166_657, "groupnorm": 1_166_657, "gelu": 1_166_657,
    "rearrange": 1_904_513, "sinusoidal": 1_905_857, "residual": 1_942_913, "optimized": 1_979_777,
    "no_upsampler": 2_102_657, "no_width": 404_721, "no_groupnorm": 1_979_777, "no_gelu": 1_979_777,
    "no_rearrange": 1_241_921, "no_sinusoidal": 1_978_433, "no_residual": 1_942_721, "no_extra_skip": 1_942_913,
    "wide_channels": 944_577, "wide_upconvs": 1_166_913, "optimized_cond": 2_002_561,
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_param_count_and_shape(name):
    m = cu.build(name)
    assert cu.count_params(m) == PARAMS[name]
    out = m(torch.randn(2, 1, 16, 16), torch.tensor([0, 149]))
    assert out.shape == (2, 1, 16, 16) and torch.isfinite(out).all()


def test_every_preset_is_listed():
    assert set(PARAMS) == set(PRESETS)
    assert LADDER[0] == "baseline" and LADDER[-1] == "optimized" and len(LADDER) >= 7


def test_ladder_changes_one_idea_per_rung():
    for prev, cur in zip(LADDER, LADDER[1:]):
        a, b = PRESETS[prev].config.to_dict(), PRESETS[cur].config.to_dict()
        changed = {k for k in a if a[k] != b[k]}
        assert changed == set(IDEAS[PRESETS[cur].idea]), (prev, cur, changed)
    assert PRESETS["baseline"].config == BASELINE and PRESETS["optimized"].config == OPTIMIZED


def test_width_side_study_splits_width_into_its_three_changes():
    assert WIDTH_STEPS[0] == "upsample" and WIDTH_STEPS[-1] == "wide" and len(WIDTH_STEPS) == 4
    changes = []
    for prev, cur in zip(WIDTH_STEPS, WIDTH_STEPS[1:]):
        a, b = PRESETS[prev].config.to_dict(), PRESETS[cur].config.to_dict()
        changes += [k for k in a if a[k] != b[k]]
    assert changes == ["channels", "up_convs", "norm_after_up"] and set(changes) == set(IDEAS["width"])
    assert set(ABLATED) | set(WIDTH_STEPS) | {"optimized_cond"} == set(PRESETS)
    assert not set(ABLATED) & set(WIDTH_STEPS[1:-1])


def test_leave_one_out_reverts_exactly_one_idea():
    for idea, fields in IDEAS.items():
        cfg = PRESETS[f"no_{idea}"].config
        for f in fields:
            assert getattr(cfg, f) == getattr(BASELINE, f)
        others = {k for k in OPTIMIZED.to_dict() if k not in fields and k not in ("groups", "groups_first")}
        assert all(getattr(cfg, k) == getattr(OPTIMIZED, k) for k in others)


def test_baseline_layers_match_the_original():
    m = cu.build("baseline")
    assert isinstance(m.down0[1], nn.BatchNorm2d) and isinstance(m.down0[2], nn.ReLU)
    assert isinstance(m.down1[2], nn.MaxPool2d)
    up = m.up1.model[0]
    assert isinstance(up, nn.ConvTranspose2d) and (up.kernel_size, up.stride, up.padding, up.output_padding) == \
        ((3, 3), (2, 2), (1, 1), (1, 1))
    assert [layer.out_features for layer in m.dense_emb if isinstance(layer, nn.Linear)] == [32, 32, 1024]
    assert m.t_emb1[0].in_features == 1


def test_optimized_layers_match_the_original():
    m = cu.build("optimized")
    assert isinstance(m.down0, blocks.ResidualConvBlock)
    assert m.down0.conv1[1].num_groups == 8 and m.down1[0][1].num_groups == 32
    assert isinstance(m.down1[2], blocks.RearrangePool) and m.down1[2].conv[0].in_channels == 256
    up = m.up1.model[0]
    assert (up.kernel_size, up.stride) == ((2, 2), (2, 2)) and len(m.up1.model) == 5
    assert [layer.out_features for layer in m.dense_emb if isinstance(layer, nn.Linear)] == [64, 64, 2048]
    assert isinstance(m.time_features, blocks.SinusoidalEmbedding) and m.t_emb1[0].in_features == 8
    assert m.out[0].in_channels == 128 and m.out[1].num_groups == 8


def test_groupnorm_counts_groups_not_channels():
    gn = blocks.make_norm("group", 64, 32)
    assert gn.num_groups == 32  # 32 groups of 2 channels each
    x = torch.arange(64.0).view(1, 64, 1, 1).expand(1, 64, 2, 2).contiguous()
    y = gn(x)
    # channels 0 and 1 form group 0: values 0 and 1 normalize to -1 and +1
    assert torch.allclose(y[0, :2, 0, 0], torch.tensor([-1.0, 1.0]), atol=1e-3)


@pytest.mark.parametrize("kind, expected", [("convT3", (8, 8)), ("convT2", (8, 8)), ("resize", (8, 8))])
def test_upsamplers_double_the_resolution(kind, expected):
    up = blocks.make_upsampler(kind, 4, 2)
    assert up(torch.randn(1, 4, 4, 4)).shape[-2:] == expected


def test_rearrange_pool_is_pixel_unshuffle_then_conv():
    pool = blocks.RearrangePool(3, "group", 3, "gelu")
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(pool.rearrange(x), nn.PixelUnshuffle(2)(x))
    assert pool(x).shape == (2, 3, 4, 4)


def test_sinusoidal_embedding_has_no_parameters():
    e = blocks.SinusoidalEmbedding(8)
    assert sum(p.numel() for p in e.parameters()) == 0
    out = e(torch.tensor([0.0, 0.5]))
    assert out.shape == (2, 8) and torch.allclose(out[0], torch.tensor([0.0] * 4 + [1.0] * 4))


def test_residual_block_is_x1_plus_f_x1():
    b = blocks.ResidualConvBlock(1, 8, "group", 8, "gelu")
    x = torch.randn(2, 1, 6, 6)
    x1 = b.conv1(x)
    assert torch.allclose(b(x), x1 + b.conv2(x1))


@pytest.fixture
def my_blocks():
    names = [("act", "my_silu"), ("norm", "my_layer_norm"), ("up", "my_bilinear"), ("down", "my_avgpool")]
    yield names
    for kind, name in names:
        blocks.unregister_block(kind, name)


def test_a_students_own_blocks_plug_in_by_name(my_blocks, tmp_path):
    from course_utils.checkpoints import load_checkpoint, save_checkpoint
    blocks.register_block("act", "my_silu", nn.SiLU)
    blocks.register_block("norm", "my_layer_norm", lambda channels, groups: nn.GroupNorm(1, channels))
    blocks.register_block("up", "my_bilinear", lambda i, o: nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"),
                                                                           nn.Conv2d(i, o, 3, padding=1)))
    blocks.register_block("down", "my_avgpool", lambda channels: nn.AvgPool2d(2))
    m = cu.build("wide", act="my_silu", norm="my_layer_norm", up="my_bilinear", down="my_avgpool")
    assert sum(isinstance(x, nn.AvgPool2d) for x in m.modules()) == 2
    relus = {n.split(".")[0] for n, x in m.named_modules() if isinstance(x, nn.ReLU)}
    assert any(isinstance(x, nn.SiLU) for x in m.modules()) and relus == {"dense_emb", "out"}  # as in the original
    assert all(g.num_groups == 1 for g in m.modules() if isinstance(g, nn.GroupNorm))
    assert m(torch.randn(2, 1, 16, 16), torch.tensor([0, 149])).shape == (2, 1, 16, 16)
    path = save_checkpoint(tmp_path / "mine.safetensors", m, "wide", step=0)  # the config stores the names
    again, _ = load_checkpoint(path)
    assert again.config.act == "my_silu"
    blocks.unregister_block("act", "my_silu")
    with pytest.raises(cu.CourseError, match="act='my_silu'.*register_block"):
        load_checkpoint(path)


@pytest.mark.parametrize("kind, name, factory, match", [
    ("act", "relu", nn.ReLU, "new identifier"),
    ("pool", "x", nn.ReLU, "choose one of"),
    ("act", "not callable", 3, "new identifier"),
    ("act", "three", 3, "must be callable"),
    ("up", "same_size", lambda i, o: nn.Conv2d(i, o, 3, padding=1), r"shape \(2, 3, 8, 8\)"),
    ("norm", "broken", lambda c, g: nn.GroupNorm(3, c), "failed on a"),
    ("down", "no_halving", lambda c: nn.Identity(), r"shape \(2, 8, 2, 2\)"),
])
def test_registering_a_wrong_block_says_what_is_wrong(kind, name, factory, match):
    with pytest.raises(cu.CourseError, match=match):
        blocks.register_block(kind, name, factory)
    assert kind == "pool" or name not in blocks.known(kind) or name == "relu"


class MyGELU(nn.Module):
    """A student's activation, written by hand."""

    def forward(self, x):
        return 0.5 * x * (1 + torch.erf(x / 2 ** 0.5))


def test_a_factory_is_swapped_in_directly_and_silu_is_built_in():
    from course_utils.runs import as_variant
    try:
        m = cu.build("wide", act=MyGELU)  # a factory, not a name: registered under its own name
        assert m.config.act == "MyGELU" and any(isinstance(x, MyGELU) for x in m.modules())
        label, preset, overrides, model = as_variant(m)
        assert (label, preset, overrides) == ("wide+act=MyGELU", "wide", {"act": "MyGELU"}) and model is m
        assert blocks.uses_registered(m.config)
        relu = cu.build("wide", act=lambda: nn.ReLU())  # a lambda has no usable name
        assert relu.config.act == "my_act"
    finally:
        blocks.unregister_block("act", "MyGELU")
        blocks.unregister_block("act", "my_act")
    silu = cu.build("optimized", act="silu")
    assert any(isinstance(x, nn.SiLU) for x in silu.modules())
    # a built-in config is spelled as the nearest preset and its changed fields, and is not trained as given
    assert as_variant(silu) == ("optimized+act=silu", "optimized", {"act": "silu"}, None)
    assert as_variant(silu.config)[:3] == ("optimized+act=silu", "optimized", {"act": "silu"})
    assert as_variant(cu.build("baseline").config)[:3] == ("baseline", "baseline", {})
    assert as_variant(("wide", {"act": "gelu"}))[0] == "wide+act=gelu"
    with pytest.raises(cu.CourseError, match="not a course U-Net"):
        as_variant(nn.Linear(2, 2))
    with pytest.raises(cu.CourseError, match="expected a preset name"):
        as_variant(3)


@pytest.mark.slow
def test_compare_trains_a_built_model_with_a_students_block_beside_a_preset(tmp_path, monkeypatch):
    from course_utils import notebook as nb
    from course_utils.train import Budget
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path))
    budget = Budget("ci", 2, 2, 4, 1, "test")
    try:
        out = nb.compare(["baseline", cu.build("baseline", act=MyGELU), cu.build("baseline", act="silu")],
                         budget, show=False, n=4)
        assert set(out) == {"real", "baseline", "baseline+act=MyGELU", "baseline+act=silu"}
        assert all(out[k]["steps"] == 2 for k in out if k != "real")
        assert any(isinstance(x, MyGELU) for x in out["baseline+act=MyGELU"]["model"].modules())
        with pytest.raises(cu.CourseError, match="twice"):
            nb.compare(["baseline", cu.build("baseline")], budget, show=False)
        # steps= overrides the budget's steps for every compared network alike
        short = nb.compare(["baseline", ("baseline", {"act": "silu"})], Budget("ci", 3, 2, 4, 1, "test"),
                           show=False, n=4, steps=1)
        assert [short[k]["steps"] for k in short if k != "real"] == [1, 1]
        with pytest.raises(cu.CourseError, match="whole number"):
            nb.compare(["baseline"], budget, show=False, steps=0)
    finally:
        blocks.unregister_block("act", "MyGELU")
