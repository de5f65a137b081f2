"""Answers the models cannot read are not scored: placeholders count as no answer, other languages go to a TA."""

from __future__ import annotations

import pytest

from grader.written.language import detect, strip_placeholders


@pytest.mark.parametrize("text", [
    "YOUR ANSWER HERE", "# YOUR ANSWER HERE", "**YOUR ANSWER HERE**", "Type your answer here.",
    "Double-click to edit", "raise NotImplementedError()", "TODO", "  \n your answer here \n",
])
def test_an_untouched_placeholder_is_no_answer(text: str) -> None:
    assert strip_placeholders(text) == ""


def test_a_placeholder_left_above_the_answer_is_dropped_and_the_answer_kept() -> None:
    assert strip_placeholders("YOUR ANSWER HERE\nMomentum still helps on a convex loss.") == (
        "Momentum still helps on a convex loss."
    )
    assert strip_placeholders("Here is my answer: momentum helps.") == "Here is my answer: momentum helps."


@pytest.mark.parametrize("text, code", [
    ("Ja, Momentum hilft auch bei einer konvexen Verlustfunktion, weil es die Konvergenz beschleunigt.", "de"),
    ("Non, le théorème ne garantit pas la meilleure précision, car il ne dit rien sur la taille du réseau.", "fr"),
    ("Sí, porque el momento acelera la convergencia y reduce las oscilaciones en los valles estrechos.", "es"),
    ("Нет, это не так, потому что градиент исчезает в глубоких сетях.", "cyrillic"),
])
def test_an_answer_in_another_language_is_detected(text: str, code: str) -> None:
    found = detect(text, "en")
    assert found is not None and found.code == code


@pytest.mark.parametrize("text", [
    "Yes, momentum helps because it accelerates convergence in narrow valleys.",
    "ReLU, sigmoid, tanh",  # bare terms: nothing to count, so not another language
    "for each sample x: if y * w.x <= 0 then w = w + eta * y * x",
    "W(n+1) = W(n) - eta * grad E",
    "Yes. Die in the loss means the gradient dies.",
    "KL(q || p) >= 0, so the ELBO is a lower bound on log p(x).",
    "1024 params (32x32 kernel, no bias). y_hat = sum_ij W_ij x_ij. dL/dW_ij = 2(y_hat - y) x_ij",
])
def test_english_and_notation_stay_english(text: str) -> None:
    assert detect(text, "en") is None
