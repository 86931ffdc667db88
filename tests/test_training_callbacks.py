"""The training loop's callbacks: new tricks without editing train(); the EMA averages BatchNorm's statistics."""
import pytest
import torch

import course_utils as cu
from course_utils.checkpoints import load_checkpoint
from course_utils.data import FashionData
from course_utils.train import Autocast, Callback, GradClip, LRSchedule, Trainer, train


@pytest.fixture(scope="module")
def tiny_data():
    g = torch.Generator().manual_seed(0)
    return FashionData(torch.rand(256, 1, 16, 16, generator=g) * 2 - 1, torch.randint(0, 10, (256,), generator=g),
                       "train", "synthetic")


class Recorder(Callback):
    def __init__(self):
        self.events, self.lrs, self.grad_norms = [], [], []

    def before_fit(self, tr): self.events.append("before_fit")
    def before_step(self, tr): self.events.append("before_step")
    def after_fit(self, tr): self.events.append("after_fit")

    def after_step(self, tr):
        self.events.append("after_step")
        self.lrs.append(tr.opt.param_groups[0]["lr"])

    def after_backward(self, tr):
        self.events.append("after_backward")
        self.grad_norms.append(float(torch.cat([p.grad.flatten() for p in tr.model.parameters()]).norm()))


def test_callbacks_see_every_event_in_order(tiny_data):
    rec = Recorder()
    h = train(cu.build("baseline"), tiny_data, 3, batch_size=32, progress=False, device="cpu", callbacks=[rec])
    assert len(h.losses) == 3
    assert rec.events == ["before_fit"] + ["before_step", "after_backward", "after_step"] * 3 + ["after_fit"]


def test_an_lr_schedule_is_a_callback(tiny_data):
    rec = Recorder()
    train(cu.build("baseline"), tiny_data, 6, lr=1e-3, batch_size=32, progress=False, device="cpu",
          callbacks=[LRSchedule.cosine(warmup=2), rec])
    assert rec.lrs[0] == pytest.approx(5e-4) and rec.lrs[1] == pytest.approx(1e-3)
    assert rec.lrs[2:] == sorted(rec.lrs[2:], reverse=True) and rec.lrs[-1] < 2e-4


def test_gradient_clipping_is_a_callback(tiny_data):
    class After(Recorder):
        order = 5  # after the clipping (order 0)
    rec = After()
    train(cu.build("baseline"), tiny_data, 3, batch_size=32, progress=False, device="cpu",
          callbacks=[GradClip(0.01), rec])
    assert max(rec.grad_norms) <= 0.01 * 1.001


def test_autocast_is_a_callback(tiny_data):
    seen = []

    class Peek(Callback):
        def after_backward(self, tr):
            seen.append(torch.is_autocast_enabled("cpu"))

    tr = Trainer(cu.build("baseline"), tiny_data, 2, batch_size=32, device="cpu", callbacks=[Autocast(), Peek()])
    h = tr.fit()
    assert len(h.losses) == 2 and all(torch.isfinite(torch.tensor(h.losses)))
    assert seen == [False, False]  # autocast covers the forward pass only


def test_ema_averages_batchnorm_statistics_too(tiny_data):
    """The EMA's running mean is an average of the model's running means over the steps, not the latest one."""
    torch.manual_seed(0)
    model = cu.build("baseline")
    means = []

    class Track(Callback):
        order = -1  # before the EMA's update

        def after_step(self, tr):
            means.append(tr.model.down0[1].running_mean.clone())

    h = train(model, tiny_data, 20, batch_size=32, progress=False, device="cpu", ema_decay=0.9, callbacks=[Track()])
    ema_mean = h.ema.down0[1].running_mean
    expected = means[0].clone()
    for n, m in enumerate(means[1:], start=1):  # the same warm-up rule as the weights
        expected = expected.lerp(m, 1 - min(0.9, (1 + n) / (10 + n)))
    assert torch.allclose(ema_mean, expected, atol=1e-5)
    assert not torch.allclose(ema_mean, model.down0[1].running_mean, atol=1e-4)


def test_ema_resume_continues_the_warm_up(tmp_path, tiny_data):
    """After --resume the EMA goes on from the saved average with the decay of step 3, 4, 5 (not of step 0)."""
    ck = tmp_path / "r.safetensors"
    torch.manual_seed(0)
    train(cu.build("baseline"), tiny_data, 3, batch_size=32, progress=False, device="cpu", ema_decay=0.9,
          checkpoint=ck, save_every=3)
    expected, _ = load_checkpoint(ck, "baseline", use_ema=True)
    expected = expected.state_dict()
    states = []

    class Track(Callback):
        order = -1

        def after_step(self, tr):
            states.append({k: v.clone() for k, v in tr.model.state_dict().items()})

    resumed = train(cu.build("baseline"), tiny_data, 6, batch_size=32, progress=False, device="cpu", ema_decay=0.9,
                    checkpoint=ck, save_every=3, resume=True, callbacks=[Track()])
    assert len(states) == 3
    for n, state in enumerate(states, start=3):
        for k, v in expected.items():
            if v.is_floating_point():
                expected[k] = v.lerp(state[k], 1 - min(0.9, (1 + n) / (10 + n)))
    got = resumed.ema.state_dict()
    assert all(torch.allclose(got[k], v, atol=1e-6) for k, v in expected.items() if v.is_floating_point())
