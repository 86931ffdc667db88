"""Training gives the same weights and losses, bit for bit, as the loop did before resume became a callback and the
loss a pluggable step (issue 21): a plain run, a run with an EMA, a run stopped at step 2 and resumed from its
checkpoint, a cosine learning-rate run and a class-conditional run.

Two references:
- ``_frozen_train``, a frozen minimal copy of the old loop (``Trainer.seek``/``one_step``/``fit``, the EMA's warm-up
  rule, ``diffusion_loss`` and resume as they were at commit 639d817), run on this machine beside the real code;
- ``DIGESTS``: SHA-256 digests of the weights and the exact losses that the old code gave (commit 639d817, torch
  2.14.1 on one thread of an Intel Xeon). Float results depend on the CPU and torch's kernels, so these are compared only on the
  machine kind and torch version that recorded them; the frozen copy is compared everywhere.
"""
from __future__ import annotations

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

import course_utils as cu
from course_utils.data import Batches, FashionData
from course_utils.diffusion import Schedule
from course_utils.errors import CourseError
from course_utils.evaluation.classifier import FashionClassifier, load_classifier, train_classifier
from course_utils.system import cpu_model
from course_utils.train import EMA, LRSchedule, Resume, Trainer, train

STEPS, BATCH = 4, 32

# recorded with the old code (commit 639d817) by the same scenarios, torch.set_num_threads(1)
RECORDED_ON = {"torch": "2.14.1", "cpu": "Intel(R) Xeon(R) Processor"}
DIGESTS = {
    "plain": ("7d77ed62d33f9b87", None,
              [1.2516096830368042, 1.1818835735321045, 1.093653917312622, 1.0431243181228638]),
    "ema": ("7d77ed62d33f9b87", "7ea50c50e245c9a3",
            [1.2516096830368042, 1.1818835735321045, 1.093653917312622, 1.0431243181228638]),
    "cosine": ("9dcce9713236d1eb", None,
               [1.2516096830368042, 1.1818835735321045, 1.093653917312622, 1.054125428199768]),
    "conditional": ("9c88eae407bd6afa", None,
                    [1.121091604232788, 1.0704147815704346, 1.01557457447052, 1.0089255571365356]),
    "resumed": ("b6a38d49675acf77", "2ca9df48331c75d2",
                [1.2516096830368042, 1.1818835735321045, 1.105303168296814, 1.0410220623016357]),
}


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _data() -> FashionData:
    g = torch.Generator().manual_seed(0)
    return FashionData(torch.rand(256, 1, 16, 16, generator=g) * 2 - 1, torch.randint(0, 10, (256,), generator=g),
                       "train", "synthetic")


def _model(conditional: bool = False):
    torch.manual_seed(0)
    return cu.build("baseline", num_classes=10) if conditional else cu.build("baseline")


def digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --- the frozen copy of the old loop ------------------------------------------------------------------------------
def _frozen_train(model, data, steps, ema_decay=None, cosine_warmup=None, conditional=False, stop_at=None):
    """The loop as it was: reseeded by step (``seek``), the DDPM loss drawn from one generator, Adam, the EMA with
    its warm-up; ``stop_at``: stop there and resume (model, optimizer and EMA as a checkpoint restores them exactly,
    the streams reseeded at that step, the EMA's count set to that step)."""
    seed, lr = 0, 1e-3
    model.train()
    schedule = Schedule.from_config(model.config)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def seek(step):
        torch.manual_seed(seed)
        offset = seed + 7919 * step
        return torch.Generator().manual_seed(offset), Batches(data, BATCH, flip=True, seed=offset, rank=0, world=1)

    def average(averaged, current, num_averaged):
        if not averaged.is_floating_point():
            return current
        n = int(num_averaged)
        return averaged.lerp(current, 1 - min(ema_decay, (1 + n) / (10 + n)))

    ema = None
    if ema_decay:
        ema = AveragedModel(model, avg_fn=average, use_buffers=True)
        ema.module.eval().requires_grad_(False)
    gen, batches = seek(0)
    losses = []
    for step in range(steps):
        if step == stop_at:
            gen, batches = seek(step)
            if ema is not None:
                ema.n_averaged.fill_(step)
        x, y = next(batches)
        if cosine_warmup is not None:
            for group in opt.param_groups:
                group["lr"] = (lr * (step + 1) / cosine_warmup if step < cosine_warmup else
                               lr * 0.5 * (1 + math.cos(math.pi * (step - cosine_warmup) / max(1, steps - cosine_warmup))))
        n = x.shape[0]
        t = torch.randint(0, schedule.T, (n,), generator=gen, device="cpu")
        noise = torch.randn(x.shape, generator=gen, device="cpu")
        x_t = schedule.q_sample(x, t, noise)
        if conditional:
            keep = torch.rand(n, generator=gen) >= 0.1
            pred = model(x_t, t, y, keep)
        else:
            pred = model(x_t, t)
        loss = F.mse_loss(pred, noise)
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update_parameters(model)
    model.eval()
    return model, (ema.module if ema is not None else None), losses


def _new(name, tmp_path):
    """The scenario ``name`` through today's train()."""
    data = _data()
    kw = dict(batch_size=BATCH, progress=False, device="cpu")
    if name == "resumed":
        ck = tmp_path / "run.safetensors"
        train(_model(), data, 2, ema_decay=0.9, checkpoint=ck, save_every=2, **kw)
        model = _model()
        h = train(model, data, STEPS, ema_decay=0.9, checkpoint=ck, save_every=2, resume=True, **kw)
        return model, h.ema, h.losses
    model = _model(name == "conditional")
    extra = {"plain": {}, "ema": {"ema_decay": 0.9}, "cosine": {"callbacks": [LRSchedule.cosine(warmup=1)]},
             "conditional": {"conditional": True}}[name]
    h = train(model, data, STEPS, **extra, **kw)
    return model, h.ema, h.losses


def _frozen(name):
    args = {"plain": {}, "ema": {"ema_decay": 0.9}, "cosine": {"cosine_warmup": 1},
            "conditional": {"conditional": True}, "resumed": {"ema_decay": 0.9, "stop_at": 2}}[name]
    return _frozen_train(_model(name == "conditional"), _data(), STEPS, **args)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


@pytest.mark.parametrize("name", list(DIGESTS))
def test_training_matches_the_frozen_old_loop_bit_for_bit(name, tmp_path):
    model, ema, losses = _new(name, tmp_path)
    old_model, old_ema, old_losses = _frozen(name)
    assert losses == old_losses  # exact floats
    assert not _same(model, old_model), f"{name}: weights differ in {_same(model, old_model)[:3]}"
    assert (ema is None) == (old_ema is None)
    if ema is not None:
        assert not _same(ema, old_ema), f"{name}: EMA weights differ in {_same(ema, old_ema)[:3]}"


@pytest.mark.parametrize("name", list(DIGESTS))
def test_training_matches_the_recorded_digests(name, tmp_path):
    """Bit for bit on the machine kind and torch version that recorded the digests; elsewhere (another CPU's kernels
    round differently in the last bits) the losses must agree to a relative 2e-3 (the scenarios differ by 1% and more), and the digests are not compared."""
    here = {"torch": torch.__version__, "cpu": cpu_model()}
    model, ema, losses = _new(name, tmp_path)
    want_model, want_ema, want_losses = DIGESTS[name]
    if any(not here[k].startswith(v) for k, v in RECORDED_ON.items()):
        assert losses == pytest.approx(want_losses, rel=2e-3), f"recorded on {RECORDED_ON}; this is {here}"
        return
    assert losses == want_losses
    assert digest(model) == want_model
    assert (digest(ema) if ema is not None else None) == want_ema


def test_the_resume_callback_is_what_train_resume_does(tmp_path):
    """Trainer with EMA and Resume callbacks continues a checkpoint exactly as train(..., resume=True) does."""
    data, ck = _data(), tmp_path / "run.safetensors"
    kw = dict(batch_size=BATCH, progress=False, device="cpu")
    train(_model(), data, 2, ema_decay=0.9, checkpoint=ck, save_every=2, **kw)
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(ck.read_bytes())  # train(..., resume=True) writes its own checkpoint over ck at the end
    via_train_model = _model()
    via_train = train(via_train_model, data, STEPS, ema_decay=0.9, checkpoint=ck, resume=True, **kw)
    model = _model()
    resume = Resume(copy)
    h = Trainer(model, data, STEPS, batch_size=BATCH, device="cpu", callbacks=[EMA(0.9), resume]).fit()
    assert resume.start == 2 and h.steps == STEPS
    assert h.losses == via_train.losses and len(h.losses) == STEPS
    assert not _same(model, via_train_model) and not _same(h.ema, via_train.ema)


def test_resume_without_a_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(CourseError, match="needs an existing checkpoint.*Fix: train without --resume"):
        Resume(tmp_path / "missing.safetensors")
    with pytest.raises(CourseError, match="needs an existing checkpoint"):
        train(_model(), _data(), 2, batch_size=BATCH, progress=False, device="cpu", resume=True)


# --- the metric classifier trains with Trainer too ----------------------------------------------------------------
def _frozen_classifier(train_data, steps, seed=0, batch_size=64, lr=2e-3):
    """The classifier's own loop as it was (commit 639d817): Adam, OneCycleLR, label smoothing 0.05."""
    torch.manual_seed(seed)
    model = FashionClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    batches = Batches(train_data, batch_size, seed=seed)
    model.train()
    losses = []
    for _ in range(steps):
        x, y = next(batches)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


def _clf_data():
    g = torch.Generator().manual_seed(1)
    make = lambda n, split: FashionData(torch.rand(n, 1, 16, 16, generator=g) * 2 - 1,  # noqa: E731
                                        torch.randint(0, 10, (n,), generator=g), split, "synthetic")
    return make(256, "train"), make(100, "test")


def test_the_classifier_trains_with_trainer_as_its_old_loop_did(tmp_path):
    train_data, test_data = _clf_data()
    out = tmp_path / "clf.safetensors"
    model, man = train_classifier(steps=4, seed=0, batch_size=64, progress=False, train_data=train_data,
                                  test_data=test_data, out=out, threads=1, device="cpu")
    old, losses = _frozen_classifier(train_data, 4)
    assert not _same(model, old), _same(model, old)[:3]
    running = losses[0]
    for v in losses[1:]:
        running = 0.98 * running + 0.02 * v
    assert man["final_train_loss"] == round(running, 4) and man["steps"] == 4
    assert digest(load_classifier(out)) == digest(model)  # what was written is what was trained
    if all(({"torch": torch.__version__, "cpu": cpu_model()})[k].startswith(v) for k, v in RECORDED_ON.items()):
        assert digest(model) == "0cac519f6fe20ac7"  # the old loop's weights (commit 639d817)


def test_a_five_step_classifier_run_works():
    """torch's OneCycleLR divides by zero for 5 steps at pct_start=0.2; the old loop crashed there."""
    train_data, test_data = _clf_data()
    model, man = train_classifier(steps=5, batch_size=64, progress=False, train_data=train_data,
                                  test_data=test_data, threads=1, device="cpu")
    assert man["steps"] == 5 and math.isfinite(man["final_train_loss"])


def test_unknown_keywords_are_named():
    with pytest.raises(TypeError, match="unknown keyword 'ema'. Did you mean 'ema_decay'"):
        train(_model(), _data(), 1, ema=0.9)
    with pytest.raises(TypeError, match="unknown keyword 'step'.*steps"):
        train_classifier(step=3)
    with pytest.raises(CourseError, match="loss_fn must be a function"):
        Trainer(_model(), _data(), 1, device="cpu", loss_fn="mse")
    with pytest.raises(CourseError, match="callbacks must be Callback objects"):
        Trainer(_model(), _data(), 1, device="cpu", callbacks=[lambda tr: None])


def test_a_custom_loss_step_is_used():
    """loss_fn replaces the DDPM loss: here a loss that only asks the network's output to be 0."""
    seen = []

    def zero_output(tr, batch):
        x, y = batch
        seen.append((tuple(x.shape), tuple(y.shape)))
        return tr.net(x, torch.zeros(len(x), dtype=torch.long)).pow(2).mean()

    h = Trainer(_model(), _data(), 3, batch_size=BATCH, device="cpu", loss_fn=zero_output).fit()
    assert seen == [((BATCH, 1, 16, 16), (BATCH,))] * 3 and len(h.losses) == 3
    assert h.losses != _frozen("plain")[2][:3]
