"""course_utils.lessons.group_norm: BatchNorm's batch dependence, GroupNorm's arguments, valid group counts."""
import pytest
import torch
from torch import nn

import course_utils as cu
from course_utils.lessons import group_norm as N


def _batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(3, 4, 4, generator=g)
    a = torch.randn(5, 3, 4, 4, generator=g) - 1.0   # darker batchmates
    b = torch.randn(5, 3, 4, 4, generator=g) * 2 + 1.0  # brighter, more varied batchmates
    return image, a, b


def test_batchnorm_depends_on_the_batch_only_in_train_mode():
    r = N.batch_dependence(*_batches(), num_groups=3)
    assert r["bn_train"]["max_diff"] > 0.5
    assert r["bn_eval"]["max_diff"] == 0.0
    assert r["gn_train"]["max_diff"] < 1e-6 and r["gn_eval"]["max_diff"] < 1e-6
    # alone in train mode, BatchNorm normalizes the image by its own statistics: mean 0 per channel
    assert abs(r["bn_train"]["mean"]["alone"]) < 1e-6
    means = r["bn_train"]["mean"]
    assert means["with A"] != pytest.approx(means["with B"], abs=0.1)
    text = N.format_batch_dependence(r)
    assert "BatchNorm, train mode" in text and "-0.0000" not in text


def test_batch_dependence_checks_shapes():
    image, a, _ = _batches()
    with pytest.raises(cu.CourseError, match="same C, H, W"):
        N.batch_dependence(image, a, a[:, :2])


@pytest.mark.parametrize("groups,channels,per", [(2, 8, 4), (8, 64, 8), (32, 64, 2), (1, 8, 8)])
def test_groupnorm_first_argument_counts_groups(groups, channels, per):
    d = N.groupnorm_demo(groups, channels)
    assert d["channels_per_group"] == per and len(d["groups"]) == groups
    assert d["groups"][0] == list(range(per)) and d["groups"][-1][-1] == channels - 1
    # channel c holds c, so group g's mean is the mean of its channel numbers
    assert d["group_mean"] == pytest.approx([g * per + (per - 1) / 2 for g in range(groups)])
    assert d["max_diff_manual"] < 1e-5
    # every group holds the same pattern 0..per-1 shifted, so every group normalizes to the same values
    assert d["output"][:per] == pytest.approx(d["output"][-per:], abs=1e-5)


def test_groupnorm_32_64_is_32_groups_of_2():
    d = N.groupnorm_demo(32, 64)
    assert d["output"][:2] == pytest.approx([-1.0, 1.0], abs=1e-4)
    assert d["group_std"][0] == pytest.approx(0.5)
    assert N.format_groupnorm_demo(d).splitlines()[0] == \
        "nn.GroupNorm(num_groups=32, num_channels=64): 32 groups of 2 channels"


def test_groupnorm_demo_invalid_groups():
    with pytest.raises(cu.CourseError, match=r"divisors of 64: \[1, 2, 4, 8, 16, 32, 64\]"):
        N.groupnorm_demo(48, 64)
    with pytest.raises(ValueError):  # nn.GroupNorm's own, less helpful error
        nn.GroupNorm(48, 64)


def test_valid_group_counts():
    assert N.valid_group_counts(64) == [1, 2, 4, 8, 16, 32, 64]
    assert N.valid_group_counts(64, 64, 128) == [1, 2, 4, 8, 16, 32, 64]
    assert N.valid_group_counts(48, 64) == [1, 2, 4, 8, 16]
    assert N.valid_group_counts(16, 32, 64) == [1, 2, 4, 8, 16]
    with pytest.raises(cu.CourseError):
        N.valid_group_counts(0)


def test_try_group_counts_names_the_layer():
    r = N.try_group_counts("groupnorm", range(1, 65))
    assert r["ok"] == [1, 2, 4, 8, 16, 32, 64] and len(r["failed"]) == 57
    assert r["failed"][48].startswith("down1.conv1: GroupNorm(num_groups=48, num_channels=64) is impossible")
    r = N.try_group_counts("groupnorm", [3, 8], field="groups_first")
    assert r["ok"] == [8] and r["failed"][3].startswith("down0")
    with pytest.raises(cu.CourseError):
        N.try_group_counts(field="num_groups")


def test_model_batch_dependence():
    g = torch.Generator().manual_seed(0)
    image, mates = torch.randn(1, 16, 16, generator=g), torch.randn(3, 1, 16, 16, generator=g)
    torch.manual_seed(0)
    bn = cu.build("wide")
    before = bn.down0[1].running_mean.clone()
    r = N.model_batch_dependence(bn, image, mates)
    assert torch.equal(bn.down0[1].running_mean, before)  # the model was not changed
    assert r["train_alone_vs_batch"] > 0.1 and r["eval_alone_vs_batch"] < 1e-5
    torch.manual_seed(0)
    r = N.model_batch_dependence(cu.build("groupnorm"), image, mates)
    assert r["train_alone_vs_batch"] < 1e-4 and r["eval_alone_vs_batch"] < 1e-4 and r["train_vs_eval"] == 0.0
    assert "groupnorm" in N.format_model_batch_dependence({"groupnorm": r})
