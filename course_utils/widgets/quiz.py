"""The self-check quiz at the end of every notebook: ``quiz("03")``.

* :mod:`course_utils.lessons.quizzes` holds the questions and :func:`~course_utils.lessons.quizzes.check`, the pure
  function that answers a click (unit-tested).
* :func:`quiz` is the thin ipywidgets layer: one block per question, one button per choice; a click answers at once
  ("Not quite: ..." with the reason, or the confirmation).
* The static fallback is :func:`~course_utils.lessons.quizzes.static_text`, the questions and choices as plain
  text without the answers. The widget carries it as its ``text/plain`` form, so a run that cannot show widgets
  (nbval, a rendered page) shows the questions; without ipywidgets :func:`quiz` returns that text alone.

CSS classes, for the browser test: the whole quiz ``course-widget course-quiz course-quiz-nb-NN``; each question
``course-quiz-question``; each choice's button ``course-quiz-choice course-quiz-choice-J`` (J counts from 0) and
``course-quiz-right`` or ``course-quiz-wrong``; the answer line ``course-quiz-feedback course-readout``.
"""
from __future__ import annotations

import html

from course_utils.lessons import quizzes as Q

COLORS = {True: "#1b7f3b", False: "#b3261e"}


class StaticQuiz:
    """The quiz as text only (no answers), for a kernel without ipywidgets."""

    def __init__(self, notebook: str):
        self.notebook = notebook
        self.text = Q.static_text(notebook)

    def __repr__(self) -> str:
        return self.text


def feedback_html(ok: bool, message: str) -> str:
    """The answer line for a click, as HTML."""
    return f"<div style='color:{COLORS[ok]};white-space:normal'>{html.escape(message)}</div>"


def _question_box(W, notebook: str, number: int, q: Q.Question):
    prompt = W.HTML(f"<b>{number + 1}. {html.escape(q.prompt)}</b>").add_class("course-quiz-prompt")
    feedback = W.HTML("").add_class("course-quiz-feedback").add_class("course-readout")
    buttons, rows = [], []
    for j, text in enumerate(q.choices):
        b = W.Button(description=Q.letter(j), tooltip=text, layout=W.Layout(width="36px", min_width="36px"))
        b.add_class("course-quiz-choice").add_class("course-quiz-right" if j == q.answer else "course-quiz-wrong")
        b.add_class(f"course-quiz-choice-{j}")
        label = W.HTML(f"<span style='white-space:normal'>{html.escape(text)}</span>",
                       layout=W.Layout(width="auto", flex="1 1 auto"))
        rows.append(W.HBox([b, label], layout=W.Layout(align_items="center")))
        buttons.append(b)

    def on_click(button):
        j = buttons.index(button)
        ok, message = Q.check(notebook, number, j)
        for k, other in enumerate(buttons):
            other.button_style = ("success" if ok else "danger") if k == j else ""
        feedback.value = feedback_html(ok, message)
        box.answered = (j, ok)

    for b in buttons:
        b.on_click(on_click)
    box = W.VBox([prompt, *rows, feedback], layout=W.Layout(margin="0 0 10px 0")).add_class("course-quiz-question")
    box.buttons, box.feedback, box.answered = buttons, feedback, None
    return box


def quiz(notebook: str):
    """The notebook's three-question quiz: an ``ipywidgets.VBox`` (classes ``course-widget course-quiz``) with
    ``.questions`` (one box per question, each with ``.buttons`` and ``.feedback``) for tests to drive it."""
    questions = Q.questions(notebook)
    try:
        import ipywidgets as W
    except ImportError:  # pragma: no cover - ipywidgets is a dependency of the course
        return StaticQuiz(notebook)

    class QuizBox(W.VBox):
        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            if bundle is not None:
                bundle["text/plain"] = Q.static_text(notebook)
            return bundle

    title = W.HTML(f"<b>Self-check: notebook {str(notebook).zfill(2)}</b> (click a letter; the answer shows at once)")
    boxes = [_question_box(W, notebook, i, q) for i, q in enumerate(questions)]
    box = QuizBox([title, *boxes]).add_class("course-widget").add_class("course-quiz")
    box.add_class(f"course-quiz-nb-{str(notebook).zfill(2)}")
    box.notebook, box.questions = str(notebook).zfill(2), boxes
    return box
