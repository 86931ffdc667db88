"""DDIM (course_utils.diffusion): its timesteps, its step, and how it relates to DDPM.

With K = T steps and eta = 1, DDIM's variance is sigma_t^2 = (1 - abar_{t-1}) / (1 - abar_t) * beta_t = beta~_t, the
posterior variance, and its mean is the posterior mean written through the predicted x_0. So DDIM(K = T, eta = 1)
is not DDPM with sigma_t^2 = beta_t (the course's default), but exactly DDPM with sigma="beta_tilde": step by step
and, drawing the same noise, sample by sample.
"""
import pytest
import torch

import course_utils as cu
from course_utils.diffusion import Schedule, ddim_step, ddim_timesteps, sample


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return cu.build("baseline").eval()


def test_timesteps_run_from_T_minus_1_to_0():
    for k in (1, 2, 10, 25, 50, 150):
        ts = ddim_timesteps(150, k)
        assert ts[0] == 149 and (ts[-1] == 0 or k == 1) and ts == sorted(set(ts), reverse=True) and len(ts) == k
    with pytest.raises(cu.CourseError, match="between 1 and T=150"):
        ddim_timesteps(150, 151)


def test_eta_1_step_is_the_ddpm_posterior_step():
    s = Schedule()
    g = torch.Generator().manual_seed(1)
    x, eps, z = (torch.randn(3, 1, 16, 16, generator=g) for _ in range(3))
    for t in (149, 75, 1):
        ddpm = s.p_step(x, torch.full((3,), t), eps, z, "beta_tilde")
        assert torch.allclose(ddim_step(s, x, t, t - 1, eps, 1.0, z), ddpm, atol=1e-5)
        assert not torch.allclose(ddim_step(s, x, t, t - 1, eps, 1.0, z), s.p_step(x, torch.full((3,), t), eps, z), atol=1e-3)
    assert torch.allclose(ddim_step(s, x, 0, -1, eps), s.p_step(x, torch.zeros(3, dtype=torch.long), eps, None), atol=1e-5)


def test_ddim_with_all_steps_and_eta_1_samples_like_ddpm_with_beta_tilde(model):
    a = sample(model, 4, seed=3, sampler="ddim", steps=150, eta=1.0)
    b = sample(model, 4, seed=3, sigma="beta_tilde")
    c = sample(model, 4, seed=3)
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-3)


def test_eta_0_is_deterministic_given_the_start_noise(model):
    a = sample(model, 4, seed=5, sampler="ddim", steps=10)
    assert torch.equal(a, sample(model, 4, seed=5, sampler="ddim", steps=10))
    assert not torch.equal(a, sample(model, 4, seed=6, sampler="ddim", steps=10))
    x, frames, ts = sample(model, 2, seed=0, sampler="ddim", steps=10, frames=4)
    assert frames.shape[0] == 4 and ts[0] == 149 and ts[-1] == 0 and torch.equal(frames[-1].clamp(-1, 1), x)


@pytest.mark.parametrize("kwargs, match", [
    ({"sampler": "ddpm", "steps": 25}, "takes all T=150 steps"),
    ({"sampler": "ddim", "steps": 0}, "between 1 and T=150"),
    ({"sampler": "ddim", "eta": 1.5}, "eta must lie in"),
    ({"sampler": "plms"}, "unknown sampler 'plms'"),
])
def test_bad_sampler_settings_are_clear_errors(model, kwargs, match):
    with pytest.raises(cu.CourseError, match=match):
        sample(model, 2, **kwargs)


def test_ddim_explorer_samples_the_same_noise_at_every_k():
    from course_utils.widgets import ddim as widget
    torch.manual_seed(0)
    model = cu.build("baseline").eval()
    a = widget.sampler_data(model, steps=5, eta=0.0, n=4, seed=1)
    assert a["images"].shape == (4, 1, 16, 16) and a["images_per_s"] > 0
    assert torch.equal(a["images"], widget.sampler_data(model, steps=5, eta=0.0, n=4, seed=1)["images"])
    text = widget.readout_text(a, ddpm_seconds=a["seconds"] * 30)
    assert text.startswith("DDIM, 5 steps, eta 0: 4 images") and "30.0x longer" in text
    with pytest.raises(cu.CourseError, match="from 1 to T = 150"):
        widget.sampler_data(model, steps=151)
    fig = widget.static_figure(model, steps=(2, 5), n=4)
    assert len(fig.axes) == 2
    box = widget.explorer(model, n=4, steps=5)
    first = box.readout.value
    assert "5 steps" in first
    box.controls["steps"].value = 2
    assert "2 steps" in box.readout.value
    box.controls["eta"].value = 0.0
    assert "eta 0:" in box.readout.value
