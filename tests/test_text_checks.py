"""Sentence splitting and the lexical guards the scorer relies on (pure functions, no model)."""

from __future__ import annotations

import pytest

from grader.written import lexical
from grader.written.calibration import fit_calibration
from grader.written.sentences import latex_to_words, sentence_windows, split_sentences


def test_sentences_keep_decimals_and_abbreviations_together():
    units = split_sentences("The derivative is at most 0.25, e.g. for the sigmoid. Then it shrinks. Five layers give 9.8e-4.")
    assert units == ["The derivative is at most 0.25, e.g. for the sigmoid.", "Then it shrinks.", "Five layers give 9.8e-4."]


def test_page_break_mid_sentence_is_joined():
    text = "The KL term between q and p is usually\n\n\fconstant or negligible, so it is ignored."
    assert split_sentences(text) == ["The KL term between q and p is usually constant or negligible, so it is ignored."]


def test_bullets_stray_dashes_and_code_fences():
    text = "- **MLP: ReLU** keeps gradients alive.\n-\n- CNN: skip connections.\n```python\nx = 1\n```\n"
    assert split_sentences(text) == ["MLP: ReLU keeps gradients alive.", "CNN: skip connections."]


def test_display_math_becomes_one_unit_per_line():
    text = r"So $$\begin{aligned} \frac{\partial L}{\partial W} &= 2 (\hat{y} - y) \cdot x \\ n &= 1024 \end{aligned}$$ done."
    assert split_sentences(text) == ["So", "(d L) / (d W) = 2 (y_hat - y) * x", "n = 1024", "done."]


def test_latex_to_words_nested():
    assert latex_to_words(r"\frac{\partial L}{\partial \hat{y}}") == "(d L) / (d y_hat)"


def test_latex_symbols_keep_their_names():
    """A symbol is part of the claim: "depends on $\\kappa$" must not be read as "depends on"."""
    assert latex_to_words(r"\sqrt{\kappa}") == "sqrt(kappa)"
    assert latex_to_words(r"\max_i \alpha_t \leq \varepsilon \to 0") == "max_i alpha_t <= epsilon -> 0"
    assert latex_to_words(r"\log p(x) \neq \infty, x \in \mathbb{R}") == "log p(x) != infinity, x in R"
    assert latex_to_words(r"h = o \odot \tanh(c), W^\top x, z \sim N") == "h = o * tanh(c), W^T x, z ~ N"
    assert split_sentences(r"The rate goes from $\kappa$ to $\sqrt{\kappa}$. Done.") == [
        "The rate goes from kappa to sqrt(kappa).",
        "Done.",
    ]


def test_windows():
    assert sentence_windows(["a.", "b.", "c."]) == ["a. b.", "b. c."]
    assert sentence_windows(["a."]) == []


@pytest.mark.parametrize(
    ("student", "reference", "expected"),
    [
        ("No, momentum does not help on a convex loss.", "Yes, momentum still helps on a convex loss.", True),
        ("Momentum is not useless on a convex loss.", "On a convex loss momentum is useless.", True),
        ("RNNs do not need positional embeddings.", "Positional embeddings are usually unnecessary in an RNN.", False),
        ("RNNs need positional embeddings.", "Positional embeddings are usually unnecessary in an RNN.", True),
        # 'no' as a modifier does not deny the clause
        ("Convexity means there is one global minimum.", "Convexity gives a single global minimum with no bad local minima.", False),
        # a negation in another clause does not flip the aligned one
        ("Momentum speeds up convergence, which plain GD does not do.", "Momentum speeds up convergence.", False),
        ("The weather is nice.", "Momentum speeds up convergence.", False),
        # "never negative" says what "non-negative" says; "can be negative" denies it
        ("A KL divergence is never negative.", "The KL divergence is non-negative, so the ELBO is a lower bound.", False),
        ("A KL divergence is never negative.", "The KL divergence is always nonnegative.", False),
        ("A KL divergence can be negative.", "The KL divergence is non-negative.", True),
        # the negation must bear on what the clauses share: "never negative" says nothing against a decomposition
        ("A KL divergence is never negative.", "The log-likelihood is the ELBO plus a KL divergence.", False),
        ("Momentum does not help on a convex loss.", "Momentum helps on a convex loss.", True),
        # a coordinator ends the negation's scope: no sigmoid, but the Lipschitz constraint is stated
        ("The critic has no sigmoid and must be Lipschitz (weight clipping).", "The critic must be 1-Lipschitz.", False),
        ("The critic has no sigmoid and must be Lipschitz.", "The critic has a sigmoid output.", True),
        ("Gradients don't vanish and training is more stable.", "So WGAN training is more stable.", False),
        ("Momentum does not help and only overshoots.", "Momentum helps on a convex loss.", True),
        # "nothing stops us from adding it" says we can add it
        (
            "Nothing stops us from adding a positional embedding to each token embedding before it goes into the RNN.",
            "The positional embedding is added element-wise to, or concatenated with, each token embedding.",
            False,
        ),
        ("Nothing can be added to the token embedding.", "The positional embedding is added to each token embedding.", True),
        # "there is no bias" and "without bias" both say the bias is absent
        (
            "There is no bias and a single 32x32 kernel, so the model has 1024 parameters.",
            "One kernel of size 32x32 without bias gives 1024 trainable parameters.",
            False,
        ),
        ("The layer has no bias weights.", "A layer without padding has bias weights.", True),
        # "not every" denies that a claim holds for all, not the claim itself
        (
            "Not every fully-connected layer is a convolution.",
            "A convolutional layer is a special case of a fully-connected linear layer.",
            False,
        ),
        ("Momentum does not always speed up gradient descent.", "Momentum speeds up gradient descent.", False),
        (
            "Not every convolution can be written as a fully-connected layer.",
            "Every convolutional layer can be expressed as a fully-connected layer.",
            True,
        ),
        # "convolutional" and "convolution" are one word for the alignment
        (
            "Every convolution can be written as a fully-connected layer.",
            "Every convolutional layer can be expressed as a fully-connected layer, but a general fully-connected "
            "layer cannot be expressed as a convolution.",
            False,
        ),
    ],
)
def test_contradiction(student, reference, expected):
    assert lexical.contradicts(student, reference) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("The KL is non-negative.", True), ("It can be nonzero.", True), ("A non-linear activation follows.", False),
     ("One non-zero entry per row.", False), ("Nonetheless it converges.", False)],
)
def test_non_denies_as_a_predicate_only(text, expected):
    assert lexical.negated(text) is expected


def test_keyword_list_and_claims():
    assert lexical.is_keyword_list("momentum, convexity, condition number, oscillation, velocity, Nesterov.")
    assert not lexical.is_keyword_list("RNN: gradient clipping")
    assert not lexical.is_keyword_list("Momentum accumulates velocity and damps the oscillation.")
    # pseudo-code or a derivation on one line states its claims as relations, with hardly a function word
    derivation = "log p(x) = ELBO + KL ; KL >= 0 => log p(x) >= ELBO ; ELBO computable, log p(x) intractable"
    assert lexical.relations(derivation) == 4 and not lexical.is_keyword_list(derivation)
    assert lexical.is_keyword_list("ELBO, KL divergence, posterior, variational inference, lower bound, reparametrisation")
    assert lexical.relations("a -> b, x <= y, z != 0, i == j, p ≈ q") == 5
    assert lexical.is_fragment("Condition number.")
    assert not lexical.is_fragment("It converges.")


def test_copies_question():
    prompt = "The loss surface of a model is convex. Is using momentum in gradient descent expected to help? Explain."
    assert lexical.copies_question("The loss surface of a model is convex.", prompt)
    assert lexical.copies_question("Will momentum help here?", prompt)
    assert not lexical.copies_question("No, momentum does not help on a convex loss.", prompt)


def test_calibration_is_monotone_pinned_and_moves_towards_the_ta():
    cal = fit_calibration([0.6, 0.3, 0.1, 0.5], [1.0, 0.5, 0.0, 0.4])
    assert cal is not None
    assert cal(0.0) == 0.0 and cal(1.0) == 1.0
    # 5 of 6 exemplar pairs ranked as the TA did: tau 2/3, four exemplars: trust 4/6 * 2/3
    assert cal.trust == pytest.approx(4 / 9, abs=1e-3)
    assert cal(0.6) == pytest.approx(0.6 + cal.trust * 0.4)
    grid = [cal(x / 100) for x in range(101)]
    assert all(a <= b + 1e-12 for a, b in zip(grid, grid[1:]))


def test_calibration_is_not_trusted_when_the_scorer_misranks_exemplars():
    cal = fit_calibration([0.4, 0.5, 0.0], [0.8, 0.6, 0.5])  # the TA ranks 0.5 below 0.4
    assert cal is not None and cal.n_exemplars == 2  # the empty read (raw 0.0) is not used
    assert cal.ys[1] == pytest.approx(0.7) and cal.ys[2] == pytest.approx(0.7)  # pooled
    assert cal.trust == 0.0 and cal(0.45) == pytest.approx(0.45)
    assert fit_calibration([0.0, 0.01], [0.3, 0.2]) is None


@pytest.mark.parametrize(
    ("student", "reference", "expected"),
    [
        # one word swapped for its opposite, the rest the same claim
        ("A KL divergence is never negative, so the ELBO is a lower bound on log p(x).",
         "The ELBO is an upper bound on log p(x).", True),
        ("The bulb is in an open path.", "The bulb is in a closed path.", True),
        ("Dropout reduces overfitting in large networks.", "Dropout reduces underfitting in large networks.", True),
        # the same claim, or no opposite word
        ("The ELBO is a lower bound on log p(x).", "The ELBO bounds log p(x) from below.", False),
        ("Momentum makes gradient descent converge faster.", "Momentum helps gradient descent converge faster.", False),
        # a clause that holds both words of a pair: which one is swapped is not for words to say
        ("Use a bigger learning rate so the small gradients still lead to large enough updates.",
         "Use a larger learning rate so that the small gradients still make big updates.", False),
        # the student states the reference's first clause; its second clause is not what is compared
        ("Vanishing gradients are caused by a too small learning rate.",
         "The cause of vanishing gradients is choosing too low a learning rate, and a too high learning rate causes "
         "exploding gradients.", False),
        # negation differs: left to the judge and to the negation check
        ("The ELBO is not a lower bound on log p(x).", "The ELBO is an upper bound on log p(x).", False),
        # nothing shared
        ("The learning rate is lower in later epochs.", "The ELBO is an upper bound on log p(x).", False),
    ],
)
def test_a_swapped_opposite_is_told_from_the_same_claim(student, reference, expected):
    assert lexical.opposes(student, reference) is expected
