"""A demo model trained offline from scikit-learn's bundled digits data (no download)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TrainedDigits:
    onnx_bytes: bytes
    accuracy: float  # top-1 on the held-out split, 0..1
    x_test: np.ndarray  # float32, (n, 64)
    y_test: np.ndarray  # int64, (n,)


def train_digits_classifier(hidden: tuple[int, ...] = (128,), seed: int = 0, max_iter: int = 300) -> TrainedDigits:
    """An MLP on 8x8 digits, exported with skl2onnx: input ``input`` float32 [N, 64], probabilities out."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=max_iter, random_state=seed)
    clf.fit(x_train, y_train)
    model = to_onnx(
        clf,
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    model.doc_string = "MLP digit classifier trained on scikit-learn's bundled 8x8 digits"
    return TrainedDigits(model.SerializeToString(), float(clf.score(x_test, y_test)), x_test, y_test)


def write_digits_demo(directory: Path) -> tuple[Path, Path, float]:
    """Write the demo model and its held-out evaluation set (NPZ); returns the paths and accuracy."""
    directory.mkdir(parents=True, exist_ok=True)
    trained = train_digits_classifier()
    model_path = directory / "digit-classifier.onnx"
    model_path.write_bytes(trained.onnx_bytes)
    data_path = directory / "digits-eval.npz"
    np.savez(data_path, input=trained.x_test, labels=trained.y_test)
    return model_path, data_path, trained.accuracy
