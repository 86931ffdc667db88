"""Noise schedules and prediction targets (course_utils.diffusion, the U-Net config, notebook 09's lesson module).

The original linear schedule stays the default bit for bit; the cosine, scaled-linear and zero-terminal-SNR
schedules have the endpoints their papers give; v-prediction converts to (eps, x0) without dividing by zero, so
a zero-terminal-SNR model trains and samples; a checkpoint is never sampled with another schedule than its own.
"""
import math

import pytest
import torch

import course_utils as cu
from course_utils.checkpoints import load_checkpoint, save_checkpoint
from course_utils.data import FashionData
from course_utils.diffusion import PREDICTIONS, SCHEDULES, DiffusionConfig, Schedule, ddim_step, rescale_zero_terminal_snr, sample
from course_utils.errors import CheckpointError, CourseError
from course_utils.lessons import noise_schedule as ns
from course_utils.model import unet
from course_utils.train import diffusion_loss, train

KINDS = [dict(kind=k, zero_terminal_snr=z) for k in SCHEDULES for z in (False, True)]
SETTINGS = list(ns.SETTINGS.items()) + [("cosine_zero_snr", dict(schedule="cosine", zero_terminal_snr=True,
                                                                  prediction="v")),
                                        ("linear_v", dict(prediction="v"))]


@pytest.fixture(scope="module")
def tiny_data():
    g = torch.Generator().manual_seed(0)
    return FashionData(torch.rand(64, 1, 16, 16, generator=g) * 2 - 1, torch.randint(0, 10, (64,), generator=g),
                       "train", "synthetic")


def test_the_default_is_the_original_schedule_bit_for_bit():
    betas = torch.linspace(1e-4, 0.02, 150)
    for s in (Schedule(), Schedule.from_config(cu.build("baseline").config), Schedule.from_config(None),
              Schedule.from_config(unet.OPTIMIZED)):
        assert torch.equal(s.betas, betas) and torch.equal(s.alphas, 1.0 - betas)
        assert torch.equal(s.alpha_bar, torch.cumprod(1.0 - betas, 0))
    assert float(Schedule().alpha_bar[-1]) == pytest.approx(0.2192, abs=1e-4)  # x_T keeps sqrt(0.22) = 0.47 of x0


def test_the_config_validates_its_diffusion_settings_with_the_diffusion_modules_names():
    for kind in SCHEDULES:
        cu.build("baseline", schedule=kind).config.validate()
    for pred in PREDICTIONS:
        cu.build("baseline", prediction=pred).config.validate()
    assert unet.DIFFUSION_FIELDS == ("schedule", "zero_terminal_snr", "prediction", "T", "beta_start", "beta_end")


@pytest.mark.parametrize("kw", KINDS, ids=lambda kw: f"{kw['kind']}{'+zsnr' if kw['zero_terminal_snr'] else ''}")
def test_schedules_are_monotone(kw):
    s = Schedule(**kw)
    assert s.betas.shape == s.alpha_bar.shape == s.snr.shape == (150,)
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all()) and bool((s.snr[1:] < s.snr[:-1]).all())
    assert bool((s.alpha_bar[:-1] > 0).all()) and bool((s.alpha_bar < 1).all())
    last = 150 if not kw["zero_terminal_snr"] else 149  # zero SNR makes the last beta exactly 1
    assert bool((s.betas[:last] > 0).all()) and bool((s.betas[:last] < 1).all())
    assert bool((s.beta_tilde >= 0).all()) and float(s.beta_tilde[0]) == 0.0
    if kw["zero_terminal_snr"]:
        assert float(s.betas[-1]) == 1.0 and float(s.alphas[-1]) == 0.0


def test_endpoints():
    lin, cos, scaled = Schedule(), Schedule(kind="cosine"), Schedule(kind="linear_scaled")
    # cosine: abar(t) = f(t)/f(0), f(t) = cos^2(((t/T) + s)/(1 + s) pi/2); the last beta is clipped at 0.999
    f = [math.cos((t / 150 + 0.008) / 1.008 * math.pi / 2) ** 2 for t in (0, 1, 75)]
    assert float(cos.alpha_bar[0]) == pytest.approx(f[1] / f[0], rel=1e-6)
    assert float(cos.alpha_bar[74]) == pytest.approx(f[2] / f[0], rel=1e-5)
    assert float(cos.betas[-1]) == pytest.approx(0.999) and 0 < float(cos.alpha_bar[-1]) < 1e-6
    # scaled linear: beta from 1e-4 * 1000/T to 0.02 * 1000/T
    assert float(scaled.betas[0]) == pytest.approx(1e-4 * 1000 / 150, rel=1e-6)
    assert float(scaled.betas[-1]) == pytest.approx(0.02 * 1000 / 150, rel=1e-6)
    want = math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / 149) * 1000 / 150 for i in range(150))
    assert float(scaled.alpha_bar[-1]) == pytest.approx(want, rel=1e-4) and float(scaled.alpha_bar[-1]) < 1e-4
    assert float(lin.snr[-1]) == pytest.approx(0.2192 / (1 - 0.2192), rel=1e-3)
    with pytest.raises(CourseError, match="T > 20"):
        Schedule(T=20, kind="linear_scaled")
    with pytest.raises(CourseError, match="unknown noise schedule 'sigmoid'"):
        Schedule(kind="sigmoid")


@pytest.mark.parametrize("kind", SCHEDULES)
def test_zero_terminal_snr_rescale(kind):
    base, z = Schedule(kind=kind), Schedule(kind=kind, zero_terminal_snr=True)
    assert float(z.alpha_bar[-1]) == 0.0 and float(z.snr[-1]) == 0.0
    assert float(z.snr[0]) == pytest.approx(float(base.snr[0]), rel=1e-5)
    assert float(z.alpha_bar[0]) == pytest.approx(float(base.alpha_bar[0]), rel=1e-7)
    # Algorithm 1 on sqrt(abar): shift so the last is 0, scale so the first is unchanged - an affine map
    ab = torch.cumprod(1 - torch.linspace(0.1, 0.5, 6, dtype=torch.float64), 0)
    r = rescale_zero_terminal_snr(ab)
    a, b = ab.sqrt(), r.sqrt()
    assert float(r[-1]) == 0.0 and float(r[0]) == pytest.approx(float(ab[0]), rel=1e-12)
    assert torch.allclose(b, (a - a[-1]) / (a[0] - a[-1]) * a[0], rtol=1e-12)


def test_v_prediction_round_trips_including_at_zero_snr():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(6, 1, 4, 4, generator=g) * 2 - 1, torch.randn(6, 1, 4, 4, generator=g)
    for s in (Schedule(), Schedule(kind="cosine"), Schedule(zero_terminal_snr=True)):
        t = torch.tensor([0, 1, 50, 100, 148, 149])
        x_t = s.q_sample(x0, t, eps)
        v = s.target(x0, eps, t, "v")
        ab = s.alpha_bar[t].view(-1, 1, 1, 1)
        assert torch.allclose(v, ab.sqrt() * eps - (1 - ab).sqrt() * x0)
        e2, x02 = s.eps_x0(x_t, t, v, "v")
        assert torch.allclose(e2, eps, atol=1e-5) and torch.allclose(x02, x0, atol=1e-5)
        assert torch.equal(s.target(x0, eps, t, "eps"), eps)
        if not s.zero_terminal_snr:
            e3, x03 = s.eps_x0(x_t, t, eps, "eps")
            assert torch.equal(e3, eps) and torch.allclose(x03, x0, atol=1e-3)
    z = Schedule(zero_terminal_snr=True)
    t = torch.full((6,), 149)
    x_T = z.q_sample(x0, t, eps)
    assert torch.equal(x_T, eps)  # pure noise: the image is gone
    assert torch.equal(z.target(x0, eps, t, "v"), -x0)  # v = -x0 at SNR = 0: the network must name the image
    with pytest.raises(CourseError, match="divides by 0.*prediction='v'"):
        z.eps_x0(x_T, t, eps, "eps")
    with pytest.raises(CourseError, match="unknown prediction target 'x0'"):
        z.target(x0, eps, t, "x0")


def test_reverse_steps_given_x0_match_the_eps_form_and_work_at_zero_snr():
    s = Schedule()
    g = torch.Generator().manual_seed(2)
    x, eps, z = (torch.randn(3, 1, 8, 8, generator=g) for _ in range(3))
    for t in (149, 75, 1, 0):
        tt = torch.full((3,), t)
        e, x0 = s.eps_x0(x, tt, eps, "eps")
        for sig in ("beta", "beta_tilde"):
            assert torch.allclose(s.p_step(x, tt, eps, z, sig, x0=x0), s.p_step(x, tt, eps, z, sig), atol=1e-4)
        assert torch.allclose(ddim_step(s, x, t, t - 1, eps, 0.5, z, x0=x0), ddim_step(s, x, t, t - 1, eps, 0.5, z),
                              atol=1e-5)
    zs = Schedule(zero_terminal_snr=True)
    t = torch.full((3,), 149)
    v = torch.randn(3, 1, 8, 8, generator=g)
    e, x0 = zs.eps_x0(x, t, v, "v")
    step = zs.p_step(x, t, e, z, "beta", x0=x0)
    assert torch.allclose(step, zs.alpha_bar[148].sqrt() * x0 + z, atol=1e-6)  # alpha_T = 0: x_t drops out
    assert torch.isfinite(ddim_step(zs, x, 149, 100, e, 0.0, None, x0=x0)).all()
    with pytest.raises(CourseError, match="prediction='v'"):
        zs.p_step(x, t, e, z)
    with pytest.raises(CourseError, match="prediction='v'"):
        ddim_step(zs, x, 149, 100, e)


def test_config_fields_defaults_and_old_checkpoints():
    cfg = unet.UNetConfig()
    assert (cfg.schedule, cfg.zero_terminal_snr, cfg.prediction) == ("linear", False, "eps")
    d = cfg.to_dict()
    assert not {"schedule", "zero_terminal_snr", "prediction"} & set(d)  # configs written before they existed
    assert unet.UNetConfig.from_dict(d) == cfg
    v = cfg.replace(schedule="cosine", zero_terminal_snr=True, prediction="v")
    assert v.to_dict()["schedule"] == "cosine" and unet.UNetConfig.from_dict(v.to_dict()) == v
    assert v.diffusion == DiffusionConfig(schedule="cosine", zero_terminal_snr=True, prediction="v", T=150,
                                          beta_start=1e-4, beta_end=0.02)
    for name, params in (("baseline", 240385), ("optimized", 1979777)):
        assert cu.count_params(cu.build(name, schedule="cosine", prediction="v")) == params


@pytest.mark.parametrize("overrides, match", [
    ({"zero_terminal_snr": True}, r"zero_terminal_snr=True needs prediction='v'.*divides by 0.*Fix: prediction='v'"),
    ({"schedule": "sigmoid"}, r"schedule='sigmoid'; choose one of"),
    ({"prediction": "x0"}, r"prediction='x0'; choose one of"),
    ({"schedule": "linear_scaled", "T": 20}, r"needs T > 20"),
])
def test_invalid_combinations_fail_at_construction(overrides, match):
    with pytest.raises(CourseError, match=match):
        cu.build("baseline", **overrides)


def test_the_loss_uses_the_models_target():
    torch.manual_seed(0)
    x0 = torch.rand(8, 1, 16, 16) * 2 - 1
    for pred in PREDICTIONS:
        model = cu.build("baseline", prediction=pred, schedule="cosine")
        s = Schedule.from_config(model.config)
        loss = diffusion_loss(model, x0, s, torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)  # the same draws, by hand
        t = torch.randint(0, s.T, (8,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        target = noise if pred == "eps" else s.target(x0, noise, t, "v")
        with torch.no_grad():
            want = torch.nn.functional.mse_loss(model(s.q_sample(x0, t, noise), t), target)
        assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    with pytest.raises(CourseError, match="not the one this model was trained with"):
        diffusion_loss(cu.build("baseline", schedule="cosine"), x0, Schedule())


@pytest.mark.parametrize("name, fields", SETTINGS, ids=[n for n, _ in SETTINGS])
def test_each_setting_trains_and_samples(tiny_data, name, fields):
    torch.manual_seed(0)
    model = cu.build("baseline", **fields)
    h = train(model, tiny_data, 2, batch_size=16, progress=False, device="cpu")
    assert len(h.losses) == 2 and all(math.isfinite(v) for v in h.losses)
    for kwargs in ({}, {"sigma": "beta_tilde"}, {"sampler": "ddim", "steps": 5}, {"sampler": "ddim", "steps": 5,
                                                                                   "eta": 1.0}):
        x = sample(model, 2, seed=0, **kwargs)
        assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all(), kwargs


def test_ddim_with_all_steps_and_eta_1_is_ddpm_beta_tilde_for_v_models_too():
    torch.manual_seed(0)
    model = cu.build("baseline", zero_terminal_snr=True, prediction="v").eval()
    a = sample(model, 2, seed=3, sampler="ddim", steps=150, eta=1.0)
    b = sample(model, 2, seed=3, sigma="beta_tilde")
    assert torch.allclose(a, b, atol=1e-4)


def test_sampling_refuses_another_schedule_than_the_models():
    model = cu.build("baseline", schedule="cosine")
    with pytest.raises(CourseError, match=r"linear \(T=150\) is not the one this model was trained with: cosine"):
        sample(model, 1, schedule=Schedule())
    with pytest.raises(CourseError, match="zero terminal SNR.*Fix: leave schedule out"):
        sample(cu.build("baseline"), 1, schedule=Schedule(zero_terminal_snr=True))
    assert sample(model, 1, schedule=Schedule(T=3, kind="cosine")).shape == (1, 1, 16, 16)  # a shorter T is fine


def test_a_checkpoint_of_another_schedule_is_refused(tmp_path):
    torch.manual_seed(0)
    model = cu.build("baseline", schedule="cosine", zero_terminal_snr=True, prediction="v")
    p = save_checkpoint(tmp_path / "cos.safetensors", model, "baseline", step=0)
    loaded, header = load_checkpoint(p)  # built from the file's own config
    assert loaded.config == model.config and header["config"]["prediction"] == "v"
    for kwargs in ({"model": cu.build("baseline")}, {"preset": "baseline"},
                   {"model": cu.build("baseline", schedule="cosine", prediction="v")}):
        with pytest.raises(CheckpointError, match=r"trained for the diffusion settings \{'schedule': 'cosine', "
                                                  r"'zero_terminal_snr': True, 'prediction': 'v'\}.* uses .*Fix: "
                                                  r"load_checkpoint\(path\)"):
            load_checkpoint(p, **kwargs)
    same = cu.build("baseline", schedule="cosine", zero_terminal_snr=True, prediction="v")
    assert torch.equal(load_checkpoint(p, model=same)[0].out[-1].weight, model.out[-1].weight)
    # a default-schedule checkpoint (no diffusion fields in its config, as every shipped one) loads as before
    q = save_checkpoint(tmp_path / "lin.safetensors", cu.build("baseline"), "baseline", step=0)
    assert load_checkpoint(q, "baseline")[0].config == unet.BASELINE
    with pytest.raises(CheckpointError, match="'prediction': 'eps'.*uses.*'prediction': 'v'"):
        load_checkpoint(q, model=cu.build("baseline", prediction="v"))


def test_lesson_functions():
    names = list(ns.SETTINGS)
    c = ns.curves()
    assert set(c) == set(names)
    for n in names:
        assert set(c[n]) == {"t", "alpha_bar", "beta", "snr"} and all(v.shape == (150,) for v in c[n].values())
        assert torch.allclose(c[n]["snr"], c[n]["alpha_bar"] / (1 - c[n]["alpha_bar"]), rtol=1e-3)
    term = ns.terminal()
    assert term["linear"]["alpha_bar_T"] == pytest.approx(0.2192, abs=1e-4)
    assert term["linear"]["signal_T"] == pytest.approx(0.4682, abs=1e-3)
    assert term["linear_zero_snr"]["snr_T"] == 0.0 and term["linear_zero_snr"]["alpha_bar_T"] == 0.0
    assert term["linear_zero_snr"]["snr_0"] == pytest.approx(term["linear"]["snr_0"], rel=1e-5)
    assert term["cosine"]["snr_T"] < 1e-6 and term["linear_scaled"]["snr_T"] < 1e-4
    images = torch.linspace(-1, 1, 4 * 256).view(4, 1, 16, 16)
    x = ns.noised(images, ts=(0, 75, 149), names=["linear", "linear_zero_snr"], seed=1)
    assert set(x) == {"linear", "linear_zero_snr"} and x["linear"].shape == (3, 4, 1, 16, 16)
    assert torch.equal(x["linear"], ns.noised(images, ts=(0, 75, 149), names="linear", seed=1)["linear"])
    s = Schedule()
    assert torch.allclose(x["linear"][0], s.alpha_bar[0].sqrt() * images + (1 - s.alpha_bar[0]).sqrt()
                          * (x["linear_zero_snr"][2]), atol=1e-6)  # the same noise everywhere; zero SNR: x_T = eps
    m = ns.mismatch(-torch.ones(32, 1, 16, 16), seed=0)  # an all-black image keeps sqrt(abar_T) * -1 as its mean
    assert m["x_T"].shape == m["noise"].shape == (32, 1, 16, 16) and m["pixel_mean"].shape == (1, 16, 16)
    assert m["alpha_bar_T"] == pytest.approx(0.2192, abs=1e-4)
    assert m["mean"] == pytest.approx(-0.4682, abs=0.02) and m["std"] == pytest.approx((1 - 0.2192) ** 0.5, abs=0.02)
    assert abs(m["noise_mean"]) < 0.02 and m["noise_std"] == pytest.approx(1, abs=0.02)
    assert m["pixel_mean_max"] < 0 and m["pixel_std_max"] < 1.3
    z = ns.mismatch(-torch.ones(32, 1, 16, 16), name="linear_zero_snr", seed=0)
    assert z["snr_T"] == 0.0 and abs(z["mean"]) < 0.02  # zero terminal SNR: x_T is the noise itself
    with pytest.raises(CourseError, match="unknown schedule setting 'sigmoid'"):
        ns.curves(["sigmoid"])
    with pytest.raises(CourseError, match=r"\[0, 149\]"):
        ns.noised(images, ts=(150,))


def test_sampling_from_a_given_start_and_the_true_marginal():
    torch.manual_seed(0)
    model = cu.build("baseline")
    black = -torch.ones(4, 1, 16, 16)
    start = ns.true_start(black, "linear", seed=3)
    assert torch.equal(start, ns.true_start(black, "linear", seed=3)) and start.shape == black.shape
    assert start.mean().item() == pytest.approx(-math.sqrt(0.2192), abs=0.15)  # the image's trace: sqrt(abar_T) x0
    assert ns.true_start(black, "linear_zero_snr", seed=3).mean().abs() < 0.2  # zero terminal SNR: no trace left
    a = sample(model, 4, seed=1, sampler="ddim", steps=2, eta=0.0, start=start)
    b = sample(model, 4, seed=1, sampler="ddim", steps=2, eta=0.0, start=start)
    c = sample(model, 4, seed=1, sampler="ddim", steps=2, eta=0.0)
    assert torch.equal(a, b) and not torch.equal(a, c)  # the start is used (deterministic DDIM: it decides all)
    with pytest.raises(CourseError, match="start must have the shape"):
        sample(model, 3, start=start)


def test_train_preset_with_overrides_trains_its_own_variant(tmp_path, monkeypatch):
    from course_utils.runs import run_dir, train_preset, variant_name
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path))
    settings = ns.SETTINGS["linear_zero_snr"]
    assert variant_name("baseline", settings) == "baseline+prediction=v+schedule=linear+zero_terminal_snr=True"
    model, hist = train_preset("baseline", "ci", overrides=settings, progress=False)
    assert model.config.zero_terminal_snr and model.config.prediction == "v" and hist.steps == 6
    folder = run_dir("baseline", "ci", 0, settings)
    assert (folder / "model.safetensors").is_file() and not run_dir("baseline", "ci", 0).exists()
    again, _ = train_preset("baseline", "ci", overrides=settings, progress=False)  # reused, not retrained
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(CourseError, match="unknown U-Net config fields .'colour'"):
        train_preset("baseline", "ci", overrides={"colour": "red"}, progress=False)


def test_schedule_parameters_and_time_scale_are_config_fields(tmp_path):
    m = cu.build("baseline", beta_end=0.05)
    s = Schedule.from_config(m.config)
    assert s.betas[-1].item() == pytest.approx(0.05) and s.alpha_bar[-1] < Schedule().alpha_bar[-1]
    assert m.config.to_dict()["beta_end"] == 0.05 and "beta_end" not in cu.build("baseline").config.to_dict()
    assert "time_scale" not in unet.OPTIMIZED.to_dict()
    path = save_checkpoint(tmp_path / "b.safetensors", m, "baseline", step=0)
    with pytest.raises(CheckpointError, match="beta_end"):
        load_checkpoint(path, "baseline")  # another schedule than the preset's: refused
    assert load_checkpoint(path)[0].config.beta_end == 0.05
    torch.manual_seed(0)
    a = cu.build("sinusoidal").eval()
    torch.manual_seed(0)
    b = cu.build("sinusoidal", time_scale="t").eval()
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 140])
    with torch.no_grad():
        assert not torch.allclose(a(x, t), b(x, t))  # the embedding sees 3 and 140 instead of 0.02 and 0.93
    with pytest.raises(CourseError, match="time_scale='seconds'"):
        cu.build("baseline", time_scale="seconds")
    with pytest.raises(CourseError, match="beta_start <= beta_end"):
        cu.build("baseline", beta_end=1.5)


class _ZeroEps(torch.nn.Module):
    """A 'network' that always predicts zero noise, with the baseline's config (any schedule)."""

    def __init__(self, **fields):
        super().__init__()
        self.config = unet.BASELINE.replace(**fields)
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, c=None, c_mask=None):
        return torch.zeros_like(x) * self.w


def test_clipping_the_clean_image_estimate():
    model = _ZeroEps(schedule="cosine")
    s = Schedule.from_config(model.config)
    x_T = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    # one deterministic DDIM step to the image: x0 = x_T / sqrt(abar_T) (huge under cosine), clipped or not
    raw = sample(model, 3, sampler="ddim", steps=1, eta=0.0, start=x_T)
    clipped = sample(model, 3, sampler="ddim", steps=1, eta=0.0, start=x_T, clip_x0=True)
    expect = (x_T / s.alpha_bar[-1].sqrt()).clamp(-1, 1)
    assert torch.allclose(clipped, expect, atol=1e-5) and torch.allclose(raw, expect, atol=1e-5)
    # DDPM: unclipped, the cosine schedule's last beta (0.999) multiplies the first step by 1/sqrt(0.001);
    # clipped, every step stays a mix of x0 in [-1, 1] and the current x
    a = sample(model, 3, seed=1, start=x_T)
    b = sample(model, 3, seed=1, start=x_T, clip_x0=True)
    assert (a.abs() == 1).float().mean() > (b.abs() == 1).float().mean()
