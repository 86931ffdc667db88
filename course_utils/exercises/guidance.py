"""Notebook 10's checked exercises: context dropout (the label masking that classifier-free guidance trains with),
and the guidance formula (kept for the answers and the tests; the notebook now has it as an unchecked warm-up).

References: the conditional U-Net itself (what its label embedding receives for kept and dropped labels, with the mask
``diffusion_loss`` draws) and :func:`course_utils.diffusion.guided_output`, which computes (1 + w) e_cond - w e_uncond.
"""
from __future__ import annotations

import torch

from course_utils.exercises.checking import Case, Hints, checker, run_check, tensor_comparer
from course_utils.model.unet import build

ANSWERS = "answers/10_classifier_free_guidance.md"


def _reference(e_cond: torch.Tensor, e_uncond: torch.Tensor, w: float) -> torch.Tensor:
    return (1 + w) * e_cond - w * e_uncond


@checker(nudge="guidance starts at the conditional prediction and moves further in the direction the label adds, "
               "the difference between the conditional and the unconditional prediction, by w times that "
               "difference.",
         formula="e = (1 + w) e_cond − w e_uncond, the same as e_cond + w (e_cond − e_uncond).")
def check_guide(student_fn, hints: Hints) -> bool | None:
    """``guide(e_cond, e_uncond, w)`` = (1 + w) e_cond - w e_uncond."""
    g = torch.Generator().manual_seed(1010)
    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)
    specs = [
        ("w = 2 on a batch of 16x16 predictions", r(4, 1, 16, 16), r(4, 1, 16, 16), 2.0),
        ("w = 0: the conditional prediction itself", r(2, 1, 4, 4), r(2, 1, 4, 4), 0.0),
        ("w = 0.5", r(3, 1, 2, 2), r(3, 1, 2, 2), 0.5),
        ("equal predictions: guidance changes nothing", torch.ones(2, 1, 2, 2, dtype=torch.float64),
         torch.ones(2, 1, 2, 2, dtype=torch.float64), 4.0),
        ("w = -1: the unconditional prediction", r(2, 1, 3, 3), r(2, 1, 3, 3), -1.0),
    ]
    cases = [Case(name, {"e_cond": a, "e_uncond": b, "w": w}, _reference(a, b, w)) for name, a, b, w in specs]
    return run_check("guide", student_fn, cases, tensor_comparer(1e-9, 1e-12), hints)


def reference_context(labels: torch.Tensor, u: torch.Tensor, p_uncond: float, num_classes: int) -> torch.Tensor:
    """What the course's conditional U-Net feeds its label embedding in training: ``diffusion_loss`` keeps a label
    where its uniform draw u >= p_uncond, and ``UNet.forward`` turns a kept label into its one-hot vector and a
    dropped one into zeros. Read off the real model with a hook on ``c_emb1``."""
    torch.manual_seed(0)
    model = build("baseline", num_classes=num_classes).eval()
    seen = []
    hook = model.c_emb1.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    n = labels.shape[0]
    with torch.no_grad():
        model(torch.zeros(n, 1, 16, 16), torch.zeros(n, dtype=torch.long), labels, u >= p_uncond)
    hook.remove()
    return seen[0]


def context_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1020)
    specs = [  # name, labels, u, p_uncond, num_classes
        ("10 classes, p_uncond = 0.1, a batch of 8", torch.tensor([0, 3, 7, 9, 1, 1, 5, 2]),
         torch.tensor([0.05, 0.5, 0.95, 0.09, 0.11, 0.3, 0.01, 0.7]), 0.1, 10),
        ("p_uncond = 0: every label kept", torch.tensor([4, 8, 0]), torch.tensor([0.0, 0.5, 0.99]), 0.0, 10),
        ("p_uncond = 1: every label dropped (the unconditional input)", torch.tensor([4, 8, 0]),
         torch.tensor([0.0, 0.5, 0.99]), 1.0, 10),
        ("u exactly p_uncond: kept (a label is dropped only when u < p_uncond)", torch.tensor([6, 2]),
         torch.tensor([0.25, 0.2]), 0.25, 10),
        ("3 classes, random draws, p_uncond = 0.5", torch.randint(0, 3, (12,), generator=g),
         torch.rand(12, generator=g), 0.5, 3),
    ]
    return [Case(name, {"labels": labels, "u": u, "p_uncond": p, "num_classes": k},
                 reference_context(labels, u, p, k)) for name, labels, u, p, k in specs]


@checker(nudge="each label becomes a vector with a single one at its class; a label whose uniform draw falls below "
               "the drop probability is dropped, and a dropped label is the all-zero vector, the network's 'no "
               "label' input. A draw equal to the probability keeps its label.",
         formula="context_b = one_hot(label_b) · [u_b ≥ p_uncond]. API: F.one_hot(labels, num_classes).float() "
                 "(torch.nn.functional as F); (u >= p_uncond) is a boolean mask, .float() makes it 0/1, [:, None] "
                 "lines it up with the rows.")
def check_context_dropout(student_fn, hints: Hints) -> bool | None:
    """``context_dropout(labels, u, p_uncond, num_classes)``: the (B, num_classes) context the conditional U-Net
    sees in training: one-hot labels, zeroed where u < p_uncond (context dropout for classifier-free guidance)."""
    return run_check("context_dropout", student_fn, context_cases(), tensor_comparer(0, 0), hints)
