"""The samplers as objects (``DDPMSampler``, ``DDIMSampler``, guidance and x0-clipping as wrappers) give the same
samples as the single loop they replaced, bit for bit, on the shipped checkpoints.

Two references, both made from the shipped checkpoints at seed 0:

- ``tests/reference/sampler_reference.pt`` holds the samples that ``diffusion.sample`` gave *before* the samplers became
  objects (commit 639d817), one tensor per case in :data:`CASES`. They are compared exactly where the arithmetic
  is the one they were made on, and to 1e-5 elsewhere (another CPU's convolution kernels may round differently);
- :func:`old_sample` is a frozen copy of that loop (its reverse steps written out with the schedule's tensors
  only); the library's ``sample`` must equal it bit for bit on this machine, whatever machine it is.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import course_utils as cu
from course_utils.checkpoints import load_checkpoint
from course_utils.diffusion import ClipX0, DDIMSampler, DDPMSampler, Guided, Schedule, ddim_timesteps, sample
from course_utils.errors import CourseError

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference" / "sampler_reference.pt"
N = 8

# name: (checkpoint, keyword arguments of sample())
CASES = {
    "ddpm": ("baseline", {}),
    "ddpm_beta_tilde": ("upsample", {"sigma": "beta_tilde"}),
    "ddpm_short_T": ("baseline", {"schedule": 50}),
    "ddim_eta0": ("optimized", {"sampler": "ddim"}),
    "ddim_eta1": ("optimized", {"sampler": "ddim", "steps": 50, "eta": 1.0}),
    "ddim_eta_half": ("wide", {"sampler": "ddim", "steps": 10, "eta": 0.5}),
    "v_ddpm": ("best-cpu", {}),
    "v_ddim": ("best-cpu", {"sampler": "ddim", "steps": 25, "eta": 1.0}),
    "clip_ddpm": ("optimized", {"clip_x0": True}),
    "clip_ddim": ("optimized", {"sampler": "ddim", "steps": 20, "clip_x0": True}),
    "clip_v_ddpm": ("best-cpu", {"clip_x0": True}),
    "guidance_ddpm": ("optimized_cond-final", {"labels": "arange", "guidance": 2.0}),
    "guidance_ddim": ("optimized_cond-final", {"labels": "arange", "guidance": 1.0, "sampler": "ddim", "eta": 1.0}),
    "conditional_w0": ("optimized_cond-final", {"labels": "arange", "sampler": "ddim", "steps": 10}),
    "frames_ddpm": ("baseline", {"frames": 5}),
    "frames_ddim": ("best-cpu", {"sampler": "ddim", "steps": 25, "frames": 4}),
    "start_ddim": ("optimized", {"start": "noise", "sampler": "ddim", "steps": 30, "eta": 1.0}),
    "start_ddpm": ("baseline", {"start": "noise"}),
}

_models: dict = {}


def model_of(name: str):
    if name not in _models:
        _models[name] = load_checkpoint(ROOT / "checkpoints" / f"{name}.safetensors")[0]
    return _models[name]


def kwargs_of(model, kwargs: dict) -> dict:
    """The case's keyword arguments with its placeholders made real."""
    kw = dict(kwargs)
    if kw.get("labels") == "arange":
        kw["labels"] = torch.arange(N) % 10
    if kw.get("start") == "noise":
        kw["start"] = torch.randn(N, 1, 16, 16, generator=torch.Generator().manual_seed(7)) * 0.9
    if "schedule" in kw:
        kw["schedule"] = Schedule(T=kw["schedule"])
    return kw


def as_tuple(out):
    return (out,) if isinstance(out, torch.Tensor) else (out[0], out[1], torch.tensor(out[2]))


# --- a frozen copy of the sampling loop as it was before the samplers became objects ---------------------------

def _at(values, t, like):
    return values.to(like.device)[t.long().to(like.device)].view(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def _eps_x0(s, x_t, t, out, prediction):
    ab = _at(s.alpha_bar, t, x_t)
    if prediction == "v":
        return (1 - ab).sqrt() * x_t + ab.sqrt() * out, ab.sqrt() * x_t - (1 - ab).sqrt() * out
    return out, (x_t - (1 - ab).sqrt() * out) / ab.sqrt()


def _p_step(s, x_t, t, eps, noise, sigma, x0):
    if x0 is None:
        b, a, ab = _at(s.betas, t, x_t), _at(s.alphas, t, x_t), _at(s.alpha_bar, t, x_t)
        mean = (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()
    else:
        mean = _at(s.posterior_x0, t, x_t) * x0 + _at(s.posterior_xt, t, x_t) * x_t
    if noise is None:
        return mean
    nonzero = (t > 0).to(x_t.dtype).view(-1, *([1] * (x_t.ndim - 1))).to(x_t.device)
    var = s.betas if sigma == "beta" else s.beta_tilde
    return mean + nonzero * _at(var, t, x_t).sqrt() * noise


def _ddim_step(s, x_t, t, prev, eps, eta, noise, x0):
    ab_t = s.alpha_bar[t].item()
    ab_s = s.alpha_bar[prev].item() if prev >= 0 else 1.0
    if x0 is None:
        x0 = (x_t - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5
    sig = eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5
    x_s = ab_s ** 0.5 * x0 + max(1 - ab_s - sig ** 2, 0.0) ** 0.5 * eps
    if sig > 0 and noise is not None:
        x_s = x_s + sig * noise
    return x_s


def _guided(model, x, t, labels, guidance):
    if labels is None:
        return model(x, t)
    n = x.shape[0]
    eps_c = model(x, t, labels, torch.ones(n, device=x.device))
    if not guidance:
        return eps_c
    eps_u = model(x, t, labels, torch.zeros(n, device=x.device))
    return (1 + guidance) * eps_c - guidance * eps_u


@torch.no_grad()
def old_sample(model, n=16, schedule=None, seed=0, sigma="beta", frames=0, labels=None, guidance=0.0,
               sampler="ddpm", steps=None, eta=0.0, start=None, clip_x0=False):
    cfg = model.config
    prediction = cfg.prediction
    schedule = schedule or Schedule(T=cfg.T, kind=cfg.schedule, zero_terminal_snr=cfg.zero_terminal_snr,
                                    beta_start=cfg.beta_start, beta_end=cfg.beta_end)
    if sampler == "ddpm":
        times = list(range(schedule.T - 1, -1, -1))
    else:
        k = 25 if steps is None else steps
        times = sorted({int(round(v)) for v in torch.linspace(schedule.T - 1, 0, k).tolist()}, reverse=True)
    shape = (n, cfg.img_channels, cfg.img_size, cfg.img_size)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    model.eval()
    x = torch.randn(shape, generator=gen)
    if start is not None:
        x = start.detach().to(dtype=x.dtype).clone()
    keep = set()
    if frames:
        keep = {times[int(round(v))] for v in torch.linspace(0, len(times) - 1, frames).tolist()}
    snaps, snap_t = [], []
    for k in range(len(times)):
        i = times[k]
        t = torch.full((n,), i, dtype=torch.long)
        out = _guided(model, x, t, labels, guidance)
        eps, x0 = (out, None) if prediction == "eps" and not clip_x0 else _eps_x0(schedule, x, t, out, prediction)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            ab = schedule.alpha_bar[i].item()
            if ab < 1:
                eps = (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5
        if sampler == "ddpm":
            z = torch.randn(shape, generator=gen) if i > 0 else None
            x = _p_step(schedule, x, t, eps, z, sigma, x0)
        else:
            s = times[k + 1] if k + 1 < len(times) else -1
            z = torch.randn(shape, generator=gen) if eta > 0 and s >= 0 else None
            x = _ddim_step(schedule, x, i, s, eps, eta, z, x0)
        if i in keep:
            snaps.append(x.detach().cpu().clone())
            snap_t.append(i)
    x = x.clamp(-1, 1).cpu()
    if frames:
        return x, torch.stack(snaps), snap_t
    return x


def make_reference() -> dict:
    """Every case's samples from the library's ``sample`` (run once, before the samplers became objects)."""
    ref = {}
    for name, (ck, kwargs) in CASES.items():
        model = model_of(ck)
        ref[name] = list(as_tuple(sample(model, N, seed=0, **kwargs_of(model, kwargs))))
    return ref


@pytest.fixture(scope="module")
def reference():
    return torch.load(REFERENCE, weights_only=True)


# 150 steps of a 2M-parameter network, twice: minutes on 2 busy cores
SLOW = {"v_ddpm", "clip_ddpm", "clip_v_ddpm", "guidance_ddpm"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_samples_are_those_of_the_old_loop_and_the_reference(name, reference):
    ck, kwargs = CASES[name]
    model = model_of(ck)
    new = as_tuple(sample(model, N, seed=0, **kwargs_of(model, kwargs)))
    old = as_tuple(old_sample(model, N, seed=0, **kwargs_of(model, kwargs)))
    assert len(new) == len(old) == len(reference[name])
    for a, b, ref in zip(new, old, reference[name]):
        assert a.dtype == b.dtype and a.shape == b.shape == ref.shape
        assert torch.equal(a, b), f"{name}: the samples differ from the old loop's by {(a - b).abs().max():.3g}"
        # exact on the machine the reference was made on; another CPU's kernels may round the last bits differently
        assert torch.allclose(a, ref, rtol=0, atol=1e-5), f"{name}: samples changed by {(a - ref).abs().max():.3g}"


# --- the sampler objects themselves -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return cu.build("baseline")


def test_each_sampler_lists_its_timesteps():
    assert DDPMSampler().timesteps(150) == list(range(149, -1, -1))
    assert DDIMSampler(25, 1.0).timesteps(150) == ddim_timesteps(150, 25)
    assert ClipX0(DDIMSampler(10)).timesteps(150) == ddim_timesteps(150, 10)
    with pytest.raises(CourseError, match="takes all T=150 steps, got steps=25"):
        DDPMSampler().timesteps(150, 25)
    assert DDPMSampler().needs_noise(1, 0) and not DDPMSampler().needs_noise(0, -1)
    assert not DDIMSampler(10, 0.0).needs_noise(100, 80) and DDIMSampler(10, 0.5).needs_noise(100, 80)
    assert not DDIMSampler(10, 0.5).needs_noise(5, -1)


def test_a_sampler_object_samples_as_its_name_does(tiny):
    for obj, kwargs in ((DDIMSampler(10, 0.5), {"sampler": "ddim", "steps": 10, "eta": 0.5}),
                        (DDPMSampler("beta_tilde"), {"sigma": "beta_tilde"})):
        assert torch.equal(sample(tiny, 3, seed=4, sampler=obj), sample(tiny, 3, seed=4, **kwargs))
    clipped = sample(tiny, 3, seed=4, sampler=DDIMSampler(10), clip_x0=True)
    assert torch.equal(clipped, sample(tiny, 3, seed=4, sampler="ddim", steps=10, clip_x0=True))
    assert not torch.equal(clipped, sample(tiny, 3, seed=4, sampler="ddim", steps=10))


def test_clipping_wraps_the_step():
    s = Schedule()
    x, eps = torch.randn(2, 1, 4, 4), 5 * torch.randn(2, 1, 4, 4)
    t = torch.full((2,), 10)
    _, x0 = s.eps_x0(x, t, eps)
    assert x0.abs().max() > 1  # a wild noise guess: its clean image leaves [-1, 1]
    got = ClipX0(DDIMSampler(10)).step(s, x, 10, 5, eps, None, None)
    ab = s.alpha_bar[10].item()
    eps_c = (x - ab ** 0.5 * x0.clamp(-1, 1)) / (1 - ab) ** 0.5
    assert torch.equal(got, DDIMSampler(10).step(s, x, 10, 5, eps_c, x0.clamp(-1, 1), None))


def test_guidance_wraps_the_model_output():
    calls = []

    def net(x, t, c=None, mask=None):
        calls.append(None if mask is None else int(mask[0]))
        return x + (0 if mask is None else float(mask[0]))

    x, t = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long)
    assert torch.equal(Guided(net)(x, t), x) and calls == [None]
    assert torch.equal(Guided(net, torch.tensor([1, 2]), 2.0)(x, t), torch.full_like(x, 3.0))  # 3 * 1 - 2 * 0
    assert calls[1:] == [1, 0]


@pytest.mark.parametrize("kwargs, match", [
    ({"gudance": 1.0}, r"unknown sample\(\) option\(s\) \['gudance'\]; known: .*guidance"),
    ({"sampler": object()}, r"sampler must be 'ddpm', 'ddim', DDPMSampler\(sigma\) or DDIMSampler"),
    ({"sampler": "ddpm", "eta": 2}, r"eta must lie in \[0, 1\]"),
    ({"sampler": "ddim", "steps": 0}, r"between 1 and T=150"),
    ({"sigma": "gamma"}, r"unknown sampler variance 'gamma'"),
])
def test_bad_sampler_settings_say_what_to_change(tiny, kwargs, match):
    with pytest.raises(CourseError, match=match):
        sample(tiny, 2, **kwargs)


def test_sample_is_short():
    import inspect
    assert len(inspect.getsource(sample).splitlines()) <= 40
    assert len(inspect.signature(sample).parameters) <= 10


if __name__ == "__main__":  # written once, before the change: python tests/test_samplers_objects.py
    REFERENCE.parent.mkdir(exist_ok=True)
    torch.save(make_reference(), REFERENCE)
    print("wrote", REFERENCE)
