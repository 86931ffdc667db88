"""The checked code exercises: every solution in answers/ passes its checker; a wrong version of each fails with a
verdict that names the case, shows the input, the expected and the actual value, and lets no traceback escape; a
stub gets "not attempted yet"; notebooks 01-07 each call at least two checkers, and every stub says about how many
lines it takes. Every checker's hints come in tiers: level 1 (printed with a failure) is words, never code; level 2
gives the formula or API and exists for every checker, without any line of the solution; level 3 names the answers
file."""
from __future__ import annotations

import ast
import importlib
import json
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- exercise: (\w+)\.(check_\w+) -->\s*\n```python\n(.*?)\n```", re.S)
CHECK_CALL = re.compile(r"\bex\.(check_\w+)\(")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# notebooks 01-07 teach one idea each and get two code exercises; 08-10 at least one where it fits
# the capstone's exercises are open (a recipe of the student's own, scored on the leaderboard): none is checked
MINIMUM = {p.stem: 0 if "capstone" in p.stem else 2 if int(p.name[:2]) <= 7 else 1 for p in NOTEBOOKS}


def solutions() -> list[tuple[str, str, str]]:
    """(module, checker, code) for every marked solution block in answers/."""
    out = []
    for path in sorted((ROOT / "answers").glob("*.md")):
        out += [(m.group(1), m.group(2), m.group(3)) for m in MARKER.finditer(path.read_text())]
    return out


def checker(module: str, name: str):
    return getattr(importlib.import_module(f"course_utils.exercises.{module}"), name)


def define(code: str):
    """Exec ``code`` and return the last function it defines at the top level."""
    names = [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)]
    assert names, "the block defines no function"
    ns: dict = {}
    exec(compile(code, "<solution>", "exec"), ns)
    return ns[names[-1]]


SOLUTIONS = solutions()
ALL_CHECKERS = sorted({(p.stem, n) for p in (ROOT / "course_utils" / "exercises").glob("*.py")
                       if p.stem not in ("__init__", "checking")
                       for n in dir(importlib.import_module(f"course_utils.exercises.{p.stem}"))
                       if n.startswith("check_")})


def test_every_checker_has_a_solution_in_answers():
    assert ALL_CHECKERS, "no checkers found"
    assert sorted({(m, c) for m, c, _ in SOLUTIONS}) == ALL_CHECKERS


@pytest.mark.parametrize("module, name, code", SOLUTIONS, ids=[f"{m}.{c}" for m, c, _ in SOLUTIONS])
def test_solution_passes_its_checker(module, name, code, capsys):
    result = checker(module, name)(define(code))
    out = capsys.readouterr().out
    assert result is True, out
    assert out.startswith("✓") and "cases pass" in out and out.count("\n") == 1, out


# A plausible mistake per exercise, and a word the verdict must contain (the case or the problem it names).
WRONG = {
    ("baseline_ddpm", "check_q_sample"): ("""
        def q_sample(x0, t, noise, alpha_bar):
            ab = alpha_bar[t].view(-1, 1, 1, 1)
            return ab * x0 + (1 - ab) * noise          # forgot the square roots
        """, "at index"),
    ("baseline_ddpm", "check_reverse_step"): ("""
        def reverse_step(x_t, t, eps, z, betas, alpha_bar):
            b, ab = betas[t].view(-1, 1, 1, 1), alpha_bar[t].view(-1, 1, 1, 1)
            mean = (x_t - b / (1 - ab).sqrt() * eps) / (1 - b).sqrt()
            return mean + b.sqrt() * z                 # adds noise at t = 0 too
        """, "t = 0"),
    ("baseline_ddpm", "check_training_step"): ("""
        import torch
        import torch.nn.functional as F
        def training_loss(model, x0, alpha_bar, gen):
            t = torch.randint(1, len(alpha_bar) + 1, (x0.shape[0],), generator=gen)   # steps 1..T: off by one
            noise = torch.randn(x0.shape, generator=gen)
            ab = alpha_bar[t.clamp(max=len(alpha_bar) - 1)].view(-1, 1, 1, 1)
            return F.mse_loss(model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t.clamp(max=len(alpha_bar) - 1)), noise)
        """, "one more than the library's"),
    ("baseline_ddpm", "check_sampling_loop"): ("""
        import torch
        def sampling_loop(model, n, betas, alpha_bar, gen):
            x = torch.randn(n, 1, 16, 16, generator=gen)
            for t in range(len(betas) - 1, 0, -1):                # stops before t = 0
                steps = torch.full((n,), t)
                b, ab = betas[t], alpha_bar[t]
                x = (x - b / (1 - ab).sqrt() * model(x, steps)) / (1 - b).sqrt() + b.sqrt() * torch.randn(x.shape, generator=gen)
            return x.clamp(-1, 1)
        """, "down to 0"),
    ("checkerboard", "check_up_block"): ("""
        import torch
        import torch.nn.functional as F
        def up_block(x, skip, weight, bias):
            return F.conv_transpose2d(torch.cat((skip, x), dim=1), weight, bias, stride=2)   # skip first
        """, "at index"),
    ("noise_schedule", "check_v_target"): ("""
        def v_target(x0, noise, t, alpha_bar):
            ab = alpha_bar[t].view(-1, 1, 1, 1)
            return ab * noise - (1 - ab) * x0                  # missing square roots
        """, "at index"),
    ("noise_schedule", "check_x0_from_v"): ("""
        def x0_from_v(x_t, v, t, alpha_bar):
            ab = alpha_bar[t].view(-1, 1, 1, 1)
            return ab.sqrt() * x_t + (1 - ab).sqrt() * v       # wrong sign: (a² − b²)·x0 + 2ab·ε, not x0
        """, "at index"),
    ("guidance", "check_context_dropout"): ("""
        import torch.nn.functional as F
        def context_dropout(labels, u, p_uncond, num_classes):
            return F.one_hot(labels, num_classes).float() * (u < p_uncond).float()[:, None]   # the mask inverted
        """, "p_uncond = 0.1"),
    ("checkerboard", "check_output_size"): ("""
        def output_size(n, kernel, stride, padding=0, output_padding=0):
            return n * stride + kernel - 2 * padding + output_padding   # off by one stride
        """, "expected 8, got 10"),
    ("checkerboard", "check_overlap_counts"): ("""
        def overlap_counts(n, kernel, stride, padding=0, output_padding=0):
            size = (n - 1) * stride + kernel - 2 * padding + output_padding
            counts = [0] * size
            for i in range(n):
                for j in range(kernel):
                    pos = i * stride + j                 # forgot the padding
                    if 0 <= pos < size:
                        counts[pos] += 1
            return counts
        """, "at position"),
    ("group_norm", "check_group_stats"): ("""
        def group_stats(x, num_groups):
            g = x.reshape(x.shape[0], num_groups, -1)
            return g.mean(-1), g.var(-1)                                      # unbiased variance
        """, "var:"),
    ("group_norm", "check_group_norm"): ("""
        import torch
        def group_norm(x, num_groups, weight, bias, eps=1e-5):
            g = x.reshape(x.shape[0], num_groups, -1)
            var, mean = torch.var_mean(g, -1, keepdim=True, unbiased=False)
            return ((g - mean) / torch.sqrt(var + eps)).reshape(x.shape)       # no affine: weight and bias unused
        """, "32 groups of 2 channels"),
    ("gelu", "check_gelu"): ("""
        import math, torch
        def gelu(x):                                      # the tanh approximation
            return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
        """, "at index"),
    ("gelu", "check_gelu_derivative"): ("""
        import math, torch
        def gelu_derivative(x):
            return 0.5 * (1 + torch.erf(x / math.sqrt(2)))  # Phi alone: forgot the product rule
        """, "at index"),
    ("rearrange_pooling", "check_space_to_depth"): ("""
        from einops import rearrange
        def space_to_depth(x):
            return rearrange(x, "b c (h p1) (w p2) -> b (p1 p2 c) h w", p1=2, p2=2)   # channel order
        """, "3 channels"),
    ("rearrange_pooling", "check_depth_to_space"): ("""
        from einops import rearrange
        def depth_to_space(y):
            return rearrange(y, "b (c p1 p2) h w -> b c (p1 h) (p2 w)", p1=2, p2=2)   # quadrants, not patches
        """, "at index"),
    ("time_embedding", "check_frequencies"): ("""
        import math, torch
        def frequencies(dim):
            half = dim // 2
            return torch.exp(torch.arange(half) * -(math.log(10000) / half))        # half, not half - 1
        """, "dim = 8"),
    ("time_embedding", "check_sinusoidal_embedding"): ("""
        import math, torch
        def sinusoidal_embedding(t, dim):
            half = dim // 2
            args = t.float()[:, None] * torch.exp(torch.arange(half) * -(math.log(10000) / (half - 1)))[None]
            return torch.cat((args.cos(), args.sin()), dim=-1)                        # swapped sin and cos
        """, "at index"),
    ("noise_schedule", "check_linear_snr"): ("""
        import torch
        def linear_snr(beta_start, beta_end, T):
            betas = torch.linspace(beta_start, beta_end, T)
            alpha_bar = torch.cumprod(1 - betas, 0)
            return alpha_bar.sqrt() / (1 - alpha_bar).sqrt()   # the amplitude ratio, not the SNR
        """, "expected 9999"),
    ("noise_schedule", "check_ddim_step"): ("""
        import math
        def ddim_step(x_t, eps, abar_t, abar_s, eta, noise):
            x0 = (x_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)
            return math.sqrt(abar_s) * x0 + math.sqrt(1 - abar_s) * eps   # ignores eta and the noise
        """, "eta = 1"),
    ("guidance", "check_guide"): ("""
        def guide(e_cond, e_uncond, w):
            return w * e_cond - (1 - w) * e_uncond         # the weights mixed up
        """, "w = 2"),
    ("putting_together", "check_pooled_sd"): ("""
        import statistics
        def pooled_sd(groups):
            sds = [statistics.stdev(g) for g in groups if len(g) > 1]
            return sum(sds) / len(sds) if sds else None     # averages the sds, not the variances
        """, "groups of different sizes"),
    ("residual", "check_residual_forward"): ("""
        def residual_forward(x, conv1, conv2):
            return x + conv2(conv1(x))                    # the shortcut around both blocks
        """, "1 -> 64 channels"),
    ("residual", "check_residual_grad"): ("""
        import torch
        def residual_grad(x1, f, grad_out):
            x1 = x1.detach().clone().requires_grad_(True)
            return torch.autograd.grad(f(x1), x1, grad_out)[0]                       # forgot the shortcut
        """, "at index"),
}


def test_every_checker_has_a_wrong_version():
    assert sorted(WRONG) == ALL_CHECKERS


@pytest.mark.parametrize("key", sorted(WRONG), ids=lambda k: f"{k[0]}.{k[1]}")
def test_a_wrong_version_fails_and_names_the_case(key, capsys):
    code, word = WRONG[key]
    result = checker(*key)(define(textwrap.dedent(code)))
    out = capsys.readouterr().out
    assert result is False, out
    assert out.startswith("✗") and "fails:" in out, out
    for part in ("case ", "input:", "expected:", "actual:", "problem:", "hint:", "more:", ".hint(2)"):
        assert part in out, f"{part!r} missing from\n{out}"
    assert word in out, f"{word!r} missing from\n{out}"
    assert "Traceback" not in out


@pytest.mark.parametrize("key", ALL_CHECKERS, ids=lambda k: f"{k[0]}.{k[1]}")
@pytest.mark.parametrize("stub", ["raise NotImplementedError", "return None", "...", "pass", "return ..."])
def test_a_stub_is_not_attempted_yet(key, stub, capsys):
    fn = define(f"def student(*args):\n    # YOUR CODE HERE\n    {stub}\n")
    result = checker(*key)(fn)
    out = capsys.readouterr().out
    assert result is None, out
    assert "not attempted yet" in out and out.count("\n") == 1, out


@pytest.mark.parametrize("key", ALL_CHECKERS, ids=lambda k: f"{k[0]}.{k[1]}")
def test_an_exception_is_reported_not_raised(key, capsys):
    fn = define("def student(*args):\n    values = {}\n    return values['missing'] / 0\n")
    result = checker(*key)(fn)
    out = capsys.readouterr().out
    assert result is False, out
    assert "case 1 of" in out and "raised KeyError: 'missing'" in out and "line 3 of student" in out, out
    assert "Traceback" not in out


def test_a_later_failure_and_odd_values_are_reported():
    from course_utils.exercises import checkerboard

    calls = []

    def flaky(n, kernel, stride, padding=0, output_padding=0):
        calls.append(n)
        if len(calls) == 3:
            raise ZeroDivisionError("division by zero")
        return (n - 1) * stride + kernel - 2 * padding + output_padding

    assert checkerboard.check_output_size(flaky) is False
    assert checkerboard.check_output_size(lambda *a: "all of them") is False
    assert checkerboard.check_output_size(42) is False


def test_an_input_changed_in_place_is_reported(capsys):
    from course_utils.exercises import gelu

    def in_place(x):
        import math
        import torch
        return x.mul_(0.5 * (1 + torch.erf(x / math.sqrt(2))))

    assert gelu.check_gelu(in_place) is False
    assert "in place" in capsys.readouterr().out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_its_checked_exercises(path):
    nb = json.loads(path.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    calls = [name for src in code for name in CHECK_CALL.findall(src)]
    assert len(calls) >= MINIMUM[path.stem], f"{path.name}: {calls}"
    module = path.stem[3:]
    known = {n for m, n in ALL_CHECKERS}
    assert set(calls) <= known, set(calls) - known
    for src in code:
        if CHECK_CALL.search(src):
            assert "NBVAL_CHECK_OUTPUT" not in src, "a checker's verdict depends on the student's code"
            assert "from course_utils.exercises import" in src
    # each stub is stored unsolved, so the stored notebook prints "not attempted yet", and says how long it is
    stubs = [src for src in code if "# YOUR CODE HERE" in src]
    assert len(stubs) >= MINIMUM[path.stem] and all("raise NotImplementedError" in s for s in stubs), module
    assert all(re.search(r"# YOUR CODE HERE \(≈ \d+ lines?\)", s) for s in stubs), [s for s in stubs if "≈" not in s]


# What level 1 must not contain: code. Today's single hints (the solution itself) each trip at least one of these.
CODE = re.compile(r"torch\.|\bF\.|\bnp\.|einops|=|\w\(|\.\w+\(|\[|\]|\*|`|\breturn\b|\blambda\b|\+=")


def test_the_code_pattern_catches_the_old_hints():
    """The hints as they were before tiers (each one the solution): the pattern rejects every one of them."""
    old = ["pick each image's abar with alpha_bar[t], reshape it to (B, 1, 1, 1) with .view(-1, 1, 1, 1)",
           "the n inputs sit `stride` apart, so the stamps span (n - 1) * stride + kernel positions",
           "num_groups counts groups: it must divide C exactly (C % g == 0), from 1",
           "Phi(x) = 0.5 * (1 + erf(x / sqrt(2))); use torch.erf",
           "(1 + w) * e_cond - w * e_uncond, i.e. e_cond + w * (e_cond - e_uncond)",
           "statistics.variance(g) for each g with len(g) >= 2",
           "the shortcut goes around conv2 only: add x1 = conv1(x) to conv2(x1)."]
    assert all(CODE.search(h) for h in old)


def solution_lines(module: str, name: str) -> list[str]:
    """The statements of the solution's last function (its body, without ``return``), long enough to be telling."""
    code = next(c for m, n, c in SOLUTIONS if (m, n) == (module, name))
    fn = [n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)][-1]
    out = []
    for stmt in fn.body:
        text = ast.get_source_segment(code, stmt) or ""
        for line in text.splitlines():
            line = re.sub(r"^\s*(return\s+)?", "", line).split("#")[0].strip()
            if len(line) >= 16:
                out.append(line)
    return out


@pytest.mark.parametrize("key", ALL_CHECKERS, ids=lambda k: f"{k[0]}.{k[1]}")
def test_hints_come_in_tiers(key, capsys):
    check = checker(*key)
    hints = check.hints
    # level 1: a nudge in words, printed with every failure
    assert len(hints.nudge.split()) >= 8, hints.nudge
    assert not CODE.search(hints.nudge), f"level 1 contains code: {CODE.search(hints.nudge).group()!r} in {hints.nudge!r}"
    # level 2: the formula or API, asked for by check_x.hint(2); never a line of the solution
    assert hints.formula and hints.formula != hints.nudge
    assert "def " not in hints.formula and "return " not in hints.formula
    for line in solution_lines(*key):
        assert line not in hints.formula, f"level 2 contains the solution's line {line!r}"
    # level 3: where the solution is
    assert (ROOT / hints.answers).is_file() and hints.answers in hints.level(3)
    for level, text in ((1, hints.nudge), (2, hints.formula)):
        check.hint(level)
        assert capsys.readouterr().out == f"hint {level} for {check.exercise}: {text}\n"
