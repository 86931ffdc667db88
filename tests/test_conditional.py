"""The class-conditional U-Net (optimized_cond, notebook 10): how the label enters, context dropout, and guided
sampling e = (1 + w) e_cond - w e_uncond with the DDPM and the DDIM sampler."""
import pytest
import torch

import course_utils as cu
from course_utils.diffusion import Schedule, sample
from course_utils.train import diffusion_loss


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = cu.build("optimized_cond").eval()
    with torch.no_grad():  # make the label embeddings matter at initialization
        for p in list(m.c_emb1.parameters()) + list(m.c_emb2.parameters()):
            p.add_(torch.randn_like(p) * 0.5)
    return m


def test_the_preset_has_the_original_courses_parameter_count():
    m = cu.build("optimized_cond")
    assert cu.count_params(m) == 2_002_561 and m.config.num_classes == 10
    # two embedding blocks, Linear(10, C) -> GELU -> Linear(C, C), for C = 128 and 64
    assert cu.count_params(m) - cu.count_params(cu.build("optimized")) == (10 * 128 + 128 + 128 * 128 + 128) + (
        10 * 64 + 64 + 64 * 64 + 64)


def test_the_label_changes_the_output_and_the_mask_removes_it(model):
    x, t = torch.randn(4, 1, 16, 16), torch.tensor([10, 50, 100, 149])
    a, b = torch.tensor([0, 1, 2, 3]), torch.tensor([9, 8, 7, 6])
    with torch.no_grad():
        assert not torch.allclose(model(x, t, a), model(x, t, b))
        masked_a = model(x, t, a, torch.zeros(4))
        assert torch.equal(masked_a, model(x, t, b, torch.zeros(4)))  # masked: the label is gone
        assert torch.equal(masked_a, model(x, t))                      # no label at all = masked
        part = model(x, t, a, torch.tensor([1.0, 0.0, 1.0, 0.0]))
        assert torch.equal(part[0], model(x, t, a)[0]) and torch.equal(part[1], masked_a[1])
    with pytest.raises(cu.CourseError, match="class labels must have shape"):
        model(x, t, torch.tensor([1, 2]))


def test_context_dropout_in_the_loss(model):
    x0 = torch.randn(64, 1, 16, 16)
    labels = torch.randint(0, 10, (64,))
    seen = []
    original = model.forward

    def spy(x, t, c=None, c_mask=None):
        seen.append(c_mask.clone())
        return original(x, t, c, c_mask)
    model.forward = spy
    try:
        diffusion_loss(model, x0, Schedule(), torch.Generator().manual_seed(0), labels=labels, p_uncond=0.25)
    finally:
        del model.forward
    kept = seen[0].float().mean().item()
    assert 0.6 < kept < 0.9  # about 1 - p_uncond of the labels are kept


@pytest.mark.parametrize("kw", [{}, {"sampler": "ddim", "steps": 10, "eta": 1.0}])
def test_guided_sampling(model, kw):
    labels = torch.tensor([0, 3, 5, 9])
    plain = sample(model, 4, seed=1, labels=labels, guidance=0.0, **kw)
    guided = sample(model, 4, seed=1, labels=labels, guidance=2.0, **kw)
    assert plain.shape == guided.shape == (4, 1, 16, 16) and not torch.equal(plain, guided)
    # the guidance formula, checked on one network call: (1 + w) e_cond - w e_uncond
    from course_utils.diffusion import guided_output
    x, t = torch.randn(4, 1, 16, 16), torch.full((4,), 80)
    with torch.no_grad():
        e_c, e_u = model(x, t, labels), model(x, t, labels, torch.zeros(4))
        assert torch.allclose(guided_output(model, x, t, labels, 2.0), 3 * e_c - 2 * e_u, atol=1e-5)


def test_the_guidance_sweep_measures_accuracy_fid_and_spread(model):
    from course_utils.evaluation import guidance
    res = guidance.guidance_sweep(model, weights=(0.0, 2.0), n_per_class=2, sampler="ddim", steps=2, eta=1.0)
    assert [r["w"] for r in res["rows"]] == [0.0, 2.0]
    for r in res["rows"]:
        assert 0 <= r["accuracy"] <= 1 and len(r["per_class"]) == 10 and r["fid"] > 0 and r["spread"] > 0
    assert 0.7 < res["real"]["accuracy"] <= 1 and res["real"]["spread"] > 0
    text = guidance.format_sweep(res)
    assert text.splitlines()[0].split()[:4] == ["w", "accuracy", "FID", "spread"] and "real" in text
    labels = torch.tensor([0, 0, 1, 1])
    acc, per = guidance.accuracy(torch.eye(10)[[0, 1, 1, 1]], labels)
    assert acc == 0.75 and per[:2] == [0.5, 1.0]
    with pytest.raises(cu.CourseError, match="class-conditional"):
        guidance.guidance_sweep(cu.build("baseline"))
