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
    from .unet import LADDER, build, count_params
    device = pick_device(device)
    names = names or LADDER
    data = load("train")
    batches = Batches(data.to(device), 128, seed=0)
    t0 = time.perf_counter()
    for _ in range(len(data) // 128):  # data pipeline: one full epoch of batches with flips
        next(batches)
    data_epoch = time.perf_counter() - t0
    rows = []
    sched = Schedule()
    for name in names:
        model = build(name).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, _ = next(batches)
        x = x.to(device)

        def step():
            loss = diffusion_loss(model, x, sched)
            opt.zero_grad()
            loss.backward()
            opt.step()

        for _ in range(2):
            step()
        train_times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(steps):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            train_times.append(steps / (time.perf_counter() - t))
        sample_times = []
        for r in range(max(1, repeats // 2)):
            t = time.perf_counter()
            sample(model, samples, seed=r, device=device)
            sample_times.append(samples / (time.perf_counter() - t))
        rows.append({"name": name, "params": count_params(model), "train_steps_per_s": statistics.median(train_times),
                     "sample_images_per_s": statistics.median(sample_times), "repeats": repeats,
                     "batch": 128, "sample_n": samples, "T": sched.T})
    return {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "data_seconds_per_epoch": data_epoch, "presets": rows}
