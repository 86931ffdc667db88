"""Notebook 06's checked exercises: the sinusoidal embedding's frequencies and the embedding itself.

Reference: :class:`course_utils.model.blocks.SinusoidalEmbedding` (``frequencies()`` and ``forward``).
"""
from __future__ import annotations

import torch

from course_utils.exercises.checking import Case, Hints, checker, run_check, tensor_comparer
from course_utils.model.blocks import SinusoidalEmbedding

ANSWERS = "answers/06_sinusoidal_time_embeddings.md"


@checker(nudge="the frequencies fall geometrically from 1 for the first to exactly one ten-thousandth for the "
               "last, and there are half as many as the embedding's size.",
         formula="f_k = exp(−ln(10000) · k / (half − 1)) for k = 0 … half − 1, half = dim / 2. API: "
                 "torch.arange(half), torch.exp, math.log.")
def check_frequencies(student_fn, hints: Hints) -> bool | None:
    """``frequencies(dim)``: the dim/2 frequencies exp(-ln(10000) k / (dim/2 - 1)), k = 0 .. dim/2 - 1."""
    cases = [Case(f"dim = {d}{note}", {"dim": d}, SinusoidalEmbedding(d).frequencies())
             for d, note in [(8, " (the U-Net's)"), (4, " (the smallest allowed)"), (16, ""), (32, ""), (128, "")]]
    return run_check("frequencies", student_fn, cases, tensor_comparer(1e-5, 1e-7), hints)


@checker(nudge="every input value is multiplied by every frequency; the row holds all the sines first, then all "
               "the cosines, one row per input value.",
         formula="row b = [sin(t_b f_0), …, sin(t_b f_{h−1}), cos(t_b f_0), …, cos(t_b f_{h−1})]. API: "
                 "broadcasting t[:, None] against f[None, :] gives every product; .sin(), .cos(); "
                 "torch.cat(tensors, dim=-1) joins the halves.")
def check_sinusoidal_embedding(student_fn, hints: Hints) -> bool | None:
    """``sinusoidal_embedding(t, dim)``: [sin(t f_k) for all k, then cos(t f_k) for all k], one row per t."""
    specs = [
        ("t/T for steps 0, 1, 75 and 149, dim 8", torch.tensor([0, 1, 75, 149]) / 150, 8),
        ("t = 0 alone: sines 0, cosines 1", torch.zeros(1), 8),
        ("integer steps as floats (angles beyond 2 pi)", torch.tensor([0.0, 1.0, 17.0, 149.0]), 8),
        ("the smallest dim, 4", torch.tensor([0.25, 0.5, 0.99]), 4),
        ("all 150 steps as t/T, dim 32", torch.arange(150) / 150, 32),
        ("negative and large inputs", torch.tensor([-3.0, 1000.0]), 16),
    ]
    cases = [Case(name, {"t": t, "dim": dim}, SinusoidalEmbedding(dim)(t)) for name, t, dim in specs]
    return run_check("sinusoidal_embedding", student_fn, cases, tensor_comparer(1e-5, 1e-5), hints)
