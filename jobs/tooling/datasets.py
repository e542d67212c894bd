"""Evaluation and calibration datasets: NPZ (one array per model input, plus ``labels``) or CSV (tabular).

Every check says exactly what does not match, so the person who uploaded the file can fix it. NPZ files are
read with ``allow_pickle=False``: an uploaded file must never run code on the worker.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jobs.tooling.common import PathLike
from jobs.tooling.errors import DatasetError
from jobs.tooling.inputs import TensorSpec

LABELS_KEY = "labels"
_MAX_EXAMPLES = 5  # cell-level problems listed by name before "and N more"


@dataclass
class Dataset:
    inputs: dict[str, np.ndarray]  # model input name -> array, rows along axis 0
    labels: np.ndarray | None
    source: str

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values())))


def load_dataset(
    path: PathLike, specs: list[TensorSpec], *, label_column: str = "label", require_labels: bool = False
) -> Dataset:
    """Read an NPZ or CSV file and check it against the model's input specs; DatasetError lists every problem."""
    path = Path(path)
    if is_npz(path):
        inputs, labels = _read_npz(path, specs)
    else:
        inputs, labels = _read_csv(path, specs, label_column)
    problems = check_arrays(inputs, labels, specs)
    if require_labels and labels is None:
        where = f"an array named '{LABELS_KEY}'" if is_npz(path) else f"a column named '{label_column}'"
        problems.append(f"no labels: accuracy needs {where}")
    if problems:
        raise DatasetError(problems)
    return Dataset(inputs={spec.name: inputs[spec.name] for spec in specs}, labels=labels, source=path.name)


def as_dataset(dataset: Dataset | PathLike, specs: list[TensorSpec], *, require_labels: bool = False) -> Dataset:
    """Accept a path (as a Celery task holds it) or an already loaded dataset (as a benchmark holds it)."""
    if isinstance(dataset, Dataset):
        problems = check_arrays(dataset.inputs, dataset.labels, specs)
        if require_labels and dataset.labels is None:
            problems.append("no labels: accuracy needs labels")
        if problems:
            raise DatasetError(problems)
        return dataset
    return load_dataset(dataset, specs, require_labels=require_labels)


def check_arrays(inputs: dict[str, np.ndarray], labels: np.ndarray | None, specs: list[TensorSpec]) -> list[str]:
    """Every mismatch between named arrays and the model's inputs, as sentences; empty when they fit."""
    problems: list[str] = []
    expected = {spec.name for spec in specs}
    for name in sorted(set(inputs) - expected):
        problems.append(f"unexpected array '{name}': the model's inputs are {_names(expected)}")
    for spec in specs:
        if spec.name not in inputs:
            problems.append(f"missing array for input '{spec.name}' (found {_names(inputs) or 'none'})")
        else:
            problems.extend(_array_problems(spec, inputs[spec.name]))
    if labels is not None:
        if labels.dtype.kind not in "biuf":
            problems.append(f"'{LABELS_KEY}' holds {labels.dtype} values; labels must be numbers")
        else:
            problems.extend(_nan_problems(LABELS_KEY, labels))
    row_counts = {name: len(array) for name, array in inputs.items() if array.ndim > 0}
    if labels is not None and labels.ndim > 0:
        row_counts[LABELS_KEY] = len(labels)
    if len(set(row_counts.values())) > 1:
        counts = ", ".join(f"'{name}' has {count}" for name, count in row_counts.items())
        problems.append(f"row counts differ between arrays: {counts}")
    elif row_counts and not any(row_counts.values()):
        problems.append("the dataset has no rows")
    return problems


def iter_batches(dataset: Dataset, specs: list[TensorSpec], batch_size: int = 256) -> Iterator[tuple[dict, int]]:
    """Yield ``(feeds, valid_rows)`` cast to ``specs``' dtypes.

    A symbolic first dimension takes ``batch_size`` rows at once; a fixed one (usually 1) takes exactly that
    many, the last chunk padded by repeating its final row (``valid_rows`` says how many outputs to keep).
    """
    fixed = fixed_batch(specs)
    step = fixed or batch_size
    for start in range(0, dataset.rows, step):
        stop = min(start + step, dataset.rows)
        feeds = {}
        for spec in specs:
            chunk = dataset.inputs[spec.name][start:stop]
            if fixed and len(chunk) < step:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), axis=0)])
            feeds[spec.name] = chunk
        yield cast_feeds(feeds, specs), stop - start


def fixed_batch(specs: list[TensorSpec]) -> int | None:
    """The first dimension when the model fixes it (often 1), None when it is symbolic."""
    first_dims = [spec.shape[0] for spec in specs if spec.shape]
    return next((dim for dim in first_dims if isinstance(dim, int) and dim > 0), None)


def cast_feeds(feeds: dict[str, np.ndarray], specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Cast to each input's dtype: a dataset checked against the float32 parent also feeds an fp16 child."""
    dtypes = {spec.name: spec.dtype for spec in specs}
    return {
        name: array if dtypes.get(name, "string") == "string" else array.astype(dtypes[name], copy=False)
        for name, array in feeds.items()
    }


def _names(names) -> str:
    return ", ".join(f"'{name}'" for name in sorted(names))


def _array_problems(spec: TensorSpec, array: np.ndarray) -> list[str]:
    problems = []
    if spec.dtype == "string":
        if array.dtype.kind not in "US":
            problems.append(f"'{spec.name}' holds {array.dtype} values; the input expects strings")
    elif array.dtype.kind not in "biuf":
        problems.append(f"'{spec.name}' holds {array.dtype} values; the input expects {spec.dtype}")
    else:
        try:
            castable = np.can_cast(array.dtype, np.dtype(spec.dtype), casting="same_kind")
        except TypeError:
            castable = False
        if not castable:
            problems.append(f"'{spec.name}' holds {array.dtype} values; the input expects {spec.dtype}")
        problems.extend(_nan_problems(spec.name, array))
    if spec.shape is not None:
        expected = "(" + ", ".join(["rows", *(str(dim) for dim in spec.shape[1:])]) + ")"
        if array.ndim != len(spec.shape):
            problems.append(f"'{spec.name}' has shape {array.shape}; the input expects {expected}")
        else:
            for axis, dim in enumerate(spec.shape[1:], start=1):
                if isinstance(dim, int) and dim > 0 and array.shape[axis] != dim:
                    problems.append(f"'{spec.name}' has shape {array.shape}; the input expects {expected}")
                    break
    return problems


def _nan_problems(name: str, array: np.ndarray) -> list[str]:
    if array.dtype.kind != "f":
        return []
    bad = ~np.isfinite(array)
    if not bad.any():
        return []
    first_row = int(np.argwhere(bad)[0][0])
    return [f"'{name}' holds {int(bad.sum())} NaN or infinite values (first in row {first_row})"]


def is_npz(path: Path) -> bool:
    """NPZ by suffix, else by content (a zip archive); anything else is read as CSV."""
    if path.suffix.lower() in (".npz", ".csv"):
        return path.suffix.lower() == ".npz"
    return zipfile.is_zipfile(path)


def _read_npz(path: Path, specs: list[TensorSpec]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path.name} is not a readable NPZ archive: {exc}") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path.name} holds one bare array; save named arrays with numpy.savez(x=..., labels=...)")
    arrays: dict[str, np.ndarray] = {}
    with loaded:
        for name in loaded.files:
            try:
                arrays[name] = loaded[name]
            except ValueError as exc:  # object arrays need pickle, which we refuse
                raise DatasetError(
                    f"array '{name}' holds Python objects, which would need unpickling; save numbers or strings"
                ) from exc
    labels = arrays.pop(LABELS_KEY, None)
    return arrays, labels


def _read_csv(
    path: Path, specs: list[TensorSpec], label_column: str
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name} is not a readable CSV file: {exc}") from exc
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise DatasetError(f"{path.name} needs a header row and at least one data row")
    header = [cell.strip() for cell in rows[0]]
    if all(_is_number(cell) for cell in header):
        raise DatasetError("the first CSV row must name the columns (it holds numbers)")
    values, problems = _parse_cells(header, rows[1:])
    columns = {name: values[:, index] for index, name in enumerate(header)}
    labels = columns.pop(label_column, None)
    inputs = _columns_to_inputs(columns, specs, problems)
    if problems:
        raise DatasetError(problems)
    if labels is not None and np.all(np.mod(labels, 1) == 0):
        labels = labels.astype(np.int64)  # class indices, so accuracy sees a classifier's labels
    return inputs, labels


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _parse_cells(header: list[str], rows: list[list[str]]) -> tuple[np.ndarray, list[str]]:
    problems: list[str] = []
    bad_cells: list[str] = []
    values = np.full((len(rows), len(header)), np.nan)
    for row_number, row in enumerate(rows, start=2):  # row 1 is the header, as a spreadsheet numbers them
        if len(row) != len(header):
            problems.append(f"CSV row {row_number} has {len(row)} cells; the header has {len(header)}")
            continue
        for index, cell in enumerate(row):
            try:
                values[row_number - 2, index] = float(cell)
            except ValueError:
                shown = repr(cell.strip()) if cell.strip() else "an empty cell"
                bad_cells.append(f"row {row_number} column '{header[index]}': {shown}")
    if bad_cells:
        more = f" and {len(bad_cells) - _MAX_EXAMPLES} more" if len(bad_cells) > _MAX_EXAMPLES else ""
        problems.append(f"{len(bad_cells)} non-numeric CSV cells: {'; '.join(bad_cells[:_MAX_EXAMPLES])}{more}")
    return values, problems


def _columns_to_inputs(
    columns: dict[str, np.ndarray], specs: list[TensorSpec], problems: list[str]
) -> dict[str, np.ndarray]:
    """One 2-D input takes every feature column in order; otherwise each input takes the column of its name."""
    if not columns:
        raise DatasetError("the CSV has no feature columns besides the label")
    if len(specs) == 1 and (specs[0].shape is None or len(specs[0].shape) == 2):
        spec = specs[0]
        width = spec.shape[1] if spec.shape else None
        if isinstance(width, int) and width > 0 and len(columns) != width:
            problems.append(f"the CSV has {len(columns)} feature columns; input '{spec.name}' expects {width}")
        return {spec.name: _as_input_dtype(np.stack(list(columns.values()), axis=1), spec, problems)}
    one_column_inputs = all(spec.shape is not None and list(spec.shape[1:]) in ([], [1]) for spec in specs)
    if not one_column_inputs:
        raise DatasetError("CSV fits models with one 2-D input or one column per input; upload NPZ for this model")
    inputs = {}
    for name, column in columns.items():
        spec = next((spec for spec in specs if spec.name == name), None)
        array = column if spec is None or spec.shape is None or len(spec.shape) == 1 else column[:, None]
        inputs[name] = _as_input_dtype(array, spec, problems) if spec else array
    return inputs


def _as_input_dtype(array: np.ndarray, spec: TensorSpec, problems: list[str]) -> np.ndarray:
    # CSV cells parse as float64; whole numbers may feed an integer input, fractions may not.
    if spec.dtype in ("float16", "float32", "float64", "string") or np.isnan(array).any():
        return array
    if np.all(np.mod(array, 1) == 0):
        return array.astype(spec.dtype)
    problems.append(f"input '{spec.name}' expects {spec.dtype} but the CSV holds fractions")
    return array
