"""Generated inputs: built from the model's declared shapes, refused before allocating when they are too large."""

from __future__ import annotations

import onnx
import pytest

from jobs.tooling.inputs import InputsTooLarge, generate_inputs
from tests.conftest import make_mlp
from tests.security import hostile_files


def test_generate_inputs__symbolic_batch__takes_the_batch_and_is_deterministic():
    feeds = generate_inputs(make_mlp(), batch=3, seed=7)
    assert feeds["x"].shape == (3, 8) and feeds["x"].dtype == "float32"
    assert (feeds["x"] == generate_inputs(make_mlp(), batch=3, seed=7)["x"]).all()


def test_generate_inputs__declared_input_over_the_limit__is_refused_before_allocating():
    model = onnx.load_model_from_string(hostile_files.big_declared_input(8192))
    with pytest.raises(InputsTooLarge) as raised:
        generate_inputs(model)
    message = str(raised.value)
    assert "'x' [8192, 8192] = 67,108,864" in message
    assert "over the limit of 16,777,216 for generated inputs" in message
    assert "nothing was generated or run" in message


def test_generate_inputs__limit_counts_every_input_at_the_batch_asked():
    model = make_mlp()  # x [N, 8]
    assert generate_inputs(model, batch=4, max_elements=32)["x"].shape == (4, 8)
    with pytest.raises(InputsTooLarge, match="need 40 generated values"):
        generate_inputs(model, batch=5, max_elements=32)
