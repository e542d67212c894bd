from __future__ import annotations

import numpy as np
import pytest

from jobs.tooling import fidelity
from jobs.tooling.fidelity import (
    SKIP,
    budget_words,
    compare,
    compare_all,
    ctc_greedy_decode,
    describe_output,
    infer_metric,
    primary_output,
    within_budget,
)

RNG = np.random.default_rng(0)


def softmax(values: np.ndarray) -> np.ndarray:
    exp = np.exp(values - values.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize(
    ("name", "value", "metric"),
    [
        ("probabilities", softmax(RNG.standard_normal((8, 10))).astype(np.float32), "top1_agreement"),
        ("logits", RNG.standard_normal((8, 10)).astype(np.float32), "top1_agreement"),
        ("speech", RNG.uniform(0, 1, (8, 1)).astype(np.float32), "decision_agreement"),
        ("score", RNG.uniform(0, 1, (8,)).astype(np.float32), "decision_agreement"),
        ("price", RNG.standard_normal((8, 1)).astype(np.float32) * 100, "relative_l2"),
        ("out", RNG.uniform(0, 1, (2, 1, 16, 16)).astype(np.float32), "iou"),
        ("heat", RNG.uniform(0, 1, (2, 16, 16)).astype(np.float32), "iou"),
        ("out", softmax(RNG.standard_normal((2, 20, 6))).astype(np.float32), "ctc_decoded_equality"),
        ("out", np.log(softmax(RNG.standard_normal((2, 20, 6)))).astype(np.float32), "ctc_decoded_equality"),
        ("embedding", RNG.standard_normal((8, 128)).astype(np.float32), "relative_l2"),
        ("label", np.arange(8, dtype=np.int64), "exact_equality"),
        ("words", np.array(["a", "b"], dtype=object), "exact_equality"),
        ("output_probability", [{0: 0.2, 1: 0.8}, {0: 0.9, 1: 0.1}], "top1_agreement"),
        ("nothing", None, SKIP),
        ("one_map", {"a": 1.0}, SKIP),
    ],
)
def test_infer_metric__from_the_parents_values__fits_the_kind_of_output(name, value, metric):
    assert infer_metric(describe_output(name, value)) == metric


def test_infer_metric__from_a_declared_output_spec__needs_no_values():
    assert infer_metric({"name": "probabilities", "dtype": "float32", "shape": ["N", 10]}) == "top1_agreement"
    assert infer_metric({"name": "mask", "dtype": "float32", "shape": ["N", 1, 640, 640]}) == "iou"
    assert infer_metric({"name": "label", "dtype": "int64", "shape": ["N"]}) == "exact_equality"
    assert infer_metric({"name": "output_probability", "dtype": "sequence_type", "shape": None}) == "top1_agreement"


@pytest.mark.parametrize(
    ("metric", "passing", "failing"),
    [
        ("top1_agreement", 0.99, 0.989),
        ("decision_agreement", 0.995, 0.98),
        ("step_argmax_agreement", 1.0, 0.9),
        ("ctc_decoded_equality", 0.99, 0.975),
        ("iou", 0.992, 0.95),
        ("pixel_flip_rate", 0.01, 0.011),
        ("relative_l2", 0.009, 0.02),
        ("cosine", 0.99, 0.98),
    ],
)
def test_within_budget__one_point__reads_in_the_metrics_own_words(metric, passing, failing):
    assert within_budget(metric, passing, 1.0)
    assert not within_budget(metric, failing, 1.0)


def test_budget_words__say_what_the_budget_means():
    assert budget_words("pixel_flip_rate", 1.0) == "at most 1% of pixels flip"
    assert budget_words("decision_agreement", 1.0) == "decisions agree on at least 99% of rows"
    assert budget_words("cosine", 1.0) == "cosine similarity of at least 0.99"


def test_ctc_greedy_decode__collapses_repeats_then_drops_the_blank():
    assert ctc_greedy_decode(np.array([0, 1, 1, 0, 1, 2, 2, 0])) == [1, 1, 2]


def one_hot(steps: list[list[int]], classes: int = 4) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[np.array(steps)]


def test_compare__sequences__judged_by_what_they_decode_to_not_by_each_step():
    parent = one_hot([[1, 1, 0, 2], [3, 0, 0, 3]])
    child = one_hot([[1, 0, 0, 2], [3, 3, 3, 3]])
    figures = compare("out", parent, child)
    assert figures["metric"] == "ctc_decoded_equality"
    # The first row decodes to [1, 2] in both though a step differs; the second reads [3, 3] against [3].
    assert figures["value"] == 0.5
    assert figures["step_argmax_agreement"] == 5 / 8


def test_compare__thresholded_maps__report_iou_and_pixel_flips():
    parent = np.zeros((1, 1, 4, 4), np.float32)
    parent[0, 0, :2, :2] = 0.9  # 4 pixels on
    child = parent.copy()
    child[0, 0, 0, 0] = 0.1  # one of them off
    child[0, 0, 3, 3] = 0.8  # one other on
    figures = compare("mask", parent, child)
    assert figures == {"metric": "iou", "value": 3 / 5, "pixel_flip_rate": 2 / 16, "threshold": 0.5}
    assert compare("mask", parent, child, "pixel_flip_rate")["value"] == 2 / 16


def test_compare__embeddings__relative_l2_and_cosine():
    parent = RNG.standard_normal((4, 64))
    child = parent * 1.01
    figures = compare("embedding", parent, child)
    assert figures["metric"] == "relative_l2" and figures["value"] == pytest.approx(0.01)
    assert figures["cosine"] == pytest.approx(1.0)
    assert compare("embedding", parent, -parent, "cosine")["value"] == pytest.approx(-1.0)


def test_compare__zipmap_maps__compared_as_a_matrix_with_keys_sorted():
    parent = [{"cat": 0.7, "dog": 0.3}, {"cat": 0.4, "dog": 0.6}]
    child = [{"dog": 0.2, "cat": 0.8}, {"dog": 0.45, "cat": 0.55}]  # the second row flips
    assert compare("output_probability", parent, child) == {"metric": "top1_agreement", "value": 0.5, "units": 2}


def test_compare__strings__exact_equality():
    figures = compare("label", np.array(["a", "b", "c"], dtype=object), np.array(["a", "b", "d"], dtype=object))
    assert figures == {"metric": "exact_equality", "value": pytest.approx(2 / 3), "units": 3}


def test_compare__what_cannot_be_compared__is_skipped_with_a_reason_never_raised():
    assert compare("x", None, None) == {"metric": SKIP, "skipped": "the output is empty (None)"}
    assert "other keys" in compare("p", [{"a": 1.0}], [{"b": 1.0}])["skipped"]
    assert "shape [3] in the variant" in compare("y", np.zeros(2), np.zeros(3))["skipped"]
    assert (
        "needs numbers" in compare("s", np.array(["a"], dtype=object), np.array(["a"], dtype=object), "iou")["skipped"]
    )
    assert "unknown metric" in compare("y", np.zeros(2), np.zeros(2), "psnr")["skipped"]


def test_compare_all__adds_within_budget_and_the_primary_output_skips_labels_and_skipped_outputs():
    parent = [np.array([0, 1]), softmax(np.array([[2.0, 1.0], [0.0, 3.0]])), None]
    figures = compare_all(["label", "probabilities", "extra"], parent, parent, budget_points=1.0)
    assert figures["label"] == {"metric": "exact_equality", "value": 1.0, "units": 2, "within_budget": True}
    assert figures["probabilities"]["within_budget"] is True
    assert figures["extra"]["metric"] == SKIP and "within_budget" not in figures["extra"]
    assert primary_output(figures) == "probabilities"
    assert primary_output(figures, {"label": "exact_equality"}) == "label"


def test_compare__child_with_nan_where_the_parent_is_finite__counts_them():
    parent = np.ones((2, 3), np.float32)
    child = parent.copy()
    child[0, 0] = np.nan
    assert compare("logits", parent, child)["nonfinite"] == 1


def test_infer_metric__recurrent_state_and_boxes__are_compared_by_distance_whatever_their_shape():
    state = describe_output("stateN", RNG.standard_normal((2, 1, 128)).astype(np.float32))
    boxes = describe_output("boxes", RNG.uniform(0, 640, (1, 100, 4)).astype(np.float32))
    assert infer_metric(state) == infer_metric(boxes) == "relative_l2"


def test_shown_share__is_the_one_sided_wilson_bound_statsmodels_gives():
    from statsmodels.stats.proportion import proportion_confint

    for agreeing, units in [(12, 12), (11, 12), (268, 270), (93, 93)]:
        low, _high = proportion_confint(agreeing, units, alpha=0.10, method="wilson")  # two-sided 90% = one-sided 95%
        assert fidelity.shown_share(agreeing / units, units) == pytest.approx(low, rel=1e-9)


def test_units_needed__is_the_fewest_perfectly_agreeing_units_that_show_the_budget():
    needed = fidelity.units_needed(1.0)
    assert fidelity.within_budget("top1_agreement", fidelity.shown_share(1.0, needed), 1.0)
    assert not fidelity.within_budget("top1_agreement", fidelity.shown_share(1.0, needed - 1), 1.0)


def test_compare__shares_report_the_units_they_count_and_distances_do_not():
    logits = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]]
    assert fidelity.compare("scores", logits, logits)["units"] == 6
    embedding = np.linspace(0, 1, 24, dtype=np.float32).reshape(6, 4)
    assert "units" not in fidelity.compare("embedding", embedding, embedding)


def test_compare__shares_count_rows_not_the_steps_or_values_inside_a_row():
    # Steps of one line fail together (one input); counting 4 x 50 steps as 200 independent units would claim a
    # confidence that 4 lines cannot give.
    steps = np.eye(3, dtype=np.float32)[RNG.integers(0, 3, (4, 50))]
    assert fidelity.compare("ctc", steps, steps, "step_argmax_agreement")["units"] == 4
    assert fidelity.compare("ctc", steps, steps, "ctc_decoded_equality")["units"] == 4
    assert fidelity.compare("ids", np.zeros((4, 7), np.int64), np.zeros((4, 7), np.int64))["units"] == 4
