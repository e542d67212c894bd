"""The facts of classical ML models: weights kept in ai.onnx.ml operator attributes, and their compute per row.

The expected figures are counted by hand from the fitted scikit-learn estimator, not from the exported graph.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeRegressor

from jobs.tooling.inspect import inspect_model, ml_operator_stats
from jobs.tooling.reference_models import mlp

FEATURES = 4


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((80, FEATURES)).astype(np.float32)
    labels = (x[:, 0] > 0.5).astype(int) + (x[:, 1] > 0.5)  # three classes
    return x, labels


def test_inspect_model__logistic_regression__counts_its_coefficients_and_intercepts(rows) -> None:
    x, labels = rows
    estimator = LogisticRegression().fit(x, labels)

    facts = inspect_model(to_onnx(estimator, x[:1]))

    weights = estimator.coef_.size + estimator.intercept_.size
    assert facts["parameters"]["count"] == weights == 15
    assert facts["parameters"]["bytes"] == 4 * weights  # float attributes
    assert facts["macs"]["total"] == estimator.coef_.size  # inputs x classes, one row
    assert facts["macs"]["by_op"] == {"LinearClassifier": estimator.coef_.size}


def test_inspect_model__scaler_then_logistic_regression__adds_the_scalers_offsets_and_scales(rows) -> None:
    x, labels = rows
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, labels)
    scaler, classifier = pipeline[0], pipeline[-1]

    facts = inspect_model(to_onnx(pipeline, x[:1]))

    weights = scaler.mean_.size + scaler.scale_.size + classifier.coef_.size + classifier.intercept_.size
    assert facts["parameters"]["count"] == weights
    assert facts["macs"]["by_op"] == {"Scaler": FEATURES, "LinearClassifier": classifier.coef_.size}


def test_inspect_model__random_forest__counts_thresholds_and_leaf_weights_and_bounds_compute_by_depth(rows) -> None:
    x, labels = rows
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, labels)
    trees = [tree.tree_ for tree in forest.estimators_]
    classes = len(forest.classes_)

    facts = inspect_model(to_onnx(forest, x[:1]))

    nodes = sum(tree.node_count for tree in trees)
    branches = sum(tree.node_count - tree.n_leaves for tree in trees)
    leaves = sum(tree.n_leaves for tree in trees)
    assert facts["parameters"]["count"] == branches + leaves * classes  # one threshold per split, a weight per class
    # Every node stores six int64 ids/flags and two floats (threshold, hit rate); every leaf weight three int64 ids
    # and the float weight.
    assert facts["parameters"]["bytes"] == nodes * (6 * 8 + 2 * 4) + leaves * classes * (3 * 8 + 4)
    assert facts["macs"]["total"] == sum(tree.max_depth for tree in trees) > 0  # one comparison per level


def test_inspect_model__decision_tree_regressor__counts_its_splits_and_leaves(rows) -> None:
    x, labels = rows
    tree = DecisionTreeRegressor(max_depth=4, random_state=0).fit(x, labels.astype(np.float32))

    facts = inspect_model(to_onnx(tree, x[:1]))

    assert facts["parameters"]["count"] == tree.tree_.node_count  # (node_count - leaves) splits + one value a leaf
    assert facts["macs"] == {
        "total": tree.tree_.max_depth,
        "by_op": {"TreeEnsembleRegressor": tree.tree_.max_depth},
        "unknown_nodes": 0,
    }


@pytest.mark.filterwarnings("ignore:Attribute `prob:FutureWarning")  # skl2onnx reads probA_/probB_
def test_ml_operator_stats__svm__counts_support_vectors_dual_coefficients_and_intercepts(rows) -> None:
    x, labels = rows
    svm = SVC().fit(x, labels)
    node = next(n for n in to_onnx(svm, x[:1]).graph.node if n.op_type == "SVMClassifier")

    stats = ml_operator_stats(node)

    assert stats is not None
    assert stats.parameters == svm.support_vectors_.size + svm.dual_coef_.size + svm.intercept_.size
    assert stats.macs == svm.support_vectors_.size + svm.dual_coef_.size  # kernel per vector, then weighted sum


def _tree_ensemble_v5(true_ids: list[int], true_leaf: list[int], roots: list[int]) -> onnx.ModelProto:
    """ai.onnx.ml 5 TreeEnsemble with three split nodes, whose false children are leaves 0..2, plus leaves 3..4."""
    splits = helper.make_tensor("splits", TensorProto.FLOAT, [3], [0.5, 0.25, 0.75])
    node = helper.make_node(
        "TreeEnsemble",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=1,
        nodes_featureids=[0, 1, 0],
        nodes_splits=splits,
        nodes_modes=helper.make_tensor("modes", TensorProto.UINT8, [3], [0, 0, 0]),
        nodes_truenodeids=true_ids,
        nodes_trueleafs=true_leaf,
        nodes_falsenodeids=[0, 1, 2],
        nodes_falseleafs=[1, 1, 1],
        tree_roots=roots,
        leaf_targetids=[0] * 5,
        leaf_weights=helper.make_tensor("weights", TensorProto.FLOAT, [5], [1.0, 2.0, 3.0, 4.0, 5.0]),
    )
    graph = helper.make_graph(
        [node],
        "trees",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)])


def test_inspect_model__tree_ensemble_v5__counts_splits_and_leaf_weights_and_sums_tree_depths() -> None:
    # Tree 1: split 0 -> (split 1 -> leaves), leaf; tree 2: split 2 -> leaves. Depths 2 and 1.
    model = _tree_ensemble_v5(true_ids=[1, 3, 4], true_leaf=[0, 1, 1], roots=[0, 2])
    onnx.checker.check_model(model)

    facts = inspect_model(model)

    assert facts["parameters"]["count"] == 3 + 5
    assert facts["macs"]["total"] == 2 + 1


def test_inspect_model__tree_that_loops_back_on_itself__is_counted_once_and_finishes() -> None:
    model = _tree_ensemble_v5(true_ids=[0, 3, 4], true_leaf=[0, 1, 1], roots=[0, 2])

    assert inspect_model(model)["macs"]["total"] == 1 + 1


def test_inspect_model__neural_network__is_counted_from_its_initializers_as_before() -> None:
    facts = inspect_model(mlp([16, 64, 10]))

    assert facts["parameters"]["count"] == 16 * 64 + 64 + 64 * 10 + 10
    assert facts["macs"]["total"] == 16 * 64 + 64 * 10
