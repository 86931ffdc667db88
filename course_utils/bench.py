"""Speed: training steps/s and sampling images/s per preset, medians of repeats (``python -m course_utils bench``)."""
from __future__ import annotations

import statistics
import time


def bench(names: list[str] | None = None, repeats: int = 3, steps: int = 5, samples: int = 16, device=None) -> dict:
    """Median training steps/s (batch 128) and sampling images/s of each preset, plus the data pipeline's time."""
    import torch

    from .data import Batches, load
    from .diffusion import Schedule, sample
    from .train import diffusion_loss, pick_device
    from .unet import LADDER, build, count_params, same_network
    device = pick_device(device)
    names = names or LADDER
    data = load("train")
    batches = Batches(data.to(device), 128, seed=0)
    t0 = time.perf_counter()
    for _ in range(len(data) // 128):  # data pipeline: one full epoch of batches with flips
        next(batches)
    data_epoch = time.perf_counter() - t0
    sched = Schedule()
    # One model per distinct network (no_extra_skip is the same network as residual: measured once). The repeats go
    # round the presets (preset A, B, C, A, B, C, ...), so a slow moment of a shared machine costs every preset a
    # little instead of one preset a lot; each preset's value is the median of its repeats.
    twins, models, steppers = same_network(names), {}, {}
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

        for _ in range(2):  # warm-up
            step()
        models[name], steppers[name] = model, step
    train_times = {name: [] for name in models}
    sample_times = {name: [] for name in models}
    for r in range(repeats):
        for name, step in steppers.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(steps):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            train_times[name].append(steps / (time.perf_counter() - t))
    for r in range(max(1, repeats // 2)):
        for name, model in models.items():
            t = time.perf_counter()
            sample(model, samples, seed=r, device=device)
            sample_times[name].append(samples / (time.perf_counter() - t))
    rows = []
    for name in names:
        twin = twins[name]
        rows.append({"name": name, "params": count_params(models[twin]),
                     "train_steps_per_s": statistics.median(train_times[twin]),
                     "sample_images_per_s": statistics.median(sample_times[twin]), "repeats": repeats,
                     "batch": 128, "sample_n": samples, "T": sched.T, **({"same_network_as": twin} if twin != name else {})})
    return {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "data_seconds_per_epoch": data_epoch, "presets": rows}
