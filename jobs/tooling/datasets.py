"""Evaluation and calibration datasets: NPZ (one array per model input, plus ``labels``) or CSV (tabular).

Every check says exactly what does not match, so the person who uploaded the file can fix it. NPZ files are
read with ``allow_pickle=False``: an uploaded file must never run code on the worker.

Uploaded files are hostile. With ``limits`` (as the console passes them) nothing is decompressed or parsed
beyond them: an NPZ is judged from its zip directory and the header of each array (shape and dtype) before any
array is read, and a CSV is parsed row by row into arrays whose size was checked first, so memory stays close
to the size of the arrays that are accepted.
"""

from __future__ import annotations

import csv
import math
import struct
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jobs.tooling.common import PathLike
from jobs.tooling.errors import DatasetError
from jobs.tooling.inputs import TensorSpec

LABELS_KEY = "labels"
_MAX_EXAMPLES = 5  # cell-level problems listed by name before "and N more"
_MAX_NPZ_MEMBERS = 1024  # arrays in one archive: a model has a few inputs, plus labels
_CSV_BLOCK_VALUES = 1 << 16  # cells converted to numbers at once (with the lines holding them: a few MB)
_CSV_CHARS_PER_COLUMN = 64  # a data row may be this long per header column (a number takes at most ~25)


@dataclass(frozen=True)
class DatasetLimits:
    """What one dataset may hold; the console sets these from MAX_DATASET_* settings."""

    max_bytes: int  # an NPZ's arrays once unpacked (the uploaded file itself is capped by the upload handler)
    max_elements: int  # values across all arrays
    max_rows: int
    max_columns: int  # CSV columns


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.1f} MB"


@dataclass
class Dataset:
    """Arrays by model input name, rows along axis 0 (``rows_first`` moved a model's batch axis there), except the
    inputs in ``whole``: scalars with no batch axis (a sample rate), fed whole every time."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str
    whole: frozenset[str] = frozenset()

    @property
    def rows(self) -> int:
        batched = [array for name, array in self.inputs.items() if name not in self.whole]
        return len(batched[0]) if batched else 1

    def head(self, rows: int) -> Dataset:
        """The first ``rows`` rows (the whole inputs as they are)."""
        inputs = {name: array if name in self.whole else array[:rows] for name, array in self.inputs.items()}
        labels = None if self.labels is None else self.labels[:rows]
        return Dataset(inputs=inputs, labels=labels, source=self.source, whole=self.whole)


def batch_axes(specs: list[TensorSpec]) -> dict[str, int | None]:
    """Where each input holds the batch, found from the first input's leading dimension:

    - named (``batch``): the axis of that name in each input (a recurrent state (2, batch, 128) holds it on 1);
    - unnamed and dynamic: each input's first dynamic axis (the same state exported as (2, ?, 128));
    - otherwise, or for an input with neither: axis 0 (a fixed batch, often 1, is fed row by row);
    - None for a scalar input (a sample rate): it has no batch and is fed whole every time.
    """
    first = next((spec.shape[0] for spec in specs if spec.shape), 0)
    named = first if isinstance(first, str) and first else None
    axes: dict[str, int | None] = {}
    for spec in specs:
        if spec.shape is None:
            axes[spec.name] = 0
        elif not spec.shape:
            axes[spec.name] = None
        elif named is not None:
            axes[spec.name] = spec.shape.index(named) if named in spec.shape else 0
        elif first is None and None in spec.shape:
            axes[spec.name] = spec.shape.index(None)
        else:
            axes[spec.name] = 0
    return axes


def rows_first(spec: TensorSpec, axis: int | None) -> TensorSpec:
    """The spec with its batch axis moved first, as a Dataset holds its arrays."""
    if not axis or spec.shape is None:
        return spec
    shape = list(spec.shape)
    return TensorSpec(spec.name, spec.dtype, (shape.pop(axis), *shape), spec.elem_type)


def _rows_first_arrays(inputs: dict[str, np.ndarray], specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Arrays as the model lays them out, with each batch axis moved first (a view, nothing copied)."""
    axes = batch_axes(specs)
    moved = dict(inputs)
    for spec in specs:
        axis, array = axes[spec.name], inputs.get(spec.name)
        if axis and array is not None and spec.shape is not None and array.ndim == len(spec.shape):
            moved[spec.name] = np.moveaxis(array, axis, 0)
    return moved


def load_dataset(
    path: PathLike,
    specs: list[TensorSpec],
    *,
    label_column: str = "label",
    require_labels: bool = False,
    limits: DatasetLimits | None = None,
) -> Dataset:
    """Read an NPZ or CSV file and check it against the model's input specs; DatasetError lists every problem.

    ``limits`` refuses, before reading the values, a file that would unpack to more than they allow.
    """
    path = Path(path)
    if is_npz(path):
        inputs, labels = _read_npz(path, specs, limits)
        inputs = _rows_first_arrays(inputs, specs)
    else:
        inputs, labels = _read_csv(path, specs, label_column, limits)
    problems = check_arrays(inputs, labels, specs)
    if require_labels and labels is None:
        where = f"an array named '{LABELS_KEY}'" if is_npz(path) else f"a column named '{label_column}'"
        problems.append(f"no labels: accuracy needs {where}")
    if problems:
        raise DatasetError(problems)
    whole = frozenset(name for name, axis in batch_axes(specs).items() if axis is None)
    return Dataset(
        inputs={spec.name: inputs[spec.name] for spec in specs}, labels=labels, source=path.name, whole=whole
    )


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
    """Every mismatch between named arrays (batch axes moved first) and the model's inputs, as sentences; empty
    when they fit."""
    problems: list[str] = []
    expected = {spec.name for spec in specs}
    axes = batch_axes(specs)
    for name in sorted(set(inputs) - expected):
        problems.append(f"unexpected array '{name}': the model's inputs are {_names(expected)}")
    for spec in specs:
        if spec.name not in inputs:
            problems.append(f"missing array for input '{spec.name}' (found {_names(inputs) or 'none'})")
        else:
            problems.extend(_array_problems(spec, inputs[spec.name], axes[spec.name]))
    if labels is not None:
        if labels.dtype.kind not in "biuf":
            problems.append(f"'{LABELS_KEY}' holds {labels.dtype} values; labels must be numbers")
        else:
            problems.extend(_nan_problems(LABELS_KEY, labels))
    row_counts = {
        name: len(array) for name, array in inputs.items() if array.ndim > 0 and axes.get(name, 0) is not None
    }
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
    axes = batch_axes(specs)
    for start in range(0, dataset.rows, step):
        stop = min(start + step, dataset.rows)
        feeds = {}
        for spec in specs:
            axis = axes[spec.name]
            if axis is None or spec.name in dataset.whole:
                feeds[spec.name] = dataset.inputs[spec.name]
                continue
            chunk = dataset.inputs[spec.name][start:stop]
            if fixed and len(chunk) < step:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), axis=0)])
            feeds[spec.name] = np.moveaxis(chunk, 0, axis) if axis else chunk
        yield cast_feeds(feeds, specs), stop - start


def fixed_batch(specs: list[TensorSpec]) -> int | None:
    """The batch dimension when the model fixes it (often 1), None when it is symbolic."""
    axes = batch_axes(specs)
    dims = [spec.shape[axis] for spec in specs if spec.shape and (axis := axes[spec.name]) is not None]
    return next((dim for dim in dims if isinstance(dim, int) and dim > 0), None)


def cast_feeds(feeds: dict[str, np.ndarray], specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Cast to each input's dtype: a dataset checked against the float32 parent also feeds an fp16 child."""
    dtypes = {spec.name: spec.dtype for spec in specs}
    return {
        name: array if dtypes.get(name, "string") == "string" else array.astype(dtypes[name], copy=False)
        for name, array in feeds.items()
    }


def _names(names) -> str:
    return ", ".join(f"'{name}'" for name in sorted(names))


def _array_problems(spec: TensorSpec, array: np.ndarray, axis: int | None = 0) -> list[str]:
    """What is wrong with one array (its batch axis moved first; ``axis`` None: an input fed whole)."""
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
        dims = [str(dim) for dim in spec.shape]
        if axis is not None:
            dims[axis] = "rows"
        expected = "(" + ", ".join(dims) + ")"
        laid_out = (rows_first(spec, axis).shape if axis is not None else None) or spec.shape
        shown = np.moveaxis(array, 0, axis).shape if axis and array.ndim == len(spec.shape) else array.shape
        if array.ndim != len(spec.shape):
            problems.append(f"'{spec.name}' has shape {shown}; the input expects {expected}")
        else:
            first = 1 if axis is not None else 0
            for index, dim in enumerate(laid_out[first:], start=first):
                if isinstance(dim, int) and dim > 0 and array.shape[index] != dim:
                    problems.append(f"'{spec.name}' has shape {shown}; the input expects {expected}")
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


def _read_npz(
    path: Path, specs: list[TensorSpec], limits: DatasetLimits | None
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    try:
        if limits is not None:
            check_npz_size(path, limits)
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path.name} is not a readable NPZ archive: {exc}") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path.name} holds one bare array; save named arrays with numpy.savez(x=..., labels=...)")
    arrays: dict[str, np.ndarray] = {}
    with loaded:
        for name in loaded.files:
            try:
                arrays[name] = loaded[name]
            except ValueError as exc:  # object arrays need pickle, which we refuse
                if "pickle" not in str(exc):
                    raise DatasetError(f"array '{name}' cannot be read: {exc}") from exc
                raise DatasetError(_pickled(name)) from exc
            except (OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile) as exc:
                raise DatasetError(f"array '{name}' cannot be read: {exc}") from exc
    labels = arrays.pop(LABELS_KEY, None)
    return arrays, labels


def _pickled(name: str) -> str:
    return f"array '{name}' holds Python objects, which would need unpickling; save numbers or strings"


def _zip_entry_count(path: Path) -> int:
    """The number of entries the zip's end record declares, read before zipfile builds one object per entry.

    zipfile parses the whole central directory when it opens an archive: a small file of millions of empty
    entries would cost gigabytes before the first check. The end record (the last 22 bytes plus a comment of
    up to 64 KB) says how many there are.
    """
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - (22 + 0xFFFF)))
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise zipfile.BadZipFile("no end-of-archive record")
    return struct.unpack("<H", tail[at + 10 : at + 12])[0]  # total entries (0xFFFF: more, in a zip64 record)


def check_npz_size(path: Path, limits: DatasetLimits) -> None:
    """Refuse an NPZ from its zip directory and array headers alone; no array data is decompressed.

    Each member's declared size bounds what reading it can produce (zipfile stops there and checks the CRC), and
    the .npy header gives shape and dtype, so the values and bytes the arrays will hold are known exactly.
    """
    entries = _zip_entry_count(path)
    if entries > _MAX_NPZ_MEMBERS:
        raise DatasetError(
            f"{path.name} holds {entries:,} or more entries; a dataset has at most {_MAX_NPZ_MEMBERS:,} arrays"
        )
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        unpacked = sum(member.file_size for member in members)
        if unpacked > limits.max_bytes:
            raise DatasetError(
                f"{path.name} unpacks to {unpacked:,} bytes ({_mb(unpacked)}) from {_mb(path.stat().st_size)}; "
                f"a dataset may unpack to at most {_mb(limits.max_bytes)}"
            )
        elements = 0
        for member in members:
            name = member.filename.removesuffix(".npy")
            with archive.open(member) as stream:
                shape, dtype, header_bytes = _npy_header(stream, name)
            if dtype.hasobject:
                raise DatasetError(_pickled(name))
            count = math.prod(shape)
            if member.file_size != header_bytes + count * dtype.itemsize:
                raise DatasetError(
                    f"array '{name}' declares shape {shape} of {dtype} ({count * dtype.itemsize:,} bytes) but the "
                    f"archive holds {member.file_size - header_bytes:,} bytes for it; the file is damaged or crafted"
                )
            if shape and shape[0] > limits.max_rows:
                raise DatasetError(
                    f"array '{name}' has {shape[0]:,} rows; a dataset may have at most {limits.max_rows:,}"
                )
            elements += count
    if elements > limits.max_elements:
        raise DatasetError(f"{path.name} holds {elements:,} values; a dataset may hold at most {limits.max_elements:,}")


def _npy_header(stream, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of one .npy member, read from its first bytes only."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]}; save it with numpy.savez")
    except (ValueError, EOFError, SyntaxError) as exc:
        raise DatasetError(f"array '{name}' has no readable .npy header: {exc}") from exc
    return tuple(int(dim) for dim in shape), np.dtype(dtype), stream.tell()


def _read_csv(
    path: Path, specs: list[TensorSpec], label_column: str, limits: DatasetLimits | None
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = _read_header(handle, path, limits)
            capacity = _csv_capacity(path, len(header), limits)
            values, problems = _parse_rows(handle, header, capacity)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path.name} is not a readable CSV file: {exc}") from exc
    if len(values) == 0 and not problems:
        raise DatasetError(f"{path.name} needs a header row and at least one data row")
    labels = None
    features = values
    names = header
    if label_column in header:
        index = header.index(label_column)
        labels = values[:, index].copy()
        names = header[:index] + header[index + 1 :]
        # The label is usually the last column: the features are then a view, not a second copy of the values.
        features = values[:, :index] if index == len(header) - 1 else np.delete(values, index, axis=1)
    inputs = _columns_to_inputs(names, features, specs, problems)
    if problems:
        raise DatasetError(problems)
    if labels is not None and np.all(np.mod(labels, 1) == 0):
        labels = labels.astype(np.int64)  # class indices, so accuracy sees a classifier's labels
    return inputs, labels


def _read_header(handle, path: Path, limits: DatasetLimits | None) -> list[str]:
    """The first non-blank row, refused cheaply when it names more columns than allowed."""
    max_chars = limits.max_columns * _CSV_CHARS_PER_COLUMN if limits else -1
    while True:
        line = handle.readline(max_chars)
        if not line:
            raise DatasetError(f"{path.name} needs a header row and at least one data row")
        cut_off = len(line) == max_chars and not line.endswith(("\n", "\r"))
        if limits and (cut_off or ('"' not in line and line.count(",") >= limits.max_columns)):
            raise DatasetError(
                f"the CSV header names more than {limits.max_columns:,} columns; a dataset may have "
                f"at most {limits.max_columns:,}"
            )
        if line.strip():
            break
    header = [cell.strip() for cell in next(csv.reader([line]))]
    if limits and len(header) > limits.max_columns:
        raise DatasetError(
            f"the CSV header names {len(header):,} columns; a dataset may have at most {limits.max_columns:,}"
        )
    if all(_is_number(cell) for cell in header):
        raise DatasetError("the first CSV row must name the columns (it holds numbers)")
    repeated = sorted(name for name, count in Counter(header).items() if count > 1)
    if repeated:
        raise DatasetError(f"the CSV header names {_names(repeated[:_MAX_EXAMPLES])} more than once")
    return header


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _csv_capacity(path: Path, columns: int, limits: DatasetLimits | None) -> int:
    """Rows to make room for: the file's line count, refused when it already says the data is too large."""
    newlines = returns = 0
    last = b"\n"
    with open(path, "rb") as raw:
        while chunk := raw.read(1 << 20):
            newlines += chunk.count(b"\n")
            returns += chunk.count(b"\r")
            last = chunk[-1:]
    lines = max(newlines, returns) + (last not in (b"\n", b"\r"))  # \n, \r\n or \r; a last line without one
    rows = lines - 1  # the header's line; blank lines count too, so this is an upper bound
    if limits is None:
        return rows
    if rows > limits.max_rows or rows * columns > limits.max_elements:
        raise DatasetError(
            f"the CSV has {rows:,} lines of {columns:,} columns ({rows * columns:,} values); a dataset may have "
            f"at most {limits.max_rows:,} rows and {limits.max_elements:,} values"
        )
    return rows


class _CsvProblems:
    """Rows of the wrong width and cells that are not numbers: a few named, the rest counted."""

    def __init__(self, header: list[str]):
        self.header = header
        self.bad_rows: list[str] = []
        self.bad_cells: list[str] = []

    def sentences(self) -> list[str]:
        problems = self.bad_rows[:_MAX_EXAMPLES]
        if len(self.bad_rows) > _MAX_EXAMPLES:
            problems.append(f"and {len(self.bad_rows) - _MAX_EXAMPLES} more CSV rows of the wrong width")
        if self.bad_cells:
            more = f" and {len(self.bad_cells) - _MAX_EXAMPLES} more" if len(self.bad_cells) > _MAX_EXAMPLES else ""
            problems.append(
                f"{len(self.bad_cells)} non-numeric CSV cells: {'; '.join(self.bad_cells[:_MAX_EXAMPLES])}{more}"
            )
        return problems

    def diagnose(self, lines: list[str], first_line: int) -> np.ndarray:
        """The block's rows cell by cell (the slow way, for a block numpy refused), noting what is wrong."""
        width = len(self.header)
        rows = []
        reader = csv.reader(lines)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            row_number = first_line + reader.line_num - 1
            if len(row) != width:
                self.bad_rows.append(f"CSV row {row_number} has {len(row)} cells; the header has {width}")
                continue
            numbers = []
            for index, cell in enumerate(row):
                try:
                    numbers.append(float(cell))
                except ValueError:
                    numbers.append(np.nan)
                    shown = repr(cell.strip()) if cell.strip() else "an empty cell"
                    self.bad_cells.append(f"row {row_number} column '{self.header[index]}': {shown}")
            rows.append(numbers)
        return np.array(rows, dtype=np.float64).reshape(len(rows), width)


def _parse_rows(handle, header: list[str], capacity: int) -> tuple[np.ndarray, list[str]]:
    """Numbers of every data row, converted a block of lines at a time into one array sized up front.

    numpy's C parser converts a block (about 2.3x faster than the csv module); a block it refuses is read again
    cell by cell to name the rows and cells at fault. Row 1 is the header, as a spreadsheet numbers them.
    """
    width = len(header)
    values = np.empty((capacity, width))
    problems = _CsvProblems(header)
    filled = 0
    block_rows = max(1, _CSV_BLOCK_VALUES // width)
    line_number = 1

    def convert(lines: list[str], first_line: int) -> None:
        nonlocal filled
        try:
            block = np.loadtxt(lines, delimiter=",", quotechar='"', comments=None, dtype=np.float64, ndmin=2)
            if block.size and block.shape[1] != width:
                raise ValueError("rows of another width")
        except ValueError:
            block = problems.diagnose(lines, first_line)
        if len(block) > capacity - filled:
            raise DatasetError(
                "the CSV has more rows than lines (it mixes line endings); save it again with one kind of line ending"
            )
        values[filled : filled + len(block)] = block
        filled += len(block)

    lines: list[str] = []
    for line in _bounded_lines(handle, width * _CSV_CHARS_PER_COLUMN + 1024):
        lines.append(line)
        if len(lines) >= block_rows:
            convert(lines, line_number + 1)
            line_number += len(lines)
            lines = []
    if lines:
        convert(lines, line_number + 1)
    return values[:filled], problems.sentences()


def _bounded_lines(handle, max_chars: int) -> Iterator[str]:
    """The file's lines, refusing one longer than a row of numbers could be (it would be read whole)."""
    while line := handle.readline(max_chars + 1):
        if len(line) > max_chars:
            raise DatasetError(
                f"a CSV line is longer than {max_chars:,} characters, far more than a row of numbers "
                "under this header needs"
            )
        yield line


def _columns_to_inputs(
    names: list[str], features: np.ndarray, specs: list[TensorSpec], problems: list[str]
) -> dict[str, np.ndarray]:
    """One 2-D input takes every feature column in order; otherwise each input takes the column of its name."""
    if not names:
        raise DatasetError("the CSV has no feature columns besides the label")
    if len(specs) == 1 and (specs[0].shape is None or len(specs[0].shape) == 2):
        spec = specs[0]
        width = spec.shape[1] if spec.shape else None
        if isinstance(width, int) and width > 0 and len(names) != width:
            problems.append(f"the CSV has {len(names)} feature columns; input '{spec.name}' expects {width}")
        return {spec.name: _as_input_dtype(features, spec, problems)}
    one_column_inputs = all(spec.shape is not None and list(spec.shape[1:]) in ([], [1]) for spec in specs)
    if not one_column_inputs:
        raise DatasetError("CSV fits models with one 2-D input or one column per input; upload NPZ for this model")
    inputs = {}
    for index, name in enumerate(names):
        column = features[:, index]
        named = next((spec for spec in specs if spec.name == name), None)
        array = column if named is None or named.shape is None or len(named.shape) == 1 else column[:, None]
        inputs[name] = _as_input_dtype(array, named, problems) if named else array
    return inputs


def _as_input_dtype(array: np.ndarray, spec: TensorSpec, problems: list[str]) -> np.ndarray:
    # CSV cells parse as float64; whole numbers may feed an integer input, fractions may not.
    if spec.dtype in ("float16", "float32", "float64", "string") or np.isnan(array).any():
        return array
    if np.all(np.mod(array, 1) == 0):
        return array.astype(spec.dtype)
    problems.append(f"input '{spec.name}' expects {spec.dtype} but the CSV holds fractions")
    return array
