"""Generated inputs: built from the model's declared shapes, refused before allocating when they are too large."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from jobs.tooling.inputs import GENERATED_STRING, InputsNotGenerated, InputsTooLarge, generate_inputs
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


def model_with_input(value_info: onnx.ValueInfoProto) -> onnx.ModelProto:
    """A node-less model with one input: generation reads only the declared inputs."""
    return helper.make_model(helper.make_graph([], "inputs", [value_info], []))


def test_generate_inputs__sequence_of_tensors__is_a_one_element_list():
    element = helper.make_tensor_type_proto(TensorProto.INT64, ["N", 3])
    model = model_with_input(helper.make_value_info("parts", helper.make_sequence_type_proto(element)))

    parts = generate_inputs(model, batch=2)["parts"]

    assert isinstance(parts, list) and len(parts) == 1
    assert parts[0].shape == (2, 3) and parts[0].dtype == "int64"


def test_generate_inputs__optional_sequence__is_the_sequence_it_holds():
    element = helper.make_tensor_type_proto(TensorProto.FLOAT, [2])
    optional = helper.make_optional_type_proto(helper.make_sequence_type_proto(element))
    model = model_with_input(helper.make_value_info("maybe", optional))

    maybe = generate_inputs(model)["maybe"]

    assert isinstance(maybe, list) and maybe[0].shape == (2,)


def test_generate_inputs__string_tensor__holds_short_strings():
    model = model_with_input(helper.make_tensor_value_info("text", TensorProto.STRING, ["N", 2]))

    text = generate_inputs(model)["text"]

    assert text.shape == (1, 2) and all(value == GENERATED_STRING for value in text.flat)


@pytest.mark.parametrize(
    ("value_type", "said"),
    [
        (helper.make_map_type_proto(TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, [])), "a map"),
        (
            helper.make_sequence_type_proto(
                helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
            ),
            "a sequence of maps",
        ),
        (helper.make_tensor_type_proto(TensorProto.UNDEFINED, [1]), "holds undefined"),
    ],
)
def test_generate_inputs__input_nothing_is_generated_for__is_refused_with_its_name_and_kind(value_type, said):
    model = model_with_input(helper.make_value_info("features", value_type))

    with pytest.raises(InputsNotGenerated) as raised:
        generate_inputs(model)

    assert str(raised.value).startswith(f"input 'features' {'is ' if said.startswith('a ') else ''}{said}")
    assert "which no values are generated for" in str(raised.value)
