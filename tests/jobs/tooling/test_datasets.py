from __future__ import annotations

import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest

from jobs.tooling.common import model_input_specs
from jobs.tooling.datasets import Dataset, DatasetLimits, as_dataset, iter_batches, load_dataset
from jobs.tooling.errors import DatasetError
from tests.security import hostile_files


@pytest.fixture(scope="module")
def digits_specs(digits):
    return model_input_specs(digits.model)


def write_npz(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def problems_of(path, specs, **kwargs) -> str:
    with pytest.raises(DatasetError) as raised:
        load_dataset(path, specs, **kwargs)
    return "\n".join(raised.value.problems)


def test_load_dataset__npz_matching_the_model__loads_inputs_and_labels(digits, digits_specs):
    dataset = load_dataset(digits.npz, digits_specs, require_labels=True)
    assert dataset.rows == len(digits.y_test)
    np.testing.assert_array_equal(dataset.labels, digits.y_test)
    assert set(dataset.inputs) == {"input"}


def test_load_dataset__csv_matching_the_model__gives_the_same_arrays_as_npz(digits, digits_specs):
    from_csv = load_dataset(digits.csv, digits_specs, require_labels=True)
    from_npz = load_dataset(digits.npz, digits_specs)
    np.testing.assert_allclose(from_csv.inputs["input"], from_npz.inputs["input"], rtol=1e-5)
    np.testing.assert_array_equal(from_csv.labels, from_npz.labels)
    assert from_csv.labels.dtype == np.int64


def test_load_dataset__wrong_array_name__names_the_missing_input_and_the_stray_array(tmp_path, digits_specs):
    path = write_npz(tmp_path, pixels=np.zeros((4, 64), np.float32), labels=np.zeros(4, np.int64))
    problems = problems_of(path, digits_specs)
    assert "missing array for input 'input' (found 'pixels')" in problems
    assert "unexpected array 'pixels'" in problems


def test_load_dataset__wrong_shape__gives_the_expected_shape(tmp_path, digits_specs):
    path = write_npz(tmp_path, input=np.zeros((4, 63), np.float32))
    assert "'input' has shape (4, 63); the input expects (rows, 64)" in problems_of(path, digits_specs)


def test_load_dataset__wrong_rank__gives_the_expected_shape(tmp_path, digits_specs):
    path = write_npz(tmp_path, input=np.zeros((4, 8, 8), np.float32))
    assert "'input' has shape (4, 8, 8); the input expects (rows, 64)" in problems_of(path, digits_specs)


def test_load_dataset__wrong_dtype__names_both_dtypes(tmp_path, digits_specs):
    path = write_npz(tmp_path, input=np.full((4, 64), "a"))
    assert "'input' holds <U1 values; the input expects float32" in problems_of(path, digits_specs)


def test_load_dataset__complex_numbers__are_a_dtype_mismatch(tmp_path, digits_specs):
    path = write_npz(tmp_path, input=np.zeros((4, 64), np.complex64))
    assert "holds complex64 values; the input expects float32" in problems_of(path, digits_specs)


def test_load_dataset__float64_for_a_float32_input__is_accepted_and_cast_when_fed(tmp_path, digits_specs):
    dataset = load_dataset(write_npz(tmp_path, input=np.zeros((4, 64))), digits_specs)
    feeds, valid = next(iter_batches(dataset, digits_specs))
    assert feeds["input"].dtype == np.float32 and valid == 4


def test_load_dataset__row_counts_differ__gives_each_count(tmp_path, digits_specs):
    path = write_npz(tmp_path, input=np.zeros((5, 64), np.float32), labels=np.zeros(4, np.int64))
    assert "row counts differ between arrays: 'input' has 5, 'labels' has 4" in problems_of(path, digits_specs)


def test_load_dataset__nan_values__are_counted_with_their_first_row(tmp_path, digits_specs):
    features = np.zeros((5, 64), np.float32)
    features[3, 7] = np.nan
    features[4, 0] = np.inf
    path = write_npz(tmp_path, input=features, labels=np.array([0, 1, 2, np.nan, 4]))
    problems = problems_of(path, digits_specs)
    assert "'input' holds 2 NaN or infinite values (first in row 3)" in problems
    assert "'labels' holds 1 NaN or infinite values (first in row 3)" in problems


def test_load_dataset__object_arrays__are_refused_without_unpickling(tmp_path, digits_specs):
    path = tmp_path / "pickled.npz"
    np.savez(path, input=np.array([{"a": 1}] * 4, dtype=object))
    assert "would need unpickling" in problems_of(path, digits_specs)


def test_load_dataset__not_an_archive__is_refused(tmp_path, digits_specs):
    path = tmp_path / "data.npz"
    path.write_bytes(b"not a zip")
    assert "not a readable NPZ archive" in problems_of(path, digits_specs)


def test_load_dataset__labels_required_but_absent__says_how_to_name_them(tmp_path, digits_specs):
    path = write_npz(tmp_path, input=np.zeros((4, 64), np.float32))
    assert "an array named 'labels'" in problems_of(path, digits_specs, require_labels=True)


def write_csv(tmp_path, text: str):
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_load_dataset__non_numeric_csv_cells__are_listed_by_row_and_column(tmp_path, regressor_path):
    header = ",".join(f"f{i}" for i in range(8)) + ",label"
    rows = ["1,2,3,4,5,6,7,8,0.5", "1,two,3,4,5,6,7,8,0.5", "1,2,3,4,5,6,7,,0.5"]
    path = write_csv(tmp_path, "\n".join([header, *rows]))
    problems = problems_of(path, model_input_specs(regressor_path))
    assert "2 non-numeric CSV cells" in problems
    assert "row 3 column 'f1': 'two'" in problems
    assert "row 4 column 'f7': an empty cell" in problems


def test_load_dataset__nan_in_csv__is_reported(tmp_path, regressor_path):
    header = ",".join(f"f{i}" for i in range(8)) + ",label"
    path = write_csv(tmp_path, "\n".join([header, "1,2,3,4,5,6,7,8,1", "1,2,3,nan,5,6,7,8,1"]))
    assert "'x' holds 1 NaN or infinite values (first in row 1)" in problems_of(path, model_input_specs(regressor_path))


def test_load_dataset__csv_with_too_few_columns__says_how_many_are_expected(tmp_path, regressor_path):
    path = write_csv(tmp_path, "a,b,label\n1,2,3\n")
    assert "the CSV has 2 feature columns; input 'x' expects 8" in problems_of(path, model_input_specs(regressor_path))


def test_load_dataset__csv_row_with_missing_cells__is_reported(tmp_path, regressor_path):
    header = ",".join(f"f{i}" for i in range(8)) + ",label"
    path = write_csv(tmp_path, "\n".join([header, "1,2,3,4,5,6,7,8,1", "1,2,3"]))
    assert "CSV row 3 has 3 cells; the header has 9" in problems_of(path, model_input_specs(regressor_path))


def test_load_dataset__csv_of_many_short_rows__names_five_and_counts_the_rest(tmp_path, regressor_path):
    header = ",".join(f"f{i}" for i in range(8)) + ",label"
    path = write_csv(tmp_path, "\n".join([header, *["1,2,3"] * 1000]))
    problems = problems_of(path, model_input_specs(regressor_path))
    assert "CSV row 6 has 3 cells; the header has 9" in problems
    assert "CSV row 7 has" not in problems
    assert "and 995 more CSV rows of the wrong width" in problems


def test_load_dataset__csv_naming_a_column_twice__is_refused(tmp_path, regressor_path):
    path = write_csv(tmp_path, "a,b,a,label\n1,2,3,0\n")
    assert "the CSV header names 'a' more than once" in problems_of(path, model_input_specs(regressor_path))


def test_load_dataset__csv_without_header__is_refused(tmp_path, regressor_path):
    path = write_csv(tmp_path, "1,2,3,4,5,6,7,8,1\n1,2,3,4,5,6,7,8,1\n")
    assert "must name the columns" in problems_of(path, model_input_specs(regressor_path))


def test_as_dataset__in_memory_dataset__is_checked_like_a_file(digits_specs):
    with pytest.raises(DatasetError, match="missing array for input 'input'"):
        as_dataset(Dataset(inputs={"x": np.zeros((2, 64), np.float32)}, labels=None, source="memory"), digits_specs)


def test_iter_batches__fixed_first_dim__feeds_one_row_at_a_time(fixed_batch_path):
    specs = model_input_specs(fixed_batch_path)
    dataset = Dataset(inputs={"x": np.arange(3 * 16, dtype=np.float32).reshape(3, 16)}, labels=None, source="m")
    batches = list(iter_batches(dataset, specs, batch_size=256))
    assert [feeds["x"].shape for feeds, _ in batches] == [(1, 16)] * 3
    assert [valid for _, valid in batches] == [1, 1, 1]


def test_iter_batches__symbolic_first_dim__batches_rows(mlp_path):
    specs = model_input_specs(mlp_path)
    dataset = Dataset(inputs={"x": np.zeros((10, 16), np.float32)}, labels=None, source="m")
    assert [valid for _, valid in iter_batches(dataset, specs, batch_size=4)] == [4, 4, 2]


def test_dataset_error__survives_pickling_with_the_same_message():
    error = DatasetError(["'x' has shape (2,)", "no labels"])
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) == "dataset does not fit the model: 'x' has shape (2,); no labels"
    assert copy.problems == error.problems


# --- hostile files under limits ------------------------------------------------------------------

LIMITS = DatasetLimits(max_bytes=64 * 1024 * 1024, max_elements=1_000_000, max_rows=10_000, max_columns=100)


def peak_rss_growth_mb(action) -> float:
    """MB the process's peak resident memory rose above its current size while ``action`` ran (Linux)."""
    status = Path("/proc/self/status")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current size
    before = int(re.search(r"VmRSS:\s+(\d+)", status.read_text()).group(1))
    try:
        action()
    finally:
        peak = int(re.search(r"VmHWM:\s+(\d+)", status.read_text()).group(1))
    return (peak - before) / 1024


def limited_problems(path, specs) -> str:
    with pytest.raises(DatasetError) as raised:
        load_dataset(path, specs, limits=LIMITS)
    return "\n".join(raised.value.problems)


def test_load_dataset__npz_bomb__is_refused_from_its_zip_directory_without_decompressing(tmp_path, digits_specs):
    path = tmp_path / "bomb.npz"
    path.write_bytes(hostile_files.npz_bomb())  # 2 MB holding 2 GiB of zeros
    started = time.perf_counter()
    grew = peak_rss_growth_mb(lambda: limited_problems(path, digits_specs))
    assert time.perf_counter() - started < 2 and grew < 32
    problems = limited_problems(path, digits_specs)
    assert "bomb.npz unpacks to 2,147,483,648 bytes (2,048.0 MB) from 2.0 MB" in problems
    assert "at most 64.0 MB" in problems


def test_load_dataset__npz_header_declaring_more_than_the_archive_holds__is_refused(tmp_path, digits_specs):
    path = tmp_path / "data.npz"
    path.write_bytes(hostile_files.npz_declaring((1 << 40, 64)))
    assert (
        "array 'x' declares shape (1099511627776, 64) of float32 (281,474,976,710,656 bytes) but the archive "
        "holds 16 bytes for it"
    ) in limited_problems(path, digits_specs)


def test_load_dataset__npz_over_the_value_limit__is_refused_with_the_figures(tmp_path, digits_specs):
    path = write_npz(tmp_path, input=np.zeros((5000, 64), np.float32), labels=np.zeros(5000, np.int64))
    limits = DatasetLimits(max_bytes=LIMITS.max_bytes, max_elements=300_000, max_rows=10_000, max_columns=100)
    with pytest.raises(DatasetError, match="data.npz holds 325,000 values; a dataset may hold at most 300,000"):
        load_dataset(path, digits_specs, limits=limits)


def test_load_dataset__npz_over_the_row_limit__is_refused(tmp_path, digits_specs):
    path = write_npz(tmp_path, input=np.zeros((10_001, 64), np.float32))
    assert "array 'input' has 10,001 rows; a dataset may have at most 10,000" in limited_problems(path, digits_specs)


def test_load_dataset__npz_of_many_entries__is_refused_before_zipfile_reads_them(tmp_path, digits_specs):
    path = tmp_path / "data.npz"
    path.write_bytes(hostile_files.npz_with_entries(5000))
    assert "holds 5,000 or more entries; a dataset has at most 1,024 arrays" in limited_problems(path, digits_specs)


def test_load_dataset__npz_with_pickles_under_limits__is_refused_from_the_header(tmp_path, digits_specs):
    path = tmp_path / "data.npz"
    path.write_bytes(hostile_files.npz_pickled())
    assert "would need unpickling" in limited_problems(path, digits_specs)


def test_load_dataset__npz_within_limits__loads_as_without_them(digits, digits_specs):
    dataset = load_dataset(digits.npz, digits_specs, require_labels=True, limits=LIMITS)
    np.testing.assert_array_equal(dataset.labels, digits.y_test)


def test_load_dataset__csv_with_a_million_columns__is_refused_from_its_first_line(tmp_path, regressor_path):
    path = tmp_path / "wide.csv"
    path.write_bytes(hostile_files.csv_with_columns(1_000_000))
    started = time.perf_counter()
    problems = limited_problems(path, model_input_specs(regressor_path))
    assert time.perf_counter() - started < 1
    assert "the CSV header names more than 100 columns; a dataset may have at most 100" in problems


def test_load_dataset__csv_over_the_value_limit__is_refused_from_its_line_count(tmp_path, regressor_path):
    header = ",".join(f"f{i}" for i in range(8)) + ",label\n"
    path = write_csv(tmp_path, header + "1,2,3,4,5,6,7,8,1\n" * 10_001)
    assert (
        "the CSV has 10,001 lines of 9 columns (90,009 values); a dataset may have at most 10,000 rows and "
        "1,000,000 values"
    ) in limited_problems(path, model_input_specs(regressor_path))


def test_load_dataset__csv_line_longer_than_numbers_need__is_refused(tmp_path, regressor_path):
    header = ",".join(f"f{i}" for i in range(8)) + ",label\n"
    path = write_csv(tmp_path, header + "1" * 100_000 + ",2,3,4,5,6,7,8,1\n")
    assert "a CSV line is longer than 1,600 characters" in limited_problems(path, model_input_specs(regressor_path))


def test_load_dataset__csv_is_parsed_with_memory_near_its_values(tmp_path, regressor_path):
    header = ",".join(f"f{i}" for i in range(8)) + ",label\n"
    rows = 200_000  # 16 MB of text, 14 MB of float64 values
    path = write_csv(tmp_path, header + "0.123456,1.5,2.25,3,4,5,6,7.75,1\n" * rows)
    specs = model_input_specs(regressor_path)
    limits = DatasetLimits(max_bytes=LIMITS.max_bytes, max_elements=2_000_000, max_rows=rows, max_columns=100)
    loaded = []
    grew = peak_rss_growth_mb(lambda: loaded.append(load_dataset(path, specs, limits=limits)))
    assert loaded[0].rows == rows and loaded[0].inputs["x"].shape == (rows, 8)
    assert grew < 64  # the whole file as lists of strings took ~22x its size, here about 350 MB
