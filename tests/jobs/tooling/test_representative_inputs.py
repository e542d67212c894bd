"""Representative inputs: typical sizes for dynamic dimensions, rows of sample inputs, and what each run says it fed."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from jobs.tooling import live_runtime
from jobs.tooling.errors import DatasetError
from jobs.tooling.inputs import (
    InputsTooLarge,
    TensorSpec,
    describe_generated,
    generate_inputs,
    representative_feeds,
    typical_dim_keys,
    typical_dims_problems,
)
from tests.jobs.tooling.test_live_runtime import one_graph, saved

FLOAT = TensorProto.FLOAT
IMAGE = TensorSpec("image", "float32", ("N", 3, "height", "width"), FLOAT)
AUDIO = TensorSpec("audio", "float32", (1, None), FLOAT)


def image_model():
    """y = image * 2 on [N, 3, height, width]: its output shape is the shape it was fed."""
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    return one_graph(
        [helper.make_node("Mul", ["image", "two"], ["y"])],
        [helper.make_tensor_value_info("image", FLOAT, ["N", 3, "height", "width"])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 3, "height", "width"])],
        initializers=[two],
    )


def lookup_model():
    """Rows of a 10-entry table by index: an index out of range fails at run time; generated zeros do not."""
    table = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4), "table")
    return one_graph(
        [helper.make_node("Gather", ["table", "idx"], ["rows"])],
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("rows", FLOAT, ["N", 4])],
        initializers=[table],
    )


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


# -- typical sizes


def test_generate_inputs__typical_sizes__set_the_named_dynamic_dimensions_and_leave_the_rest_at_1():
    feeds = generate_inputs(image_model(), typical_dims={"height": 640, "width": 480})

    assert feeds["image"].shape == (1, 3, 640, 480)


def test_generate_inputs__typical_size_by_input_and_axis__sets_an_unnamed_axis():
    model = one_graph(
        [helper.make_node("Identity", ["audio"], ["same"])],
        [helper.make_tensor_value_info("audio", FLOAT, [1, None])],
        [helper.make_tensor_value_info("same", FLOAT, [1, None])],
    )

    assert generate_inputs(model, typical_dims={"audio:1": 16000})["audio"].shape == (1, 16000)


def test_generate_inputs__typical_sizes_over_the_cap__are_refused_saying_so():
    with pytest.raises(InputsTooLarge) as raised:
        generate_inputs(image_model(), typical_dims={"height": 4096, "width": 4096})

    assert "at the model's typical sizes" in str(raised.value) and "smaller typical sizes" in str(raised.value)
    assert "'image' [1, 3, 4096, 4096]" in str(raised.value)


def test_typical_dim_keys__names_once_and_input_axis_pairs_for_unnamed_axes():
    assert typical_dim_keys([IMAGE, AUDIO]) == ["N", "height", "width", "audio:1"]


def test_typical_dims_problems__fitting_sizes__have_none():
    assert typical_dims_problems([IMAGE, AUDIO], {"height": 640, "width": 640, "audio:1": 16000}) == []


@pytest.mark.parametrize(
    ("typical", "said"),
    [
        ({"depth": 4}, "'depth' is not a dynamic dimension of the model's inputs"),
        ({"image:1": 4}, "'image:1' is not a dynamic dimension"),  # a fixed axis
        ({"audio:0": 2}, "'audio:0' is not a dynamic dimension"),
        ({"height": 0}, "the typical size of 'height' must be a whole number of at least 1, not 0"),
        ({"height": 2.5}, "not 2.5"),
        ({"height": True}, "not True"),
        ({"height": "640"}, "not '640'"),
        ({"height": 10**12}, "at most 16,777,216"),
        ({"height": 4000, "width": 4000}, "at these typical sizes the generated inputs would hold 48,000,001 values"),
        ([640, 640], "must be an object of dimension -> size"),
    ],
)
def test_typical_dims_problems__each_mistake__is_named(typical, said):
    problems = typical_dims_problems([IMAGE, AUDIO], typical)

    assert any(said in problem for problem in problems), problems


def test_typical_dims_problems__unknown_name__lists_what_may_be_set():
    (problem,) = typical_dims_problems([IMAGE, AUDIO], {"depth": 4})

    assert "N, height, width, audio:1" in problem


def test_describe_generated__says_what_was_generated_and_at_which_sizes():
    assert describe_generated([IMAGE]) == (
        "random floats (standard normal) and zero integers, every dynamic dimension set to 1 (image [1, 3, 1, 1])"
    )
    assert describe_generated([IMAGE], {"height": 640, "width": 640}) == (
        "random floats (standard normal) and zero integers, dynamic dimensions at the typical sizes "
        "height=640, width=640, the others set to 1 (image [1, 3, 640, 640])"
    )


# -- representative feeds


def test_representative_feeds__no_samples__are_generated_at_typical_sizes_and_say_so():
    feeds, source = representative_feeds([IMAGE], typical_dims={"height": 32, "width": 16})

    assert feeds["image"].shape == (1, 3, 32, 16)
    assert source.kind == "generated" and "height=32, width=16" in source.description


def test_representative_feeds__npz_samples__are_its_first_rows_cast_to_the_input(tmp_path):
    images = np.random.default_rng(0).random((5, 3, 8, 8))  # float64 rows, as numpy makes them
    path = npz(tmp_path / "lines.npz", image=images, labels=np.arange(5))

    feeds, source = representative_feeds([IMAGE], sample_path=path, rows=2)

    assert feeds["image"].dtype == np.float32 and np.allclose(feeds["image"], images[:2])
    assert (source.kind, source.description) == ("samples", "the first 2 of 5 rows of the sample inputs 'lines.npz'")


def test_representative_feeds__model_fixes_the_batch__takes_exactly_that_many_rows_padding_the_last(tmp_path):
    spec = TensorSpec("x", "float32", (4, 2), FLOAT)
    path = npz(tmp_path / "two.npz", x=np.array([[1, 2], [3, 4]], dtype=np.float32))

    feeds, source = representative_feeds([spec], sample_path=path, rows=1, sample_name="two rows")

    assert feeds["x"].tolist() == [[1, 2], [3, 4], [3, 4], [3, 4]]
    assert (
        source.description
        == "its 2 row(s), the last repeated to the model's batch of 4 of the sample inputs 'two rows'"
    )


def test_representative_feeds__csv_samples__are_read_with_their_label_column(tmp_path):
    spec = TensorSpec("x", "float32", ("N", 3), FLOAT)
    path = tmp_path / "table.csv"
    path.write_text("a,b,c,label\n1,2,3,0\n4,5,6,1\n")

    feeds, source = representative_feeds([spec], sample_path=path, rows=8)

    assert feeds["x"].tolist() == [[1, 2, 3], [4, 5, 6]] and source.description.startswith("all 2 row(s)")


def test_representative_feeds__samples_not_fitting_the_inputs__raise_naming_the_problem(tmp_path):
    path = npz(tmp_path / "wrong.npz", pixels=np.zeros((2, 3, 8, 8), np.float32))

    with pytest.raises(DatasetError) as raised:
        representative_feeds([IMAGE], sample_path=path)

    assert "missing array for input 'image'" in str(raised.value)


def test_representative_feeds__pickled_samples__are_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("image.npy", buffer.getvalue())

    with pytest.raises(DatasetError) as raised:
        representative_feeds([IMAGE], sample_path=path)

    assert "would need unpickling" in str(raised.value)


# -- the smoke run on representative inputs


def test_smoke_run__typical_sizes__run_at_them_and_the_output_shows_it(tmp_path):
    answer = live_runtime.smoke_run(saved(image_model(), tmp_path), typical_dims={"height": 64, "width": 48})

    assert answer["inputs"] == {"image": [1, 3, 64, 48]}
    assert answer["outputs"][0]["shape"] == [1, 3, 64, 48]
    assert answer["inputs_source"] == "generated" and "height=64, width=48" in answer["inputs_description"]


def test_smoke_run__sample_inputs_that_run__are_recorded_as_samples(tmp_path):
    path = npz(tmp_path / "good.npz", idx=np.array([0, 3, 9]))

    answer = live_runtime.smoke_run(saved(lookup_model(), tmp_path), sample_path=path, sample_name="good")

    assert answer["inputs_source"] == "samples" and answer["inputs"] == {"idx": [3]}
    assert answer["outputs"][0]["shape"] == [3, 4]
    assert "failed" not in answer and "warning" not in answer


def test_smoke_run__sample_inputs_that_fail__come_back_failed_with_the_message(tmp_path):
    path = npz(tmp_path / "bad.npz", idx=np.array([0, 50]))

    answer = live_runtime.smoke_run(saved(lookup_model(), tmp_path), sample_path=path, sample_name="bad")

    assert (
        "a run on its sample inputs failed" in answer["failed"]
        and "all 2 row(s) of the sample inputs 'bad'" in (answer["failed"])
    )
    assert "warning" not in answer and "outputs" not in answer


def test_smoke_run__sample_inputs_not_fitting__fall_back_to_generated_inputs_saying_why(tmp_path):
    path = npz(tmp_path / "other.npz", tokens=np.array([1, 2]))

    answer = live_runtime.smoke_run(saved(lookup_model(), tmp_path), sample_path=path, sample_name="other")

    assert answer["inputs_source"] == "generated" and answer["outputs"][0]["shape"] == [1, 4]
    assert "The sample inputs 'other' do not fit this version's inputs" in answer["samples_refused"]
    assert "missing array for input 'idx'" in answer["samples_refused"]
