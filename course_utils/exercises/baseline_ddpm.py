"""Notebook 01's checked exercises: the forward process ``q_sample``, the training loss, one DDPM reverse step and
the whole sampling loop.

``q_sample`` and ``reverse_step`` are checked against :class:`course_utils.diffusion.Schedule` (``q_sample`` and
``p_step`` with sigma_t^2 = beta_t), ``training_loss`` against :func:`course_utils.train.diffusion_loss` and
``sampling_loop`` against :func:`course_utils.diffusion.sample`, each on the same random generator as the student's
function, so a correct answer agrees exactly. The last two watch what the student's code feeds the network (a
recording wrapper), so a failure says which part differs: the steps, the noisy images, or the loss.

:func:`yours_or_library` lets the notebook train and sample with the student's functions once they pass, and with
the library's (through the same signature) until then, so the notebook always runs top to bottom.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from course_utils.diffusion import Schedule, sample
from course_utils.exercises.checking import (Case, Hints, checker, compare_tensors, describe, run_check,
                                             tensor_comparer)
from course_utils.model.unet import build
from course_utils.train import diffusion_loss

ANSWERS = "answers/01_baseline_ddpm.md"


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def q_sample_cases() -> list[Case]:
    course, other = Schedule(T=150, beta_start=1e-4, beta_end=0.02), Schedule(T=50, beta_end=0.05)
    specs = [
        ("a batch of 3 images at steps 0, 75 and 149", course, (3, 1, 4, 4), [0, 75, 149], "random"),
        ("t = 0 for every image (almost no noise yet)", course, (2, 1, 3, 3), [0, 0], "random"),
        ("t = T-1 = 149 for every image (the noisiest step)", course, (2, 1, 3, 3), [149, 149], "random"),
        ("one 16x16 image at t = 60", course, (1, 1, 16, 16), [60], "random"),
        ("zero noise: x_t = sqrt(abar_t) x0", course, (2, 1, 2, 2), [10, 120], "zeros"),
        ("3-channel images", course, (2, 3, 4, 4), [5, 140], "random"),
        ("another schedule: T = 50, beta_end = 0.05", other, (2, 1, 4, 4), [10, 49], "random"),
    ]
    cases = []
    for k, (name, sched, shape, t, kind) in enumerate(specs):
        x0 = _randn(*shape, seed=100 + k).clamp(-1, 1)
        noise = _randn(*shape, seed=200 + k) if kind == "random" else torch.zeros(shape)
        t = torch.tensor(t)
        cases.append(Case(name, {"x0": x0, "t": t, "noise": noise, "alpha_bar": sched.alpha_bar},
                          sched.q_sample(x0, t, noise),
                          shown={"alpha_bar": f"Schedule(T={sched.T}, beta_end={sched.beta_end}).alpha_bar "
                                              f"(shape ({sched.T},))"}))
    return cases


@checker(nudge="each image has its own step, so it needs its own signal and noise scales, shaped to broadcast "
               "over that image's channels and pixels; the scales are square roots, of abar_t and of one minus "
               "abar_t.",
         formula="x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε. API: alpha_bar[t] picks one ᾱ per image (shape (B,)); "
                 ".view(-1, 1, 1, 1) lets it broadcast over (C, H, W); .sqrt() takes a tensor's square root.")
def check_q_sample(student_fn, hints: Hints) -> bool | None:
    """``q_sample(x0, t, noise, alpha_bar)``: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, one t per image."""
    return run_check("q_sample", student_fn, q_sample_cases(), tensor_comparer(1e-5, 1e-6), hints)


# --- the training loss ------------------------------------------------------------------------------------------

class Recorder(nn.Module):
    """The network, unchanged, recording every (x, t) it is called with through ``record`` (a plain function, which a
    deep copy shares, so the checker sees the calls made on the copy the student's function gets)."""

    def __init__(self, net: nn.Module, record):
        super().__init__()
        self.net = net
        self.record = record
        if getattr(net, "config", None) is not None:
            self.config = net.config

    def forward(self, x, t, *rest):
        self.record(x.detach().clone(), t.detach().clone())
        return self.net(x, t, *rest)


def _recorder(net: nn.Module) -> tuple[Recorder, list]:
    calls: list = []
    return Recorder(net, lambda x, t: calls.append((x, t))).train(net.training), calls


@dataclass
class LossExpected:
    """What the library's loss did on a case: the loss, and the (x_t, t) it gave the network."""

    loss: torch.Tensor
    x_t: torch.Tensor
    t: torch.Tensor
    calls: list = field(repr=False)  # the student's calls, filled in while their function runs

    def __repr__(self) -> str:
        return f"a loss of {self.loss.item():.6g} (a tensor of shape (), with a gradient)"


def _steps(t: torch.Tensor) -> str:
    return describe(t) if t.numel() <= 8 else f"{t.numel()} steps from {int(t.min())} to {int(t.max())}"


def compare_loss(expected: LossExpected, actual) -> str | None:
    """Which part of the student's loss differs: its type, the steps or noisy images it fed the network, the value."""
    if not isinstance(actual, torch.Tensor):
        return (f"expected the loss as a torch.Tensor (training calls .backward() on it), got "
                f"{type(actual).__name__}")
    if actual.ndim != 0:
        return (f"expected one number, a tensor of shape (), got shape {tuple(actual.shape)}: average over the "
                "whole batch and every pixel")
    if not expected.calls:
        return "your function never called the model"
    x_t, t = expected.calls[0]
    if tuple(t.shape) != tuple(expected.t.shape):
        return (f"the model got steps of shape {tuple(t.shape)}; it needs one step per image, shape "
                f"{tuple(expected.t.shape)}")
    if not torch.equal(t.long(), expected.t):
        if torch.equal(t.long(), expected.t + 1):
            return ("every step you drew is one more than the library's: in code the steps are numbered 0 .. T-1, "
                    "so draw them from 0 (included) to T (excluded)")
        return (f"the model got the steps {_steps(t)}, but the library draws {_steps(expected.t)} from the same "
                "generator: draw the steps first (before the noise), uniformly over 0 .. T-1, one per image")
    problem = compare_tensors(expected.x_t, x_t, 1e-5, 1e-5)
    if problem:
        return ("the steps are right but the noisy images given to the model are not x_t (" + problem + "): draw the "
                "noise right after the steps, shaped like x0, and mix it with x0 as q_sample does")
    problem = compare_tensors(expected.loss.detach(), actual.detach(), 1e-5, 1e-6)
    if problem:
        return ("the model saw the right x_t and t, but the loss differs (" + problem + "): it is the mean squared "
                "error between the model's output and the noise that was added")
    if expected.loss.requires_grad and not actual.requires_grad:
        return ("the value is right but it carries no gradient (computed under torch.no_grad(), or detached?): "
                "training calls .backward() on it")
    return None


def training_loss_cases() -> list[Case]:
    course, other = Schedule(), Schedule(T=50, beta_end=0.05)
    specs = [  # name, schedule, batch size, seed
        ("a batch of 4 images, the course's schedule", course, 4, 11),
        ("the same batch size, another seed: other steps and noise", course, 4, 12),
        ("a batch of one image", course, 1, 13),
        ("a batch of 16", course, 16, 14),
        ("another schedule: T = 50, beta_end = 0.05 (steps 0 .. 49)", other, 8, 15),
    ]
    cases = []
    for k, (name, sched, n, seed) in enumerate(specs):
        torch.manual_seed(1000 + k)
        net = build("baseline").eval()
        x0 = torch.rand(n, 1, 16, 16, generator=_gen(1100 + k)) * 2 - 1
        spy, calls = _recorder(net)
        loss = diffusion_loss(spy, x0, sched, _gen(seed))  # the library's loss, on the same generator
        (x_t, t), = calls
        calls.clear()
        cases.append(Case(name, {"model": spy, "x0": x0, "alpha_bar": sched.alpha_bar, "gen": _gen(seed)},
                          LossExpected(loss, x_t, t, calls),
                          shown={"model": "a fresh baseline U-Net (eval mode)",
                                 "alpha_bar": f"Schedule(T={sched.T}, beta_end={sched.beta_end}).alpha_bar",
                                 "gen": f"torch.Generator().manual_seed({seed})"}))
    return cases


@checker(nudge="one step per image, drawn first and uniformly from every step there is, then noise of the images' "
               "shape, both from the generator you are given; the network sees the noisy images and their steps, "
               "and the loss compares its output with the noise itself, averaged over everything.",
         formula="the loss is MSE(ε_θ(x_t, t), ε), with t uniform over 0 … T − 1 (T = len(alpha_bar)) and ε ~ "
                 "N(0, I). API: torch.randint(low, high, size, generator=gen) draws whole numbers in [low, high); "
                 "torch.randn(shape, generator=gen) draws the noise (after t); F.mse_loss(input, target) from "
                 "torch.nn.functional averages the squared difference.")
def check_training_step(student_fn, hints: Hints) -> bool | None:
    """``training_loss(model, x0, alpha_bar, gen)``: the DDPM loss of one batch, with t and the noise drawn from
    ``gen`` (t first), as :func:`course_utils.train.diffusion_loss`."""
    return run_check("training_step", student_fn, training_loss_cases(), compare_loss, hints)


# --- one reverse step -------------------------------------------------------------------------------------------

def reverse_step_cases() -> list[Case]:
    course, other = Schedule(T=150, beta_start=1e-4, beta_end=0.02), Schedule(T=50, beta_end=0.05)
    specs = [
        ("a batch of 3 at steps 149, 75 and 10", course, (3, 1, 4, 4), [149, 75, 10]),
        ("t = 0 beside t = 1: no noise is added at t = 0", course, (2, 1, 3, 3), [0, 1]),
        ("t = 0 for every image (the last step: the mean only)", course, (2, 1, 3, 3), [0, 0]),
        ("one 16x16 image at t = 149", course, (1, 1, 16, 16), [149]),
        ("3-channel images", course, (2, 3, 4, 4), [3, 100]),
        ("another schedule: T = 50, beta_end = 0.05", other, (2, 1, 4, 4), [49, 1]),
    ]
    cases = []
    for k, (name, sched, shape, t) in enumerate(specs):
        x_t, eps, z = (_randn(*shape, seed=300 + 10 * k + j) for j in range(3))
        t = torch.tensor(t)
        cases.append(Case(name, {"x_t": x_t, "t": t, "eps": eps, "z": z, "betas": sched.betas,
                                 "alpha_bar": sched.alpha_bar},
                          sched.p_step(x_t, t, eps, z, sigma="beta"),
                          shown={"betas": f"Schedule(T={sched.T}, beta_end={sched.beta_end}).betas (shape ({sched.T},))",
                                 "alpha_bar": f"the same schedule's alpha_bar (shape ({sched.T},))"}))
    return cases


@checker(nudge="the mean removes the scaled noise guess and then divides by the square root of alpha_t (which is "
               "one minus beta_t); fresh noise, scaled by the square root of beta_t, is added to every image "
               "except those at step 0.",
         formula="x_{t−1} = (x_t − β_t / √(1 − ᾱ_t) · ε) / √α_t + σ_t z with α_t = 1 − β_t and σ_t = √β_t, the "
                 "σ_t z term only where t > 0. API: betas[t] and alpha_bar[t] reshaped with .view(-1, 1, 1, 1); "
                 "(t > 0).float() is 1 where t > 0 and 0 at t = 0.")
def check_reverse_step(student_fn, hints: Hints) -> bool | None:
    """``reverse_step(x_t, t, eps, z, betas, alpha_bar)``: one DDPM step with sigma_t = sqrt(beta_t), no noise at t = 0."""
    return run_check("reverse_step", student_fn, reverse_step_cases(), tensor_comparer(1e-5, 1e-5), hints)


# --- the sampling loop ------------------------------------------------------------------------------------------

class ZeroNoise(nn.Module):
    """A network that always guesses zero noise (no parameters): the loop is then pure rescaling plus noise."""

    def forward(self, x, t, *rest):
        return torch.zeros_like(x)


class TinyNet(nn.Module):
    """A cheap stand-in for the U-Net (one 3x3 convolution, scaled by the step), so a 150-step case takes
    milliseconds: a 3x3 convolution whose output grows with t/T."""

    def __init__(self, T: int = 150):
        super().__init__()
        self.conv, self.T = nn.Conv2d(1, 1, 3, padding=1), T

    def forward(self, x, t, *rest):
        return self.conv(x) * (0.5 + t.float().view(-1, 1, 1, 1) / self.T)


@dataclass
class SamplesExpected:
    """What the library's sampler did on a case: the images, and the steps at which it called the network."""

    images: torch.Tensor
    steps: list
    calls: list = field(repr=False)

    def __repr__(self) -> str:
        return (f"{describe(self.images)}, after {len(self.steps)} network calls at t = {self.steps[0]} .. "
                f"{self.steps[-1]}")


def compare_samples(expected: SamplesExpected, actual) -> str | None:
    """Which part of the student's loop differs: the shape, the steps it visits, the clamp, the images."""
    if not isinstance(actual, torch.Tensor):
        return f"expected the images as a torch.Tensor, got {type(actual).__name__}"
    if tuple(actual.shape) != tuple(expected.images.shape):
        return (f"wrong shape: expected {tuple(expected.images.shape)} (n images of 1 x 16 x 16), got "
                f"{tuple(actual.shape)}")
    steps = [int(t.flatten()[0]) for _, t in expected.calls]
    if not steps:
        return "your loop never called the model"
    if steps != expected.steps:
        return (f"your loop called the model {len(steps)} times, at t = {steps[0]} .. {steps[-1]}; the reverse "
                f"process calls it {len(expected.steps)} times, at every step from T-1 = {expected.steps[0]} down "
                f"to 0, once each")
    if bool((actual.detach().abs() > 1).any()):
        return "the steps are right, but some pixels lie outside [-1, 1]: clamp the final images, as the library does"
    problem = compare_tensors(expected.images, actual.detach().cpu(), 1e-4, 1e-5)
    if problem:
        return ("the steps are right but the images differ (" + problem + "): start from pure noise, the first draw "
                "from the generator; at each step give the network's guess and one fresh noise draw to your "
                "reverse_step")
    return None


def sampling_loop_cases() -> list[Case]:
    course, short = Schedule(), Schedule(T=10, beta_end=0.2)
    specs = [  # name, network, n, schedule, seed
        ("4 images, the course's 150 steps (a one-convolution network stands in for the U-Net)", "tiny", 4, course,
         21),
        ("the same, another seed", "tiny", 4, course, 22),
        ("one image", "tiny", 1, course, 23),
        ("a network that always guesses zero noise", "zero", 3, course, 24),
        ("a fresh baseline U-Net, a short schedule: T = 10, beta_end = 0.2", "baseline", 2, short, 25),
    ]
    shown = {"tiny": "a 3x3 convolution whose output grows with t", "zero": "a network that returns zeros",
             "baseline": "a fresh baseline U-Net (eval mode)"}
    cases = []
    for k, (name, kind, n, sched, seed) in enumerate(specs):
        torch.manual_seed(2000 + k)
        net = {"tiny": TinyNet, "zero": ZeroNoise, "baseline": lambda: build("baseline").eval()}[kind]()
        spy, calls = _recorder(net)
        images = sample(spy, n, sched, seed=seed)
        steps = [int(t.flatten()[0]) for _, t in calls]
        calls.clear()
        cases.append(Case(name, {"model": spy, "n": n, "betas": sched.betas, "alpha_bar": sched.alpha_bar,
                                 "gen": _gen(seed)},
                          SamplesExpected(images, steps, calls),
                          shown={"model": shown[kind], "betas": f"Schedule(T={sched.T}, beta_end={sched.beta_end}).betas",
                                 "alpha_bar": "the same schedule's alpha_bar",
                                 "gen": f"torch.Generator().manual_seed({seed})"}))
    return cases


@checker(nudge="start from pure noise, the first draw from the generator; then visit every step from the last one "
               "down to step 0, once each: ask the network for its noise guess, draw fresh noise, and take your "
               "reverse step; finally clamp the images to the pixel range.",
         formula="x_T ~ N(0, I), then x_{t−1} = reverse_step(x_t, …) for t = T − 1, T − 2, …, 0, then clamp to "
                 "[−1, 1]. API: torch.randn(n, 1, 16, 16, generator=gen) for the start; range(T - 1, -1, -1) for "
                 "the steps; torch.full((n,), t) gives the network one step per image; torch.randn(x.shape, "
                 "generator=gen) for z, drawn after the network's call; .clamp(-1, 1); torch.no_grad() as a "
                 "context manager.")
def check_sampling_loop(student_fn, hints: Hints) -> bool | None:
    """``sampling_loop(model, n, betas, alpha_bar, gen)``: n images by the whole reverse process from pure noise,
    built on the student's ``reverse_step``, as :func:`course_utils.diffusion.sample` with ``seed``."""
    return run_check("sampling_loop", student_fn, sampling_loop_cases(), compare_samples, hints)


# --- the library's versions, for a notebook whose stub is not solved yet --------------------------------------

def _schedule_for(model, alpha_bar) -> Schedule:
    sched = Schedule.from_config(getattr(model, "config", None))
    if len(alpha_bar) != sched.T or not torch.allclose(sched.alpha_bar, alpha_bar.cpu()):
        raise ValueError("the library's fallback knows only the schedule of the model's own config")
    return sched


def library_training_loss(model, x0, alpha_bar, gen):
    """``training_loss`` through the library: :func:`course_utils.train.diffusion_loss`."""
    return diffusion_loss(model, x0, _schedule_for(model, alpha_bar), gen)


def library_sampling_loop(model, n, betas, alpha_bar, gen):
    """``sampling_loop`` through the library: :func:`course_utils.diffusion.sample`, seeded with the generator's
    seed (the same images as a correct loop given a fresh generator)."""
    return sample(model, n, _schedule_for(model, alpha_bar), seed=gen.initial_seed())


LIBRARY = {"training_loss": library_training_loss, "sampling_loop": library_sampling_loop}


def yours_or_library(student_fn, passed: bool | None, name: str | None = None):
    """``student_fn`` if its checker passed, else the library's function of the same signature, with a message."""
    name = name or getattr(student_fn, "__name__", "")
    if passed:
        print(f"using your {name}")
        return student_fn
    print(f"your {name} does not pass its checker yet, so this cell uses the library's {name} instead; "
          f"the notebook runs either way. Come back when the checker says ✓.")
    return LIBRARY[name]
