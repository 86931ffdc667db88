"""Notebook 03's measurements: what BatchNorm and GroupNorm actually compute.

* :func:`batch_dependence` - one image normalized alone and inside two different batches, by a
  BatchNorm and a GroupNorm layer, in train and in eval mode.
* :func:`model_batch_dependence` - the same question for a whole U-Net.
* :func:`groupnorm_demo` - what ``nn.GroupNorm(num_groups, num_channels)``'s arguments mean, on a
  tensor whose channel ``c`` holds the value ``c`` everywhere.
* :func:`valid_group_counts` / :func:`try_group_counts` - which group counts a layer (or a whole
  preset) accepts.

Everything here is a pure function returning numbers; the ``format_*`` helpers turn them into the
text the notebook prints.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from course_utils.errors import CourseError
from course_utils.model.blocks import divisors, make_norm
from course_utils.model.unet import build

EPS = 1e-5  # PyTorch's default eps for BatchNorm2d and GroupNorm


def _r(v: float) -> float:
    """Round to 4 decimals without printing -0.0000."""
    return round(float(v), 4) + 0.0


# --- valid group counts -----------------------------------------------------------------------------

def valid_group_counts(*channels: int) -> list[int]:
    """The group counts that divide every given channel count (the common divisors).

    ``valid_group_counts(64)`` -> [1, 2, 4, 8, 16, 32, 64]; ``valid_group_counts(48, 64)`` -> [1, 2, 4, 8, 16].
    """
    if not channels or any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in channels):
        raise CourseError(f"valid_group_counts needs one or more positive integer channel counts, got {channels!r}.")
    common = divisors(channels[0])
    return [d for d in common if all(c % d == 0 for c in channels)]


def try_group_counts(preset: str = "groupnorm", values=range(1, 65), field: str = "groups") -> dict:
    """Build ``preset`` with ``field`` (``"groups"`` or ``"groups_first"``) set to each value.

    Returns {"ok": [values that build], "failed": {value: CourseError message}}. This is the original
    course's exercise "change the group size", done for every value at once.
    """

    if field not in ("groups", "groups_first"):
        raise CourseError(f"field={field!r}: choose 'groups' (most layers) or 'groups_first' (first block and head).")
    ok, failed = [], {}
    for v in values:
        try:
            build(preset, **{field: v})
            ok.append(v)
        except CourseError as e:
            failed[v] = str(e)
    return {"ok": ok, "failed": failed}


# --- what the arguments of nn.GroupNorm mean -------------------------------------------------------

def channel_index_tensor(num_channels: int, size: int = 2) -> torch.Tensor:
    """A (1, C, size, size) tensor whose channel c holds the value c at every pixel."""
    return torch.arange(num_channels, dtype=torch.float32).view(1, num_channels, 1, 1).repeat(1, 1, size, size)


def groupnorm_demo(num_groups: int, num_channels: int, size: int = 2) -> dict:
    """Apply ``nn.GroupNorm(num_groups, num_channels)`` to :func:`channel_index_tensor`.

    Returns the channels of each group, each group's mean and standard deviation, the normalized
    value of every channel (constant over the pixels), and ``max_diff_manual``: the largest gap
    between PyTorch's output and our own (c - group mean) / sqrt(group var + eps). A gap near 0
    proves the first argument is the number of groups, each holding consecutive channels.
    An impossible combination raises :class:`CourseError` (from :func:`course_utils.model.blocks.make_norm`).
    """
    layer = make_norm("group", num_channels, num_groups, where="groupnorm_demo")
    x = channel_index_tensor(num_channels, size)
    with torch.no_grad():
        y = layer(x)
    per = num_channels // num_groups
    groups = [list(range(g * per, (g + 1) * per)) for g in range(num_groups)]
    xs = x.view(num_groups, -1)
    mean, var = xs.mean(1), xs.var(1, unbiased=False)
    manual = (x.view(num_groups, per, -1) - mean[:, None, None]) / torch.sqrt(var[:, None, None] + EPS)
    return {
        "num_groups": num_groups, "num_channels": num_channels, "channels_per_group": per,
        "groups": groups, "group_mean": mean.tolist(), "group_std": var.sqrt().tolist(),
        "output": y[0, :, 0, 0].tolist(),
        "max_diff_manual": float((manual.reshape(y.shape) - y).abs().max()),
    }


def format_groupnorm_demo(d: dict, max_groups: int = 4) -> str:
    """A few lines of text describing :func:`groupnorm_demo`'s result (the first ``max_groups`` groups)."""
    g, c, per = d["num_groups"], d["num_channels"], d["channels_per_group"]
    lines = [f"nn.GroupNorm(num_groups={g}, num_channels={c}): {g} group{'s' * (g != 1)} of {per} channel{'s' * (per != 1)}"]
    for i in range(min(g, max_groups)):
        ch = d["groups"][i]
        span = f"{ch[0]}" if len(ch) == 1 else f"{ch[0]}..{ch[-1]}"
        outs = ", ".join(f"{_r(d['output'][k]):.4f}" for k in ch[:8]) + (", ..." if len(ch) > 8 else "")
        lines.append(f"  group {i}: channels {span:<7} mean {_r(d['group_mean'][i]):8.4f}  std {_r(d['group_std'][i]):7.4f}"
                     f"  -> normalized [{outs}]")
    if g > max_groups:
        lines.append(f"  ... ({g - max_groups} more groups)")
    lines.append(f"  max |torch - our formula| = {_r(d['max_diff_manual']):.4f}")
    return "\n".join(lines)


# --- batch dependence of one layer ------------------------------------------------------------------

def _mode_outputs(layer: nn.Module, image: torch.Tensor, batches: dict[str, torch.Tensor], train: bool):
    """The image's output in each context, from a fresh copy of ``layer`` each time (so train-mode
    forwards cannot change the running statistics between contexts)."""
    out = {}
    for name, mates in batches.items():
        lay = copy.deepcopy(layer).train(train)
        x = torch.cat([image[None], mates]) if mates is not None else image[None]
        with torch.no_grad():
            out[name] = lay(x)[0]
    return out


def batch_dependence(image: torch.Tensor, batch_a: torch.Tensor, batch_b: torch.Tensor, num_groups: int = 1,
                     running_from: torch.Tensor | None = None) -> dict:
    """Normalize the same ``image`` (C, H, W) alone, with batchmates ``batch_a`` and with ``batch_b``.

    Layers: ``BatchNorm2d(C)`` and ``GroupNorm(num_groups, C)`` (weights 1, biases 0), each in train
    and in eval mode. The BatchNorm's running statistics are first set to the exact mean and
    variance of ``running_from`` (default: both batches and the image), as training would
    approximately do. Returns {"bn_train"|"bn_eval"|"gn_train"|"gn_eval":
    {"mean": {context: mean of the normalized image}, "std": {...}, "max_diff": largest change of
    any output pixel across the three contexts}}.
    """
    if image.ndim != 3 or batch_a.ndim != 4 or batch_b.ndim != 4 or \
            batch_a.shape[1:] != image.shape or batch_b.shape[1:] != image.shape:
        raise CourseError(f"batch_dependence needs image (C, H, W) and batches (N, C, H, W) of the same C, H, W; got "
                          f"{tuple(image.shape)}, {tuple(batch_a.shape)}, {tuple(batch_b.shape)}.")
    c = image.shape[0]
    bn = nn.BatchNorm2d(c, momentum=None)  # momentum=None: running stats = cumulative average
    ref = running_from if running_from is not None else torch.cat([image[None], batch_a, batch_b])
    with torch.no_grad():
        bn.train()(ref)
    gn = make_norm("group", c, num_groups, where="batch_dependence")
    contexts = {"alone": None, "with A": batch_a, "with B": batch_b}
    result = {}
    for key, layer in (("bn", bn), ("gn", gn)):
        for mode in ("train", "eval"):
            outs = _mode_outputs(layer, image, contexts, mode == "train")
            stack = torch.stack(list(outs.values()))
            result[f"{key}_{mode}"] = {
                "mean": {k: float(v.mean()) for k, v in outs.items()},
                "std": {k: float(v.std(unbiased=False)) for k, v in outs.items()},
                "max_diff": float((stack - stack[0]).abs().max()),
            }
    return result


def format_batch_dependence(r: dict) -> str:
    names = {"bn_train": "BatchNorm, train mode", "bn_eval": "BatchNorm, eval mode",
             "gn_train": "GroupNorm, train mode", "gn_eval": "GroupNorm, eval mode"}
    ctx = list(next(iter(r.values()))["mean"])
    head = f"{'layer':<22}" + "".join(f"{'mean ' + c:>14}" for c in ctx) + f"{'max change':>12}"
    lines = [head]
    for k, label in names.items():
        row = r[k]
        lines.append(f"{label:<22}" + "".join(f"{_r(row['mean'][c]):>14.4f}" for c in ctx) + f"{_r(row['max_diff']):>12.4f}")
    return "\n".join(lines)


# --- batch dependence of a whole U-Net --------------------------------------------------------------

def model_batch_dependence(model: nn.Module, image: torch.Tensor, batchmates: torch.Tensor, t: int = 75) -> dict:
    """How much the U-Net's prediction for one ``image`` (1, H, W) at step ``t`` changes with context.

    Returns max |difference| of the image's output between: alone vs in the batch, in train mode
    (``train_alone_vs_batch``) and in eval mode (``eval_alone_vs_batch``); and train vs eval mode
    for the image alone (``train_vs_eval``); plus ``output_std`` (the output's spread, for scale).
    The model is copied, so its running statistics are not touched.
    """
    m = copy.deepcopy(model).cpu()
    x1 = image[None].float().cpu()
    xb = torch.cat([x1, batchmates.float().cpu()])
    t1, tb = torch.full((1,), t), torch.full((len(xb),), t)
    out = {}
    with torch.no_grad():
        # eval first: the train-mode forwards below update the copy's running statistics, but train mode
        # itself only uses the current batch's statistics, so the order makes every number independent.
        for mode in ("eval", "train"):
            m.train(mode == "train")
            out[mode] = (m(x1, t1)[0], m(xb, tb)[0])
    return {
        "train_alone_vs_batch": float((out["train"][0] - out["train"][1]).abs().max()),
        "eval_alone_vs_batch": float((out["eval"][0] - out["eval"][1]).abs().max()),
        "train_vs_eval": float((out["train"][0] - out["eval"][0]).abs().max()),
        "output_std": float(out["eval"][0].std()),
    }


def format_model_batch_dependence(results: dict[str, dict]) -> str:
    """A table of :func:`model_batch_dependence` results, one row per model name."""
    lines = [f"{'model':<12}{'train: alone vs batch':>23}{'eval: alone vs batch':>22}{'alone: train vs eval':>22}"
             f"{'output std':>12}"]
    for name, r in results.items():
        lines.append(f"{name:<12}{_r(r['train_alone_vs_batch']):>23.4f}{_r(r['eval_alone_vs_batch']):>22.4f}"
                     f"{_r(r['train_vs_eval']):>22.4f}{_r(r['output_std']):>12.4f}")
    return "\n".join(lines)
