"""The verdict machinery shared by every exercise checker.

:func:`run_check` calls the student's function on a list of :class:`Case` objects, each holding its inputs (passed
positionally, so the student may name the parameters as they like) and the expected result computed by the course's
own implementation. It prints exactly one verdict and returns

* ``True``  when every case passes;
* ``False`` at the first failing case (wrong value, shape, dtype or type; an exception; an input changed in place);
* ``None``  when the function is still a stub: it raises ``NotImplementedError``, or returns ``None`` or ``...`` on
  the first case. ``None`` is falsy, so ``if check(...)`` treats it like a failure.

Hints come in tiers (:class:`Hints`). A failure prints level 1, a *nudge*: which property fails, in words, never code.
``check_x.hint(2)`` prints level 2, the formula or the API to use; ``check_x.hint(3)`` names the answers file that
holds the solution. No hint is the solution's code. Each ``check_x`` is a :class:`Checker`, made by the
:func:`checker` decorator from a function ``check_x(student_fn, hints)`` that calls :func:`run_check`.

Nothing the student's code raises escapes (every ``Exception`` is caught and reported with its type, message and the
line of the student's code it came from).
"""
from __future__ import annotations

import copy
import math
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

PASS, FAIL, TODO = "✓", "✗", "…"
NOT_ATTEMPTED = "not attempted yet"


@dataclass(frozen=True)
class Hints:
    """The tiers of help for one exercise: ``nudge`` (level 1, printed with a failure: which property fails, in
    words), ``formula`` (level 2: the formula or the API), ``answers`` (level 3: the file holding the solution)."""

    exercise: str
    nudge: str
    formula: str
    answers: str = ""

    def level(self, n: int) -> str:
        if n <= 1:
            return self.nudge
        if n == 2:
            return self.formula
        return (f"the solution is in {self.answers}, section \"Checked code exercises\" (try hint(2) first)"
                if self.answers else "no further hint")


class Checker:
    """A checked exercise: ``check_x(student_fn)`` runs the hidden cases and prints one verdict (see
    :func:`run_check`); ``check_x.hint(n)`` prints hint level ``n`` (1 nudge, 2 formula or API, 3 where the solution
    is)."""

    def __init__(self, fn: Callable, hints: Hints):
        self._fn, self.hints, self.exercise = fn, hints, hints.exercise
        self.__name__ = getattr(fn, "__name__", f"check_{hints.exercise}")
        self.__doc__ = fn.__doc__
        self.__module__ = getattr(fn, "__module__", __name__)

    def __call__(self, student_fn: Any) -> bool | None:
        return self._fn(student_fn, self.hints)

    def hint(self, level: int = 1) -> None:
        """Print hint ``level``: 1 a nudge in words, 2 the formula or API, 3 where the solution is."""
        print(f"hint {level} for {self.exercise}: {self.hints.level(level)}")

    def __repr__(self) -> str:
        return f"<checker {self.__name__}: call it on your function; .hint(2) for the formula>"


def checker(nudge: str, formula: str) -> Callable[[Callable], Checker]:
    """Make ``check_x(student_fn, hints)`` a :class:`Checker` with these hints; the exercise is the name after
    ``check_``, the answers file the module's ``ANSWERS``."""
    def wrap(fn: Callable) -> Checker:
        name = fn.__name__.removeprefix("check_")
        return Checker(fn, Hints(name, nudge, formula, fn.__globals__.get("ANSWERS", "")))
    return wrap


@dataclass
class Case:
    """One hidden case: a short name, the inputs (name -> value, passed in order) and the expected result."""

    name: str
    inputs: dict[str, Any]
    expected: Any
    hint: str = ""
    shown: dict[str, str] = field(default_factory=dict)  # how to show an input, where the default is not helpful


# --- describing values compactly --------------------------------------------------------------------------------

def _num(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    v = float(v)
    if math.isnan(v) or math.isinf(v):
        return str(v)
    return f"{v:.6g}"


def describe(value: Any, limit: int = 8) -> str:
    """A compact description: small tensors in full, larger ones by shape, dtype and range."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        dtype = str(t.dtype).replace("torch.", "")
        if t.numel() <= limit:
            vals = ", ".join(_num(v) for v in t.flatten().tolist())
            shape = "" if t.ndim == 1 else f" shape {tuple(t.shape)}"
            return f"tensor([{vals}]){shape} {dtype}"
        if t.numel() == 0:
            return f"empty tensor shape {tuple(t.shape)} {dtype}"
        if t.is_floating_point() or t.is_complex():
            nan = int(torch.isnan(t).sum())
            finite = t[~torch.isnan(t)]
        else:
            nan, finite = 0, t
        text = f"tensor shape {tuple(t.shape)} {dtype}"
        if finite.numel():
            text += f", values in [{_num(finite.min().item())}, {_num(finite.max().item())}]"
        return text + (f", {nan} of them nan" if nan else "")
    if isinstance(value, np.ndarray):
        return f"numpy array shape {value.shape} {value.dtype}" + (f": {value.tolist()}" if value.size <= limit else "")
    if isinstance(value, torch.nn.Module):
        n = sum(p.numel() for p in value.parameters())
        return f"{type(value).__name__} module ({n:,} parameters)"
    if isinstance(value, (list, tuple)) and 0 < len(value) <= 4 and all(isinstance(v, torch.Tensor) for v in value):
        return "(" + "; ".join(describe(v, limit) for v in value) + ")"
    if isinstance(value, (list, tuple)):
        if len(value) <= 2 * limit and all(isinstance(v, (int, float)) for v in value):
            return repr([v if isinstance(v, int) else float(_num(v)) for v in value]) if isinstance(value, list) \
                else repr(tuple(value))
        return f"{type(value).__name__} of {len(value)} items"
    if isinstance(value, (int, float)):
        return _num(value)
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- comparing ---------------------------------------------------------------------------------------------------

def compare_tensors(expected: torch.Tensor, actual: Any, rtol: float, atol: float) -> str | None:
    """None when ``actual`` matches; otherwise a one-line description of the first difference."""
    if not isinstance(actual, torch.Tensor):
        return f"expected a torch.Tensor, got {type(actual).__name__}"
    if tuple(actual.shape) != tuple(expected.shape):
        return f"wrong shape: expected {tuple(expected.shape)}, got {tuple(actual.shape)}"
    if actual.dtype != expected.dtype:
        return f"wrong dtype: expected {expected.dtype}, got {actual.dtype}"
    a, e = actual.detach().cpu(), expected.detach().cpu()
    if e.is_floating_point():
        if e.dtype != torch.float64:  # single precision: a different but correct order of operations rounds differently
            rtol, atol = max(rtol, 1e-5), max(atol, 1e-6)
        ok = torch.isclose(a, e, rtol=rtol, atol=atol, equal_nan=False)
    else:
        ok = a == e
    if bool(ok.all()):
        return None
    bad = (~ok).nonzero()
    first = tuple(int(i) for i in bad[0])
    diff = (a.double() - e.double()).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    where = f"at index {first}" if first else "value"
    return (f"{where}: expected {_num(e[first].item())}, got {_num(a[first].item())} "
            f"({len(bad)} of {e.numel()} values differ; largest |difference| {_num(diff.max().item())})")


def as_int_list(value: Any) -> list[int] | None:
    """A list of Python ints from a list, tuple, numpy array or 1-D tensor of whole numbers; None if impossible."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    try:
        values = list(value)
    except TypeError:
        return None
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            return None
        if float(v) != round(float(v)):
            return None
        out.append(int(round(float(v))))
    return out


def compare_int_lists(expected: list[int], actual: Any) -> str | None:
    got = as_int_list(actual)
    if got is None:
        return f"expected a list of whole numbers, got {describe(actual)}"
    if len(got) != len(expected):
        return f"wrong length: expected {len(expected)} numbers, got {len(got)}"
    for i, (e, a) in enumerate(zip(expected, got)):
        if e != a:
            return f"at position {i}: expected {e}, got {a}"
    return None


def compare_int(expected: int, actual: Any) -> str | None:
    if isinstance(actual, torch.Tensor) and actual.numel() == 1:
        actual = actual.item()
    if isinstance(actual, bool) or not isinstance(actual, (int, float, np.integer, np.floating)):
        return f"expected a whole number, got {describe(actual)}"
    if float(actual) != expected:
        return f"expected {expected}, got {_num(actual)}"
    return None


def tensor_comparer(rtol: float = 1e-5, atol: float = 1e-6) -> Callable[[Any, Any], str | None]:
    return lambda expected, actual: compare_tensors(expected, actual, rtol, atol)


# --- running -----------------------------------------------------------------------------------------------------

def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (torch.nn.Module, np.ndarray, list, dict)):
        return copy.deepcopy(value)
    return value


def _changed(before: Any, after: Any) -> bool:
    if isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor):
        return tuple(before.shape) != tuple(after.shape) or not torch.equal(before, after.detach())
    return False


def _where(exc: BaseException, student_fn: Callable) -> str:
    code = getattr(student_fn, "__code__", None)
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if code is not None and f.filename == code.co_filename]
    if mine:
        f = mine[-1]
        line = f" ({f.line.strip()})" if f.line else ""
        return f" in line {f.lineno - code.co_firstlineno + 1} of {f.name}{line}"
    return ""


def _is_stub_result(value: Any) -> bool:
    return value is None or value is Ellipsis


def run_check(exercise: str, student_fn: Any, cases: list[Case],
              compare: Callable[[Any, Any], str | None], hint: Hints | str = "") -> bool | None:
    """Run ``student_fn`` on every case, print one verdict, return True / False / None (see the module docstring).

    A failure prints the case's own nudge (``Case.hint``) and the exercise's (``hint``: level 1 of :class:`Hints`),
    then how to ask for more."""
    hints = hint if isinstance(hint, Hints) else None
    nudge = hints.nudge if hints else hint

    def fail(i: int, case: Case, problem: str, actual: str | None = None) -> bool:
        lines = [f"{FAIL} {exercise}: case {i + 1} of {len(cases)} fails: {case.name}"]
        shown = ", ".join(f"{k} = {case.shown.get(k) or describe(v)}" for k, v in case.inputs.items())
        lines.append(f"  input:    {shown}")
        lines.append(f"  expected: {describe(case.expected)}")
        if actual is not None:
            lines.append(f"  actual:   {actual}")
        lines.append(f"  problem:  {problem}")
        for h in (case.hint, nudge):
            if h:
                lines.append(f"  hint:     {h}")
        if hints:
            lines.append(f"  more:     ex.check_{exercise}.hint(2) gives the formula or the API to use")
        print("\n".join(lines))
        return False

    if not callable(student_fn):
        print(f"{FAIL} {exercise}: expected a function, got {describe(student_fn)}. Pass the function itself, "
              f"e.g. check_{exercise}({exercise}), without calling it.")
        return False
    for i, case in enumerate(cases):
        args = [_copy(v) for v in case.inputs.values()]
        kept = [_copy(v) for v in args]
        try:
            actual = student_fn(*args)
        except NotImplementedError:
            if i == 0:
                print(f"{TODO} {exercise}: {NOT_ATTEMPTED}. Replace `raise NotImplementedError` with your code, run "
                      f"that cell, then this one again.")
                return None
            return fail(i, case, "your function raised NotImplementedError for this case")
        except Exception as e:  # noqa: BLE001 - every mistake in the student's code becomes a verdict
            message = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return fail(i, case, f"your function raised {type(e).__name__}{': ' + message if message else ''}"
                                 f"{_where(e, student_fn)}", actual="(an exception, no value)")
        if i == 0 and _is_stub_result(actual):
            what = "None" if actual is None else "..."
            print(f"{TODO} {exercise}: {NOT_ATTEMPTED} (it returned {what}). Write the body and `return` the "
                  f"result, run that cell, then this one again.")
            return None
        for name, before, after in zip(case.inputs, kept, args):
            if _changed(before, after):
                return fail(i, case, f"your function changed its input `{name}` in place; compute a new tensor "
                                     "instead (e.g. x = x * 2, not x *= 2)", actual=describe(actual))
        try:
            problem = compare(case.expected, actual)
        except Exception as e:  # noqa: BLE001 - an odd return value must not crash the comparison
            problem = f"could not compare the result ({type(e).__name__}: {e})"
        if problem:
            return fail(i, case, problem, actual=describe(actual))
    print(f"{PASS} {exercise}: all {len(cases)} cases pass ({'; '.join(c.name for c in cases)}).")
    return True

