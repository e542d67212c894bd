"""The models bench/optimize.py optimizes, each with real sample inputs the bench makes and a typical input size.

Every builder writes into a work directory and returns a ``BenchModel``: the ONNX file, two NPZ files of inputs keyed
by the model's input names (``decide``: what the optimize-for-device decision measures fidelity on; ``holdout``:
other inputs of the same kind, on which the bench re-checks the chosen variant), ``labels`` in both when the bench
knows the true answers, and ``feeds``: one input at the typical size, on which latency is timed.

- trained here on scikit-learn's bundled data: ``iris-logreg`` (LogisticRegression exported with skl2onnx's
  default options: a ZipMap output and IR 10), ``digits-mlp`` (the console's demo model);
- trained here with PyTorch's CPU build (the ``bench`` extra) on data the bench renders: ``digits-cnn`` (digits
  rendered as 28x28 images), ``shapes-seg`` (a per-pixel map of bright shapes on noise) and ``digits-ctc`` (a
  sequence model over rendered digit strings with a CTC (N, T, C) output);
- shipped inside PyPI wheels (the ``bench`` extra), read from the installed package, nothing fetched:
  ``magika`` (file-type classifier, fed the bytes of files installed here, of many kinds), ``silero-vad``
  (voice activity on synthetic speech-like audio), and RapidOCR's text-line orientation classifier
  (``ocr-cls``), recognizer (``ocr-rec``) and detector (``ocr-det``) on text the bench renders with PIL.

A builder whose package is missing raises ``Unavailable`` with the reason; the bench reports it and goes on.
"""

from __future__ import annotations

import importlib.metadata
import sysconfig
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

SEED = 0
DIGITS = "0123456789"
# Rows of sample inputs for models judged by a share of agreeing rows (sequences, files, windows, lines): each half
# (decide, held out) gets half. A lossy variant must show its budget at 95% confidence on the decision half
# (``fidelity.shown_within_budget``): 268 rows when all agree, about 470 with one disagreement, 600 with two, at
# the bench's 1-point budget. A user attaching a few hundred real inputs per model is the realistic case; a dozen
# is too few to show anything.
SHARE_ROWS = 1200


class Unavailable(Exception):
    """The model cannot be built here (a package of the ``bench`` extra is not installed)."""


@dataclass
class BenchModel:
    name: str
    path: Path
    decide: Path  # NPZ the decision measures fidelity on
    holdout: Path  # NPZ of other inputs of the same kind, for the bench's own re-check
    has_labels: bool
    feeds: dict[str, np.ndarray]  # one input at the typical size, for latency
    typical: str  # the typical size in words
    source: str  # where the model and its inputs come from
    extra: dict[str, Any] = field(default_factory=dict)


def _split_save(
    workdir: Path,
    name: str,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    axes: dict[str, int | None] | None = None,
) -> tuple[Path, Path]:
    """Half the rows to decide on, the other half held out (every other row, so both halves mix the kinds).
    ``axes`` names an input's batch axis where it is not 0 (``datasets.batch_axes``; None: a scalar kept whole)."""
    decide, holdout = workdir / f"{name}-decide.npz", workdir / f"{name}-holdout.npz"
    axes = axes or {}
    for path, start in ((decide, 0), (holdout, 1)):
        arrays = {}
        for key, value in inputs.items():
            axis = axes.get(key, 0)
            arrays[key] = value if axis is None else np.take(value, range(start, value.shape[axis], 2), axis=axis)
        if labels is not None:
            arrays["labels"] = labels[start::2]
        np.savez(path, **arrays)
    return decide, holdout


# --- scikit-learn ------------------------------------------------------------------------------------------------


def build_iris_logreg(workdir: Path) -> BenchModel:
    """What a new user exports first: skl2onnx's defaults (ZipMap output, the newest IR its onnx writes)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=SEED, stratify=y)
    clf = LogisticRegression(max_iter=500).fit(x_train, y_train)
    model = to_onnx(clf, x_train[:1])
    path = workdir / "iris-logreg.onnx"
    onnx.save(model, str(path))
    decide, holdout = _split_save(workdir, "iris-logreg", {"X": x_test}, y_test.astype(np.int64))
    return BenchModel(
        "iris-logreg",
        path,
        decide,
        holdout,
        True,
        {"X": x_test[:1]},
        "1 row",
        f"scikit-learn LogisticRegression on iris, skl2onnx defaults (IR {model.ir_version}, ZipMap)",
    )


def build_digits_mlp(workdir: Path) -> BenchModel:
    """The console's demo model: an MLP on scikit-learn's 8x8 digits."""
    from jobs.tooling.demo_models import train_digits_classifier

    trained = train_digits_classifier()
    path = workdir / "digits-mlp.onnx"
    path.write_bytes(trained.onnx_bytes)
    decide, holdout = _split_save(workdir, "digits-mlp", {"input": trained.x_test}, trained.y_test)
    return BenchModel(
        "digits-mlp",
        path,
        decide,
        holdout,
        True,
        {"input": trained.x_test[:1]},
        "1 row",
        "the demo model (jobs/tooling/demo_models.py)",
    )


# --- PyTorch, trained here ---------------------------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise Unavailable(f"PyTorch is not installed ({exc}); pip install -e '.[bench]'") from exc
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    return torch


def _export(torch, module, example, path: Path, input_name: str, output_name: str, dynamic: dict) -> None:
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter: the dynamo one needs onnxscript and writes the same graph for these layers.
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: dynamic, output_name: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def _train(torch, module, batches: Callable[[np.random.Generator], tuple[Any, Any]], loss_of, steps: int) -> None:
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    rng = np.random.default_rng(SEED)
    module.train()
    for _ in range(steps):
        x, y = batches(rng)
        optimizer.zero_grad()
        loss = loss_of(module(x), y)
        loss.backward()
        optimizer.step()


def _digit_images(size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits drawn as ``size`` x ``size`` grey images (bilinear upscaling, as a camera would)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.stack(
        [
            np.asarray(Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((size, size), Image.BILINEAR))
            for image in digits.images
        ]
    )
    return (images.astype(np.float32) / 255.0)[:, None], digits.target.astype(np.int64)


def build_digits_cnn(workdir: Path) -> BenchModel:
    torch = _torch()
    from sklearn.model_selection import train_test_split

    nn = torch.nn
    images, labels = _digit_images()
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, random_state=SEED, stratify=labels
    )
    module = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)

    def batches(rng):
        index = torch.from_numpy(rng.integers(0, len(xt), 64))
        return xt[index], yt[index]

    _train(torch, module, batches, nn.functional.cross_entropy, steps=200)
    path = workdir / "digits-cnn.onnx"
    _export(torch, module, torch.from_numpy(x_test[:1]), path, "image", "logits", {0: "batch"})
    with torch.no_grad():
        accuracy = float((module(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    decide, holdout = _split_save(workdir, "digits-cnn", {"image": x_test}, y_test)
    return BenchModel(
        "digits-cnn",
        path,
        decide,
        holdout,
        True,
        {"image": x_test[:1]},
        "1x1x28x28",
        f"CNN trained here with PyTorch on digits rendered as 28x28 images (test accuracy {accuracy:.1%})",
    )


def _shapes(rng: np.random.Generator, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey images of bright ellipses and rectangles on textured noise, and their masks."""
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.empty((count, 1, size, size), np.float32)
    masks = np.zeros((count, 1, size, size), np.float32)
    for i in range(count):
        background = rng.normal(0.3, 0.08, (size, size)) + 0.1 * np.sin(xx / rng.uniform(3, 9))
        mask = np.zeros((size, size), bool)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.15, 0.85, 2) * size
            ry, rx = rng.uniform(0.06, 0.2, 2) * size
            if rng.random() < 0.5:
                mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            else:
                mask |= (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
        foreground = rng.normal(0.7, 0.08, (size, size))
        images[i, 0] = np.where(mask, foreground, background)
        masks[i, 0] = mask
    return np.clip(images, 0, 1), masks


def build_shapes_seg(workdir: Path) -> BenchModel:
    """A small fully convolutional segmenter: (N, 1, H, W) image in, (N, 1, H, W) foreground probability out."""
    torch = _torch()
    nn = torch.nn
    rng = np.random.default_rng(SEED)
    train_x, train_y = _shapes(rng, 192, 48)
    module = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=4, dilation=4),
        nn.ReLU(),
        nn.Conv2d(32, 1, 1),
        nn.Sigmoid(),
    )
    xt, yt = torch.from_numpy(train_x), torch.from_numpy(train_y)

    def batches(rng):
        index = torch.from_numpy(rng.integers(0, len(xt), 16))
        return xt[index], yt[index]

    _train(torch, module, batches, nn.functional.binary_cross_entropy, steps=150)
    path = workdir / "shapes-seg.onnx"
    _export(torch, module, xt[:1], path, "image", "mask", {0: "batch", 2: "height", 3: "width"})
    test_x, test_y = _shapes(np.random.default_rng(SEED + 1), 64, 96)
    with torch.no_grad():
        predicted = module(torch.from_numpy(test_x)).numpy() > 0.5
    iou = float((predicted & (test_y > 0.5)).sum() / max(1, (predicted | (test_y > 0.5)).sum()))
    decide, holdout = _split_save(workdir, "shapes-seg", {"image": test_x})
    typical, _ = _shapes(np.random.default_rng(SEED + 2), 1, 128)
    return BenchModel(
        "shapes-seg",
        path,
        decide,
        holdout,
        False,
        {"image": typical},
        "1x1x128x128",
        f"segmenter trained here with PyTorch on rendered shapes (IoU with the true masks {iou:.2f})",
    )


def _font(size: int):
    from PIL import ImageFont

    for candidate in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _text_line(
    text: str, height: int, width: int, rng: np.random.Generator, font_size: int | None = None
) -> np.ndarray:
    """Dark text on a light, slightly uneven background, left-aligned, as a grey float image in [0, 1]."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (width, height), int(rng.integers(215, 255)))
    draw = ImageDraw.Draw(image)
    font = _font(font_size or int(height * 0.7))
    top = (height - font.getbbox(text)[3]) // 2
    draw.text((int(rng.integers(2, 8)), top), text, fill=int(rng.integers(0, 60)), font=font)
    grey = np.asarray(image, np.float32) / 255.0
    return np.clip(grey + rng.normal(0, 0.03, grey.shape), 0, 1).astype(np.float32)


def _digit_line(rng: np.random.Generator, width: int, height: int = 16) -> tuple[np.ndarray, str, np.ndarray]:
    """A rendered digit string (ink high) and, per time step (2 columns), the class drawn centred there (0: none)."""
    from PIL import Image, ImageDraw

    font = _font(12)
    text = "".join(rng.choice(list(DIGITS), rng.integers(3, 8)))
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    frames = np.zeros(width // 2, np.int64)
    x = float(rng.integers(1, 10))
    for char in text:
        advance = font.getlength(char) + float(rng.integers(0, 3))
        if x + advance >= width:
            break
        draw.text((x, 1), char, fill=int(rng.integers(170, 256)), font=font)
        frames[min(width // 2 - 1, int(x + advance / 2) // 2)] = DIGITS.index(char) + 1
        x += advance
    ink = np.asarray(image, np.float32) / 255.0
    written = "".join(DIGITS[c - 1] for c in frames if c)
    return np.clip(ink + rng.normal(0, 0.03, ink.shape), 0, 1).astype(np.float32), written, frames


def build_digits_ctc(workdir: Path) -> BenchModel:
    """A sequence model over rendered digit strings: (N, 1, 16, W) line image in, (N, W/2, 11) per-step class
    probabilities out, class 0 the blank, read by greedy CTC decoding. Trained on per-step targets (each digit at
    the step under its centre, blanks elsewhere), which a CTC decoder reads like a CTC-trained output and which
    trains in seconds."""
    torch = _torch()
    nn = torch.nn

    def sample(rng, count, width):
        made = [_digit_line(rng, width) for _ in range(count)]
        return np.stack([m[0] for m in made])[:, None], [m[1] for m in made], np.stack([m[2] for m in made])

    class LineReader(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d((2, 2)),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d((8, 1)),  # height 16 -> 1: one feature column per time step
            )
            self.context = nn.Sequential(nn.Conv1d(64, 128, 5, padding=2), nn.ReLU())
            self.head = nn.Linear(128, len(DIGITS) + 1)

        def logits(self, x):
            columns = self.features(x).squeeze(2)  # (N, 64, W/2)
            return self.head(self.context(columns).transpose(1, 2))  # (N, W/2, 11)

        def forward(self, x):
            return torch.softmax(self.logits(x), dim=-1)

    width = 96
    module = LineReader()
    pool_x, _texts, pool_frames = sample(np.random.default_rng(SEED), 768, width)
    xt, ft = torch.from_numpy(pool_x), torch.from_numpy(pool_frames)

    def batches(rng):
        index = torch.from_numpy(rng.integers(0, len(xt), 32))
        return xt[index], ft[index]

    class Training(nn.Module):  # trains on logits, exports probabilities
        def __init__(self, reader):
            super().__init__()
            self.reader = reader

        def forward(self, x):
            return self.reader.logits(x)

    def loss_of(logits, frames):
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), frames.reshape(-1))

    _train(torch, Training(module), batches, loss_of, steps=300)
    path = workdir / "digits-ctc.onnx"
    _export(torch, module, xt[:1], path, "line", "ctc_probs", {0: "batch", 3: "width"})
    test_x, test_texts, _ = sample(np.random.default_rng(SEED + 1), SHARE_ROWS, width)
    with torch.no_grad():
        steps = module(torch.from_numpy(test_x)).argmax(-1).numpy()
    from jobs.tooling.fidelity import ctc_greedy_decode

    read = ["".join(DIGITS[c - 1] for c in ctc_greedy_decode(row)) for row in steps]
    line_accuracy = float(np.mean([a == b for a, b in zip(read, test_texts, strict=True)]))
    decide, holdout = _split_save(workdir, "digits-ctc", {"line": test_x})
    typical, _, _ = sample(np.random.default_rng(SEED + 2), 1, 256)
    return BenchModel(
        "digits-ctc",
        path,
        decide,
        holdout,
        False,
        {"line": typical},
        "1x1x16x256",
        f"digit-line reader with a CTC output trained here with PyTorch on rendered digit strings "
        f"(lines read exactly {line_accuracy:.0%})",
    )


# --- ONNX models shipped inside PyPI wheels ----------------------------------------------------------------------


def packaged_model(distribution: str, suffix: str) -> Path:
    """The installed file of ``distribution`` whose path ends with ``suffix``, found without importing it."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise Unavailable(f"{distribution} is not installed; pip install -e '.[bench]'") from exc
    for file in files:
        if str(file).endswith(suffix):
            return Path(str(file.locate()))
    raise Unavailable(f"{distribution} {importlib.metadata.version(distribution)} holds no file ending in {suffix}")


def _copy(src: Path, workdir: Path, name: str) -> Path:
    path = workdir / f"{name}.onnx"
    path.write_bytes(src.read_bytes())
    return path


def _installed_files(count: int) -> list[Path]:
    """``count`` files of many kinds installed on this machine: Python's standard library (source, bytecode, shared
    objects, text, data) and the environment's packages (web assets, translations, docs, headers, tables), spread
    evenly over kinds: a kind with few files gives them all and the larger kinds fill the rest."""
    paths = sysconfig.get_paths()
    suffixes = (".py", ".pyc", ".so", ".txt", ".json", ".html", ".xml", ".zip", ".gz", ".wav", ".png", ".cfg")
    suffixes += (".sh", ".bat", ".c", ".css", ".pem", ".toml", ".js", ".po", ".mo", ".svg", ".md", ".rst", ".csv")
    suffixes += (".h", ".pyi", ".ini", ".yaml", ".gif", ".jpg", ".woff", ".ttf", ".npz", ".onnx", ".pdf", ".whl")
    by_kind: dict[str, list[Path]] = {}
    for root, skip in ((Path(paths["stdlib"]), "site-packages"), (Path(paths["purelib"]), None)):
        for path in sorted(root.rglob("*")):
            if path.suffix in suffixes and (skip is None or skip not in path.parts) and path.is_file():
                by_kind.setdefault(path.suffix, []).append(path)
    found = {kind: [p for p in files if p.stat().st_size >= 64] for kind, files in by_kind.items()}
    chosen: list[Path] = []
    left = count
    kinds = sorted((kind for kind in found if found[kind]), key=lambda kind: len(found[kind]))
    for index, kind in enumerate(kinds):
        files = found[kind]
        quota = min(len(files), left // (len(kinds) - index))
        chosen.extend(files[i * len(files) // quota] for i in range(quota))
        left -= quota
    return chosen


def magika_features(content: bytes, size: int = 1024, padding: int = 256) -> np.ndarray:
    """Magika's input for one file: its first and last ``size`` bytes, whitespace stripped, padded to length."""
    begin, end = content.lstrip()[:size], content.rstrip()[-size:]
    first = list(begin) + [padding] * (size - len(begin))
    last = [padding] * (size - len(end)) + list(end)
    return np.asarray(first + last, np.int32)


def build_magika(workdir: Path, rows: int = SHARE_ROWS) -> BenchModel:
    src = packaged_model("magika", "model.onnx")
    files = _installed_files(rows)
    features = np.stack([magika_features(path.read_bytes()) for path in files])
    decide, holdout = _split_save(workdir, "magika", {"bytes": features})
    kinds = sorted({path.suffix or path.name for path in files})
    return BenchModel(
        "magika",
        _copy(src, workdir, "magika"),
        decide,
        holdout,
        False,
        {"bytes": features[:1]},
        "1x2048 bytes",
        f"magika {importlib.metadata.version('magika')} wheel; inputs: {len(files)} installed files ({', '.join(kinds)})",
    )


def _syllable(rng: np.random.Generator, length: int, rate: int) -> np.ndarray:
    """A voiced syllable by the source-filter model: a glottal pulse train at a gliding pitch through three
    formant resonators and a spectral tilt (sine sums with harmonics do not sound like speech to a VAD)."""
    from scipy.signal import lfilter

    time = np.arange(length) / rate
    pitch = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 3) * time))
    pulses = np.diff(np.floor(np.cumsum(pitch) / rate), prepend=0) > 0
    voice = pulses.astype(np.float64) + rng.normal(0, 0.02, length)  # breath
    for formant, bandwidth in zip(rng.uniform([300, 900, 2200], [900, 2200, 3200]), (80, 120, 200), strict=True):
        radius, angle = np.exp(-np.pi * bandwidth / rate), 2 * np.pi * formant / rate
        voice = lfilter([1 - radius], [1, -2 * radius * np.cos(angle), radius * radius], voice)
    voice = lfilter([1], [1, -0.9], voice)
    return voice / (np.abs(voice).max() + 1e-9)


def speech_like_audio(rng: np.random.Generator, seconds: float, rate: int = 16000) -> np.ndarray:
    """Phrases of 3-7 voiced syllables (120-300 ms each) separated by pauses of room noise."""
    total = int(seconds * rate)
    audio = rng.normal(0, 0.003, total)
    t = 0
    while t < total:
        t += int(rng.uniform(0.3, 1.0) * rate)  # a pause
        for _ in range(rng.integers(3, 8)):
            length = int(rng.uniform(0.12, 0.3) * rate)
            if t + length >= total:
                break
            envelope = np.sin(np.pi * np.arange(length) / length) ** 0.5
            audio[t : t + length] += 0.4 * envelope * _syllable(rng, length, rate)
            t += length + int(rng.uniform(0.01, 0.05) * rate)
    return np.clip(audio, -1, 1).astype(np.float32)


def build_silero_vad(workdir: Path, seconds: float = SHARE_ROWS * 512 / 16000) -> BenchModel:
    """Silero VAD as its wheel ships it (``silero_vad.onnx``: weights inside If branches per sample rate): windows
    of 576 samples (64 of context, 512 new at 16 kHz), the LSTM ``state`` (2, batch, 128) carried from window to
    window, and the sample rate as a scalar. The samples are the windows of synthetic speech with the states the
    parent itself produced streaming through them, so every row is an input the model meets in use."""
    import onnxruntime as ort

    from jobs.tooling.datasets import batch_axes
    from jobs.tooling.inputs import graph_inputs

    src = packaged_model("silero-vad", "silero_vad.onnx")
    audio = speech_like_audio(np.random.default_rng(SEED), seconds)
    hop, context, rate = 512, 64, np.array(16000, dtype=np.int64)
    padded = np.concatenate([np.zeros(context, np.float32), audio])
    windows = np.stack([padded[i : i + hop + context] for i in range(0, len(audio) - hop, hop)])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), np.float32)
    states, speech = [], []
    for window in windows:
        states.append(state[:, 0])
        probability, state = session.run(None, {"input": window[None], "state": state, "sr": rate})
        speech.append(float(probability.ravel()[0]))
    inputs = {"input": windows, "state": np.stack(states, axis=1), "sr": rate}
    axes = batch_axes(graph_inputs(onnx.load(str(src))))
    decide, holdout = _split_save(workdir, "silero-vad", inputs, axes=axes)
    second = int(16000 / hop)  # one second of windows in one call, the state starting fresh
    return BenchModel(
        "silero-vad",
        _copy(src, workdir, "silero-vad"),
        decide,
        holdout,
        False,
        {"input": windows[:second], "state": np.zeros((2, second, 128), np.float32), "sr": rate},
        f"{second}x576 (1 s at 16 kHz)",
        f"silero-vad {importlib.metadata.version('silero-vad')} wheel (silero_vad.onnx, If branches per rate); "
        f"{seconds:g} s of synthetic speech-like audio, {np.mean(np.array(speech) > 0.5):.0%} of windows judged "
        "speech by the parent",
    )


_OCR = "rapidocr-onnxruntime"
_WORDS = (
    "invoice total amount due date receipt order number customer address street city phone email paid cash card "
    "change tax subtotal item price quantity discount thank you visit again store open monday friday hours account"
).split()


def _phrase(rng: np.random.Generator) -> str:
    words = list(rng.choice(_WORDS, rng.integers(2, 5)))
    if rng.random() < 0.5:
        words.append(f"{rng.integers(1, 999)}.{rng.integers(0, 99):02d}")
    text = " ".join(words)
    return text.capitalize() if rng.random() < 0.5 else text.upper()


def _paddle_normalize(grey_lines: np.ndarray) -> np.ndarray:
    """PaddleOCR's recognizer/classifier input: 3 channels, (x - 0.5) / 0.5."""
    rgb = np.repeat(grey_lines[:, None], 3, axis=1)
    return ((rgb - 0.5) / 0.5).astype(np.float32)


def build_ocr_cls(workdir: Path, rows: int = SHARE_ROWS // 2) -> BenchModel:
    """Text-line orientation (upright or turned 180 degrees), 48x192 lines; labels are the true orientation."""
    src = packaged_model(_OCR, "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    rng = np.random.default_rng(SEED)
    lines = np.stack([_text_line(_phrase(rng), 48, 192, rng, font_size=22) for _ in range(rows)])
    turned = rng.random(rows) < 0.5
    lines[turned] = lines[turned][:, ::-1, ::-1]
    x = _paddle_normalize(lines)
    decide, holdout = _split_save(workdir, "ocr-cls", {"x": x}, turned.astype(np.int64))
    return BenchModel(
        "ocr-cls",
        _copy(src, workdir, "ocr-cls"),
        decide,
        holdout,
        True,
        {"x": x[:1]},
        "1x3x48x192",
        f"{_OCR} {importlib.metadata.version(_OCR)} wheel (text-line orientation); {rows} rendered lines, half turned",
    )


def build_ocr_rec(workdir: Path, rows: int = SHARE_ROWS, width: int = 160) -> BenchModel:
    src = packaged_model(_OCR, "ch_PP-OCRv4_rec_infer.onnx")
    rng = np.random.default_rng(SEED)
    lines = np.stack([_text_line(_phrase(rng), 48, width, rng, font_size=24) for _ in range(rows)])
    x = _paddle_normalize(lines)
    decide, holdout = _split_save(workdir, "ocr-rec", {"x": x})
    return BenchModel(
        "ocr-rec",
        _copy(src, workdir, "ocr-rec"),
        decide,
        holdout,
        False,
        {"x": x[:1]},
        f"1x3x48x{width}",
        f"{_OCR} {importlib.metadata.version(_OCR)} wheel (PP-OCRv4 recognizer); {rows} rendered text lines",
    )


def _page(rng: np.random.Generator, size: int) -> np.ndarray:
    """An RGB page of a few text lines at varied sizes and places, on paper tinted unevenly."""
    from PIL import Image, ImageDraw

    tint = rng.integers(200, 255, 3)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in tint))
    draw = ImageDraw.Draw(image)
    y = int(rng.integers(4, 20))
    while y < size - 30:
        font = _font(int(rng.integers(14, 26)))
        draw.text(
            (int(rng.integers(4, size // 4)), y),
            _phrase(rng),
            fill=tuple(int(v) for v in rng.integers(0, 70, 3)),
            font=font,
        )
        y += int(rng.integers(28, 48))
    pixels = np.asarray(image, np.float32) / 255.0
    return np.clip(pixels + rng.normal(0, 0.02, pixels.shape), 0, 1).astype(np.float32)


def build_ocr_det(workdir: Path, rows: int = 12, size: int = 160) -> BenchModel:
    src = packaged_model(_OCR, "ch_PP-OCRv4_det_infer.onnx")
    rng = np.random.default_rng(SEED)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    pages = np.stack([(_page(rng, size) - mean) / std for _ in range(rows)]).transpose(0, 3, 1, 2)
    x = pages.astype(np.float32)
    decide, holdout = _split_save(workdir, "ocr-det", {"x": x})
    return BenchModel(
        "ocr-det",
        _copy(src, workdir, "ocr-det"),
        decide,
        holdout,
        False,
        {"x": x[:1]},
        f"1x3x{size}x{size}",
        f"{_OCR} {importlib.metadata.version(_OCR)} wheel (PP-OCRv4 detector); {rows} rendered pages",
    )


BUILDERS: dict[str, Callable[[Path], BenchModel]] = {
    "iris-logreg": build_iris_logreg,
    "digits-mlp": build_digits_mlp,
    "digits-cnn": build_digits_cnn,
    "shapes-seg": build_shapes_seg,
    "digits-ctc": build_digits_ctc,
    "magika": build_magika,
    "silero-vad": build_silero_vad,
    "ocr-cls": build_ocr_cls,
    "ocr-rec": build_ocr_rec,
    "ocr-det": build_ocr_det,
}
