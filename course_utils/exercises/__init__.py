"""Checked code exercises: one module per notebook, each with a ``check_<name>(student_fn)`` per exercise.

A notebook stores the student's stub (``raise NotImplementedError``) and a cell that calls the checker::

    from course_utils.exercises import baseline_ddpm as ex
    ex.check_q_sample(q_sample)

The checker runs the student's function on hidden cases (edge cases included), compares every result with the
course's own implementation and prints one verdict (see :mod:`course_utils.exercises.checking`):

* ``✓ q_sample: all 7 cases pass`` and returns ``True``;
* for the first failing case: the case, its input, the expected and the actual value, and a hint; returns ``False``.
  An exception raised by the student's code is reported the same way (type, message, line); it never escapes;
* ``not attempted yet`` while the function is still a stub, and returns ``None`` (falsy, like a failure, but
  distinguishable from one). A stub is a function that raises ``NotImplementedError`` or returns ``None`` or
  ``...`` (Ellipsis) on the first case.

The solutions are in ``answers/NN_slug.md`` under "Checked code exercises"; ``tests/test_exercises.py`` runs each one
through its checker.

Modules: :mod:`baseline_ddpm` (01), :mod:`checkerboard` (02), :mod:`group_norm` (03), :mod:`gelu` (04),
:mod:`rearrange_pooling` (05), :mod:`time_embedding` (06), :mod:`residual` (07), :mod:`noise_schedule` (09).
"""
