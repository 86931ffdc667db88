"""Speed: training steps/s and sampling images/s per preset, beside what each costs in FLOPs
(``python -m course_utils bench``).

Timings use ``torch.utils.benchmark.Timer`` (it synchronizes a GPU and sets the thread count). The
rounds go round the presets (A, B, C, A, B, C, ...), so a slow moment of a shared machine costs every
preset a little instead of one preset a lot; each preset's figure is the median of its rounds.
"""
from __future__ import annotations

import statistics
import time

from course_utils.data import Batches, load
from course_utils.diffusion import Schedule, sample
from course_utils.model.cost import sample_gflops_per_image, train_gflops
from course_utils.model.unet import LADDER, build, count_params, same_network
from course_utils.system import hardware, pick_device
from course_utils.train import diffusion_loss


def bench(names: list[str] | None = None, repeats: int = 3, steps: int = 5, samples: int = 16, device=None) -> dict:
    """Median training steps/s (batch 128) and sampling images/s (all T steps) of each preset over ``repeats``
    rounds, the FLOPs of a training step and of a sampled image, and the data pipeline's time per epoch."""
    import logging

    import torch
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime" noise on a CPU
    from torch.utils.benchmark import Timer

    device = pick_device(device)
    names = names or LADDER
    data = load("train")
    batches = Batches(data.to(device), 128, seed=0)
    t0 = time.perf_counter()
    for _ in range(len(data) // 128):  # data pipeline: one full epoch of batches with flips
        next(batches)
    data_epoch = time.perf_counter() - t0
    sched = Schedule()  # every preset uses the default schedule (bench measures presets)
    twins, models, timers = same_network(names), {}, {}  # one model per distinct network
    threads = torch.get_num_threads()
    for name in [n for n in names if twins[n] == n]:
        torch.manual_seed(0)
        model = build(name).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = next(batches)[0].to(device)

        def step(model=model, opt=opt, x=x):
            loss = diffusion_loss(model, x, sched)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def draw(model=model):
            sample(model, samples, seed=0, device=device)

        step(), step()  # warm-up
        models[name] = model
        timers[name] = (Timer("step()", globals={"step": step}, num_threads=threads),
                        Timer("draw()", globals={"draw": draw}, num_threads=threads))
    train_rates = {name: [] for name in models}
    sample_rates = {name: [] for name in models}
    for _ in range(repeats):
        for name, (train_timer, sample_timer) in timers.items():
            train_rates[name].append(1 / train_timer.timeit(steps).mean)
            sample_rates[name].append(samples / sample_timer.timeit(1).mean)
    rows = []
    for name in names:
        twin = twins[name]
        rate = statistics.median(train_rates[twin])
        gflops = train_gflops(name)
        rows.append({"name": name, "params": count_params(models[twin]),
                     "train_gflops": round(gflops, 3), "sample_gflops_per_image": round(sample_gflops_per_image(name), 4),
                     "train_steps_per_s": rate, "train_gflops_per_s": gflops * rate,
                     "sample_images_per_s": statistics.median(sample_rates[twin]), "repeats": repeats,
                     "steps_per_repeat": steps, "batch": 128, "sample_n": samples, "T": sched.T,
                     **({"same_network_as": twin} if twin != name else {})})
    return {"device": str(device), "torch": torch.__version__, "threads": threads, "hardware": hardware(),
            "data_seconds_per_epoch": data_epoch, "presets": rows}
