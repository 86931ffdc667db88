"""FLOPs per preset (course_utils.model.cost) and their place in ``variants --json``."""
import json
import subprocess
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from course_utils.model.cost import sample_gflops_per_image, train_gflops
from course_utils.model.unet import PRESETS, build


def test_optimized_costs_about_twelve_baselines_per_training_step():
    ratio = train_gflops("optimized") / train_gflops("baseline")
    assert 11.5 < ratio < 13.5, ratio
    assert abs(train_gflops("baseline") - 8.26) < 0.05 and abs(train_gflops("optimized") - 102.48) < 0.05


def test_the_batch_1_count_scales_exactly_to_a_batch():
    model = build("optimized").train()
    x, t = torch.randn(4, 1, 16, 16), torch.randint(0, 150, (4,))
    with FlopCounterMode(display=False) as counter:
        model(x, t).square().mean().backward()
    assert counter.get_total_flops() == round(train_gflops("optimized", batch=4) * 1e9)


def test_sampling_cost_is_one_forward_pass_per_step():
    full, ten = sample_gflops_per_image("baseline"), sample_gflops_per_image("baseline", steps=10)
    assert abs(full / ten - 15) < 1e-9
    assert sample_gflops_per_image("baseline") < train_gflops("baseline") / 128 * 150  # forward only < fwd + bwd


def test_variants_json_has_the_cost_of_every_preset():
    r = subprocess.run([sys.executable, "-m", "course_utils", "variants", "--json"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(rows) == set(PRESETS)
    assert all(row["train_gflops"] > 0 and row["sample_gflops_per_image"] > 0 for row in rows.values())
    assert 11.5 < rows["optimized"]["train_gflops"] / rows["baseline"]["train_gflops"] < 13.5
