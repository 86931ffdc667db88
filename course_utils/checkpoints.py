"""Checkpoints in safetensors (never pickle), written atomically: a temporary file, then a rename.

A checkpoint holds the model's weights, optionally an EMA copy and the optimizer state (for
``--resume``), and JSON metadata: the preset, its config, the step and anything else given.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from course_utils.errors import CheckpointError
from course_utils.model.unet import PRESETS, UNet, UNetConfig
from course_utils.system import atomic_write_bytes

FORMAT = "ddpm-course/1"


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for key, v in meta.get("scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | Path, model: torch.nn.Module, preset: str | None = None, *,
                    ema: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                    half: bool = False, **meta) -> Path:
    """Write ``model`` (and optionally its EMA and optimizer) to ``path`` atomically."""
    path = Path(path)
    tensors = {}
    for prefix, m in (("model.", model), ("ema.", ema)):
        if m is None:
            continue
        for k, v in m.state_dict().items():
            v = v.detach().cpu()
            if half and v.is_floating_point():
                v = v.half()
            tensors[prefix + k] = v.contiguous()
    header = {"format": FORMAT, "preset": preset, "meta": meta}
    if hasattr(model, "config"):
        header["config"] = model.config.to_dict()
    if optimizer is not None:
        opt_tensors, opt_meta = _optimizer_tensors(optimizer)
        tensors.update(opt_tensors)
        header["optimizer"] = opt_meta
    from safetensors.torch import save
    data = save(tensors, metadata={"course": json.dumps(header, default=str)})
    atomic_write_bytes(path, data)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (tensors, header). Corrupt, truncated or foreign files raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}. Fix: train one (python -m course_utils train PRESET) "
                              "or give the right path.")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            md = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is corrupt or truncated and cannot be read ({e}). Fix: delete it and "
                              "retrain, or restore it (git checkout -- checkpoints/).") from e
    if "course" not in md:
        raise CheckpointError(f"{path} is a safetensors file but not a checkpoint of this course (no metadata). "
                              "Fix: save checkpoints with course_utils.checkpoints.save_checkpoint.")
    header = json.loads(md["course"])
    return tensors, header


def check_diffusion_fits(path, header: dict, preset: str | None, model) -> None:
    """Refuse to load weights trained for one diffusion process (the file's config; a missing key: its default)
    into a model configured for another (``model``'s config, or else ``preset``'s)."""
    have = UNetConfig.from_dict(header["config"]).diffusion
    if model is not None and isinstance(getattr(model, "config", None), UNetConfig):
        want, whose = model.config.diffusion, "the model passed in"
    elif model is None and preset in PRESETS:
        want, whose = PRESETS[preset].config.diffusion, f"preset {preset!r}"
    else:
        return
    if want == have:
        return
    # name the settings that differ (the file's and the model's), and rebuild with the file's non-defaults
    keys = set(have.changes(want)) | set(have.changes())
    theirs = {k: v for k, v in dataclasses.asdict(have).items() if k in keys}
    ours = {k: v for k, v in dataclasses.asdict(want).items() if k in keys}
    args = ", ".join(f"{k}={v!r}" for k, v in have.changes().items())
    arch = header.get("preset") or preset or "PRESET"
    raise CheckpointError(
        f"{path} was trained for the diffusion settings {theirs}, but {whose} uses {ours}: sampling it with "
        f"the wrong schedule or prediction target would give wrong images. Fix: load_checkpoint(path) "
        f"builds the model from the file's own config, or load it into model=build({arch!r}, {args}).")


def load_checkpoint(path: str | Path, preset: str | None = None, model: torch.nn.Module | None = None,
                    use_ema: bool = True, device: str | torch.device = "cpu"):
    """Load a checkpoint into a new model (or into ``model``). Returns (model, header).

    ``preset`` checks that the file was saved for that preset; loading weights into a model of a
    different shape names the first mismatching layer. The diffusion settings stored in the file's config
    (its DiffusionConfig; a key absent in an old file: the default) must match those of ``model``, or of
    ``preset``'s config: weights trained for one schedule are never silently sampled with another.
    """
    tensors, header = read_checkpoint(path)
    saved = header.get("preset")
    if preset is not None and saved is not None and saved != preset:
        raise CheckpointError(f"{path} holds preset {saved!r}, not {preset!r}. Fix: load it as {saved!r} "
                              f"(--checkpoint with VARIANT {saved}) or pick the checkpoint of {preset!r}.")
    if isinstance(header.get("config"), dict):
        check_diffusion_fits(path, header, preset, model)
    if model is None:
        if "config" not in header:
            raise CheckpointError(f"{path} has no model config; pass the model to load it into.")
        model = UNet(UNetConfig.from_dict(header["config"]))
    prefix = "ema." if use_ema and any(k.startswith("ema.") for k in tensors) else "model."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    own = model.state_dict()
    for k, v in own.items():
        if k not in state:
            raise CheckpointError(f"{path} does not fit this model: it has no weights for layer {k!r} "
                                  f"(saved preset {saved!r}). Fix: load it into the preset it was saved for.")
        if state[k].shape != v.shape:
            raise CheckpointError(f"{path} does not fit this model: layer {k!r} has shape {tuple(state[k].shape)} "
                                  f"in the file but {tuple(v.shape)} in the model (saved preset {saved!r}).")
    extra = set(state) - set(own)
    if extra:
        raise CheckpointError(f"{path} does not fit this model: unexpected layer(s) {sorted(extra)[:3]} "
                              f"(saved preset {saved!r}).")
    model.load_state_dict({k: state[k].to(v.dtype) for k, v in own.items()})
    model.to(device)
    # an exported EMA (checkpoints/optimized-final) stores the averaged weights as its only, "model." weights
    exported_ema = prefix == "model." and header.get("meta", {}).get("weights") == "ema"
    header["weights"] = "ema" if prefix == "ema." or exported_ema else "model"
    return model, header


def load_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        ema: torch.nn.Module | None = None) -> dict:
    """Restore model, EMA and optimizer from a checkpoint for ``--resume``; returns its header."""
    tensors, header = read_checkpoint(path)
    load_checkpoint(path, model=model, use_ema=False, device=next(model.parameters()).device)
    if ema is not None and any(k.startswith("ema.") for k in tensors):
        load_checkpoint(path, model=ema, use_ema=True, device=next(ema.parameters()).device)
    if "optimizer" in header:
        optimizer.load_state_dict(_optimizer_state(tensors, header["optimizer"]))
    return header
