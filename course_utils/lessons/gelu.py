"""Notebook 04's measurements: GELU (exact and tanh approximation), ReLU and SiLU, their values and
derivatives (by autograd), where GELU's derivative is zero or negative, and what GELU costs.

All functions are pure and return numbers or tensors; the timing function is the only one whose
result depends on the machine (the notebook prints it in an unchecked cell).
"""
from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F

from course_utils.errors import CourseError

FUNCTIONS = {
    "gelu": lambda x: F.gelu(x),                            # x * Phi(x), Phi = standard normal CDF
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),   # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    "relu": F.relu,
    "silu": F.silu,                                         # x * sigmoid(x)
}
LABELS = {"gelu": "GELU (exact)", "gelu_tanh": "GELU (tanh approx.)", "relu": "ReLU", "silu": "SiLU"}


def _check(name: str) -> None:
    if name not in FUNCTIONS:
        raise CourseError(f"unknown activation {name!r}; choose one of {tuple(FUNCTIONS)}.")


def values_and_grads(name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) and f'(x) (by autograd, elementwise) for the activation ``name``. ReLU'(0) is 0 in PyTorch."""
    _check(name)
    x = torch.as_tensor(x).detach().clone().requires_grad_(True)
    y = FUNCTIONS[name](x)
    (g,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), g.detach()


def curves(names=tuple(FUNCTIONS), lo: float = -4.0, hi: float = 3.0, n: int = 701) -> dict:
    """{"x": grid, name: {"y": f(x), "dy": f'(x)}} on ``n`` points of [lo, hi] (float64)."""
    if not hi > lo:
        raise CourseError(f"the x range must have lo < hi, got lo={lo}, hi={hi}.")
    if n < 2:
        raise CourseError(f"need at least 2 grid points, got n={n}.")
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    out: dict = {"x": x}
    for name in names:
        y, dy = values_and_grads(name, x)
        out[name] = {"y": y, "dy": dy}
    return out


def grad_zero(name: str = "gelu", lo: float = -3.0, hi: float = -0.1, tol: float = 1e-12) -> float:
    """The x in [lo, hi] where f'(x) = 0, by bisection on the autograd derivative (float64).

    For GELU this is about -0.7518: the derivative is negative left of it and positive right of it,
    so it is also where GELU takes its minimum. ReLU has no such point (its derivative is 0 on a
    whole half-line), so asking for it raises :class:`CourseError`.
    """
    _check(name)

    def d(v: float) -> float:
        return float(values_and_grads(name, torch.tensor([v], dtype=torch.float64))[1])

    a, b = float(lo), float(hi)
    da, db = d(a), d(b)
    if da == 0 or db == 0 or (da > 0) == (db > 0):
        raise CourseError(f"{name}'s derivative does not change sign between {lo} and {hi} "
                          f"(f'({lo}) = {da:.4g}, f'({hi}) = {db:.4g}); no isolated zero to find there.")
    while b - a > tol:
        m = 0.5 * (a + b)
        dm = d(m)
        if (dm > 0) == (da > 0):
            a, da = m, dm
        else:
            b = m
    return 0.5 * (a + b)


def minimum(name: str = "gelu") -> tuple[float, float]:
    """(x, f(x)) at the activation's minimum: the zero of its derivative (GELU: about (-0.7518, -0.1700))."""
    x = grad_zero(name)
    y, _ = values_and_grads(name, torch.tensor([x], dtype=torch.float64))
    return x, float(y)


def tanh_approx_error(lo: float = -5.0, hi: float = 5.0, n: int = 100_001) -> tuple[float, float]:
    """(max |GELU_exact - GELU_tanh|, the x where it occurs) on ``n`` points of [lo, hi], in float64."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    err = (F.gelu(x) - F.gelu(x, approximate="tanh")).abs()
    k = int(err.argmax())
    return float(err[k]), float(x[k])


def nonpositive_intervals(x: torch.Tensor, dy: torch.Tensor) -> list[tuple[float, float]]:
    """The stretches of the grid ``x`` on which the derivative ``dy`` is <= 0, as (start, end) pairs."""
    mask = (dy <= 0).tolist()
    xs = x.tolist()
    out, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        if start is not None and (not m or i == len(mask) - 1):
            end = i if m else i - 1
            out.append((xs[start], xs[end]))
            start = None
    return out


def _nonpositive_edge(name: str, a: float, b: float, tol: float = 1e-10) -> float:
    """Bisect [a, b] (where "f' <= 0" differs at the two ends) down to the point where it switches."""
    def neg(v: float) -> bool:
        return float(values_and_grads(name, torch.tensor([v], dtype=torch.float64))[1]) <= 0

    na = neg(a)
    while b - a > tol:
        m = 0.5 * (a + b)
        if neg(m) == na:
            a = m
        else:
            b = m
    return 0.5 * (a + b)


def summary(name: str, lo: float = -4.0, hi: float = 3.0, n: int = 701) -> dict:
    """Numbers about one activation on [lo, hi]: its smallest value and where, its derivative's
    smallest value and where, and the stretches where the derivative is <= 0 (ends inside the range
    located by bisection, so GELU's reads [lo, -0.7518] and ReLU's [lo, 0])."""
    c = curves((name,), lo, hi, n)
    x, y, dy = c["x"], c[name]["y"], c[name]["dy"]
    ky, kd = int(y.argmin()), int(dy.argmin())
    step = (hi - lo) / (n - 1)
    stretches = []
    for a, b in nonpositive_intervals(x, dy):
        a = a if a == x[0].item() else _nonpositive_edge(name, a - step, a)
        b = b if b == x[-1].item() else _nonpositive_edge(name, b, b + step)
        stretches.append((round(a, 6) + 0.0, round(b, 6) + 0.0))
    return {"name": name, "min_y": float(y[ky]), "argmin_y": float(x[ky]), "min_dy": float(dy[kd]),
            "argmin_dy": float(x[kd]), "nonpositive": stretches,
            "zero_grad_fraction": float((dy == 0).double().mean())}


def time_ratio(n: int = 1 << 20, repeats: int = 20, device: str | torch.device = "cpu",
               names: tuple[str, str] = ("gelu", "relu")) -> dict:
    """Forward + backward time of two activations on a random tensor of ``n`` float32 values.

    Returns {"<name>_ms": median milliseconds per forward+backward, ..., "ratio": first / second}.
    Machine dependent: never check these numbers in a test or an NBVAL_CHECK_OUTPUT cell.
    """
    for name in names:
        _check(name)
    if repeats < 1 or n < 1:
        raise CourseError(f"time_ratio needs n >= 1 and repeats >= 1, got n={n}, repeats={repeats}.")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=gen).to(device).requires_grad_(True)
    g = torch.ones_like(x)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
        elif device.type == "mps":
            torch.mps.synchronize()

    out = {}
    for name in names:
        f = FUNCTIONS[name]
        for _ in range(2):  # warm-up
            f(x).backward(g)
        times = []
        for _ in range(repeats):
            x.grad = None
            sync()
            t0 = time.perf_counter()
            f(x).backward(g)
            sync()
            times.append(time.perf_counter() - t0)
        out[f"{name}_ms"] = 1000 * statistics.median(times)
    out["ratio"] = out[f"{names[0]}_ms"] / out[f"{names[1]}_ms"]
    out.update(n=n, repeats=repeats, device=str(device))
    return out


def phi(x: float) -> float:
    """The standard normal CDF, for checking GELU(x) = x * Phi(x) by hand."""
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))
