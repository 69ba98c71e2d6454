"""Label an image dataset with a weak supervisor: ``weak_logits``, ``weak_label`` and ``weak_confidence`` columns.

The labels are computed once through ``Dataset.map`` under a fingerprint built on purpose from what determines them
(the input dataset's fingerprint, the weak model's identity, the image processor's config and the labelling
parameters), so re-running is read from the ``datasets`` cache and a different weak model or preprocessing never
reuses stale labels. Weak and target label spaces are matched by ``id2label`` *names*. The writing — to disk, split
over processes, or from a stream into resumable Parquet shards — is :func:`hf_w2s.data.batch_columns.
map_batches_to_columns`'s; the logits are stored as float32, float16 or top-k (:mod:`hf_w2s.data.logit_storage`).

Longer than ~400 lines on purpose: the labelling, the fingerprint that decides when labels are reused and the
label-space checks it depends on read together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, IterableDatasetDict, Value
from datasets.fingerprint import Hasher

from ..labels import is_generic, label_permutation, names_of
from ..predicting import predicting
from .batch_columns import map_batches_to_columns
from .identity import IDENTITY_COLUMN, content_hash
from .images import decode_image, pixel_values_from_images
from .loading import cache_file_name, column_array, is_streaming
from .logit_storage import LogitStorage, full_width, storage_of

logger = logging.getLogger(__name__)

# bump when the labelling computation changes, so that old cached labels are not reused
LABELLING_VERSION = 4  # 3: the cache file holds only the new columns; 4: with the images' identity (image_hash)
LABEL_COLUMNS = ("label", "labels")
WEAK_LABEL_COLUMN = "weak_label"
WEAK_CONFIDENCE_COLUMN = "weak_confidence"


# -- the weak model -------------------------------------------------------------------------------------------------


class WeakModel(NamedTuple):
    """A weak model loaded by :func:`load_weak_model`: the model, its image processor, where it came from (``name``,
    and ``revision``, the Hub commit sha, ``None`` for a local directory) and its cache ``identity``."""

    model: Any
    image_processor: Any
    name: str
    revision: str | None
    identity: str


def hub_commit(name_or_path: str, *, revision: str | None = None, token: str | bool | None = None) -> str | None:
    """The Hub commit sha the files of ``name_or_path`` were resolved to (from the cache), ``None`` if local."""
    from transformers.utils import cached_file
    from transformers.utils.hub import extract_commit_hash

    if Path(name_or_path).is_dir():
        return None
    resolved = cached_file(name_or_path, "config.json", revision=revision, token=token)
    return extract_commit_hash(resolved, None)


def load_weak_model(name_or_path, *, revision: str | None = None, token: str | bool | None = None,
                    allow_pickle: bool = False, trust_remote_code: bool = False) -> WeakModel:
    """Load any image classifier and its image processor from a Hub id or a local directory, with
    :func:`hf_w2s.modeling.load_image_classifier`'s safe defaults (safetensors only, no remote code unless asked).

    The identity used for caching is the repo id and commit sha when the files came from the Hub, else a hash of
    the weights and config (a local directory can change in place).
    """
    from ..modeling import load_image_classifier, load_image_processor

    name_or_path = str(name_or_path)
    safety = {"allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code}
    model = load_image_classifier(name_or_path, revision=revision, token=token, **safety)
    processor = load_image_processor(name_or_path, revision=revision, token=token, trust_remote_code=trust_remote_code)
    commit = hub_commit(name_or_path, revision=revision, token=token)
    identity = f"hub:{name_or_path}@{commit}" if commit else model_identity(model)
    return WeakModel(model, processor, name_or_path, commit, identity)


def describe_weak_model(model) -> dict[str, str | None]:
    """``{"name": ..., "revision": ...}``: where a model came from (its ``_name_or_path``, and its Hub commit when
    known: a :class:`WeakModel` records it; a bare model only on transformers versions that keep ``_commit_hash``)."""
    if isinstance(model, WeakModel):
        return {"name": model.name, "revision": model.revision}
    config = model.config
    return {"name": getattr(config, "_name_or_path", None) or None, "revision": getattr(config, "_commit_hash", None)}


def weights_hash(model) -> str:
    """sha256 over the model's class, state dict (names, dtypes, shapes and bytes) and config.

    Config fields that ``save_pretrained`` / ``from_pretrained`` add or rewrite without changing the function
    (``architectures``, ``dtype``, paths, versions, and ``use_cache``, which the Trainer switches off) are left
    out, so a trained, saved and reloaded model keeps its identity.
    """
    h = hashlib.sha256(type(model).__name__.encode())
    config = model.config.to_dict()
    for key in ("_name_or_path", "_commit_hash", "transformers_version", "architectures", "dtype", "torch_dtype",
                "use_cache"):
        config.pop(key, None)
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_identity(model) -> str:
    """The cache identity of an in-memory model, which may have changed since it was loaded: a hash of its weights."""
    return f"sha256:{weights_hash(model)}"


def processor_identity(image_processor) -> str:
    to_json = getattr(image_processor, "to_json_string", None)
    text = to_json() if callable(to_json) else Hasher.hash(image_processor)
    return hashlib.sha256(text.encode()).hexdigest()


# -- label spaces ---------------------------------------------------------------------------------------------------


def find_label_column(dataset: Dataset, label_column: str | None = None) -> str | None:
    """The ground-truth column: ``label_column`` if given (must exist), else ``label``/``labels`` if present."""
    if label_column is not None:
        if label_column not in dataset.column_names:
            raise ValueError(f"dataset has no label column {label_column!r}; columns: {dataset.column_names}")
        return label_column
    return next((c for c in LABEL_COLUMNS if c in dataset.column_names), None)


def _target_names(dataset: Dataset, label_column: str | None, label_names, weak_names: list[str]) -> list[str]:
    explicit = names_of(label_names)
    if explicit is not None:
        return explicit
    feature = dataset.features.get(label_column) if label_column else None
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    return weak_names


def weak_label_accuracy(dataset: Dataset, label_column: str | None = None) -> float | None:
    """Accuracy of the ``weak_label`` column against the ground truth, matched by label *names*, or ``None``.

    ``None`` when there is no ground-truth column or no example has a label (``-1``/``-100`` are skipped).
    """
    label_column = find_label_column(dataset, label_column)
    if label_column is None or WEAK_LABEL_COLUMN not in dataset.column_names or len(dataset) == 0:
        return None
    truth = column_array(dataset, label_column, np.int64)
    weak = column_array(dataset, WEAK_LABEL_COLUMN, np.int64)
    gt_feature = dataset.features[label_column]
    weak_feature = dataset.features[WEAK_LABEL_COLUMN]
    if isinstance(gt_feature, ClassLabel) and isinstance(weak_feature, ClassLabel):
        if list(gt_feature.names) != list(weak_feature.names):
            perm = label_permutation(gt_feature.names, weak_feature.names, source="ground truth", target="weak labels")
            inverse = np.argsort(np.asarray(perm))  # ground-truth id -> weak-label id
            valid = truth >= 0
            truth = np.where(valid, inverse[np.clip(truth, 0, None)], truth)
    valid = truth >= 0
    if not valid.any():
        return None
    return float((weak[valid] == truth[valid]).mean())


# -- labelling -------------------------------------------------------------------------------------------------------


def _check_image_column(dataset: Dataset, image_column: str) -> Image:
    if image_column not in dataset.column_names:
        images = [c for c, f in dataset.features.items() if isinstance(f, Image)]
        hint = f" (image columns present: {images}; pass image_column=)" if images else ""
        raise ValueError(
            f"dataset has no image column {image_column!r}; columns: {dataset.column_names}{hint}"
        )
    feature = dataset.features[image_column]
    if not isinstance(feature, Image):
        raise ValueError(
            f"column {image_column!r} is {feature!r}, not a datasets.Image column; cast it first, e.g. "
            f"dataset.cast_column({image_column!r}, datasets.Image())"
        )
    return feature


def labelling_fingerprint(dataset, model_id: str, image_processor, **params: Any) -> str:
    """The fingerprint of a labelled dataset: input fingerprint (a stream's: its sources, features and split) + weak
    model identity + processor + parameters.

    Batch size, device and the number of processes are deliberately left out: they do not change the labels (beyond
    float noise).
    """
    from .stream_shards import stream_identity

    payload = {
        "dataset": stream_identity(dataset) if is_streaming(dataset) else dataset._fingerprint,
        "model": model_id,
        "processor": processor_identity(image_processor),
        "version": LABELLING_VERSION,
        **params,
    }
    return Hasher.hash(json.dumps(payload, sort_keys=True, default=str))


def _resolve_weak_model(weak_model, image_processor, revision):
    """``(model, cache identity, image processor)`` of a weak model given by id/path, as a :class:`WeakModel` or
    in memory (which needs its processor)."""
    if isinstance(weak_model, (str, os.PathLike)):
        weak_model = load_weak_model(weak_model, revision=revision)
    if isinstance(weak_model, WeakModel):
        return weak_model.model, weak_model.identity, image_processor or weak_model.image_processor
    if image_processor is None:
        raise ValueError("an in-memory weak model needs its image_processor=")
    return weak_model, model_identity(weak_model), image_processor


def _label_order(dataset, model, label_column, label_names):
    """``(weak model's names, target names, index)``: ``logits[:, index]`` is in the target order (``None``: as is).
    Names are checked now, before any compute: the weak model's against the target's, and the ground truth's."""
    weak_names = names_of(model)
    target_names = _target_names(dataset, label_column, label_names, weak_names)
    perm = label_permutation(weak_names, target_names, source="weak model", target="dataset labels")
    gt_feature = dataset.features.get(label_column) if label_column else None
    if isinstance(gt_feature, ClassLabel):  # the accuracy compares names
        label_permutation(gt_feature.names, target_names, source="ground-truth labels", target="label_names")
    return weak_names, target_names, (torch.as_tensor(perm) if perm is not None else None)


class NonFiniteLogitsError(ValueError):
    """The weak model's logits are NaN or infinite for some rows (``rows``): nothing was written."""

    def __init__(self, message: str, rows):
        super().__init__(message)
        self.rows = list(rows)


def _batch_labeller(model, image_processor, image_column: str, decoder, index, device, logits_column: str,
                    storage: LogitStorage):
    """The batched map function: decode the images, run the weak model through :func:`hf_w2s.predicting.predicting`
    (evaluation mode, ``inference_mode``), reorder its logits to the target label order (``index``), refuse
    non-finite logits naming the rows, store the logits in ``storage``'s form (the label and confidence come from
    the full float32 logits) and each row's image identity (its content hash: :mod:`hf_w2s.data.identity`)."""

    def _label(values, indices):
        images = [decode_image(v, i, image_column, decoder) for v, i in zip(values, indices)]
        model.to(device)  # only when something is computed (a cache hit never touches the model)
        pixel_values = pixel_values_from_images(images, image_processor).to(device)
        with predicting(model):
            logits = model(pixel_values=pixel_values).logits.float()
            if index is not None:
                logits = logits[:, index.to(logits.device)]
            logits = logits.cpu()
        finite = torch.isfinite(logits).all(-1)
        if not bool(finite.all()):
            rows = [indices[i] for i in torch.nonzero(~finite).flatten().tolist()]
            raise NonFiniteLogitsError(
                f"the weak model produced non-finite logits (NaN/inf) for rows {rows[:20]}"
                f"{' ...' if len(rows) > 20 else ''}; nothing was written.", rows
            )
        probs = torch.softmax(logits, -1)
        return {
            logits_column: storage.encode(logits.numpy(), indices),
            WEAK_LABEL_COLUMN: logits.argmax(-1).numpy(),
            WEAK_CONFIDENCE_COLUMN: probs.max(-1).values.numpy(),
            IDENTITY_COLUMN: [content_hash(v) for v in values],
        }

    return _label


def label_dataset(  # long: a third of it is the docstring, one entry per argument
    dataset,
    weak_model,
    image_processor=None,
    *,
    image_column: str = "image",
    batch_size: int = 64,
    logits_column: str = "weak_logits",
    label_names=None,
    label_column: str | None = None,
    revision: str | None = None,
    device: str | torch.device | None = None,
    desc: str = "weak labels",
    logits_storage: str = "float32",
    top_k: int = 10,
    output_dir: str | os.PathLike | None = None,
    shard_size: int = 10_000,
) -> Dataset:
    """Add ``weak_logits`` (one per class), ``weak_label`` (argmax), ``weak_confidence`` (max softmax) and
    ``image_hash`` (the content hash of the row's image: the identity the weak labels are joined to images by,
    :mod:`hf_w2s.data.identity`).

    Args:
        dataset: a ``datasets.Dataset`` with an ``Image`` column (a ``DatasetDict`` must be indexed by split first),
            or a streaming ``IterableDataset`` (with ``output_dir``).
        weak_model: any ``AutoModelForImageClassification``: a Hub id, a local directory, an in-memory model, or a
            :class:`WeakModel` from :func:`load_weak_model`.
        image_processor: the weak model's image processor (loaded with the model when ``weak_model`` is a string).
            Images are converted to the mode the processor normalises for (``L`` or ``RGB``).
        label_names: the label space the weak logits are written in — a list of names or a model/config with
            ``id2label`` (e.g. the student). Defaults to the names of the ground-truth ``ClassLabel`` column if any,
            else the weak model's own. Weak logits are matched to it by *name*: a reordered label set is remapped,
            missing names raise a ``ValueError`` before any compute.
        label_column: the ground-truth column (default: ``label``/``labels`` if present); the weak accuracy on it is
            logged (see :func:`weak_label_accuracy`).
        revision: the Hub revision when ``weak_model`` is a Hub id.
        device: where the weak model runs; defaults to the device Accelerate picks. The model is moved back to
            where it was afterwards.
        logits_storage, top_k: how ``weak_logits`` is stored — ``"float32"`` (exact), ``"float16"`` or ``"topk"``
            (the ``top_k`` largest logits, their class ids and the log-sum-exp of the rest); see
            :mod:`hf_w2s.data.logit_storage`. The trainer reads every form as full-width logits.
        output_dir, shard_size: for a stream — the folder its Parquet shards of ``shard_size`` rows are written to
            (``output_dir/data/``, with the progress under ``output_dir/.hf_w2s/``); run again with the same folder,
            an interrupted labelling resumes at its first missing shard.

    The labels are computed batch by batch under ``torch.inference_mode()`` with a progress bar and written to disk
    (:func:`hf_w2s.data.batch_columns.map_batches_to_columns`). Under ``torchrun`` / ``accelerate launch`` the rows
    are split over the processes: each writes its part, and every process returns the same memory-mapped result, in
    the original order, with the fingerprint of a one-process run (a stream: each process labels its own shards).
    The fingerprint is built from the dataset's fingerprint, the weak model's identity (Hub commit when loaded here by
    id, otherwise a hash of its weights and config), the processor's config and the labelling parameters, so
    re-running on a dataset backed by files (loaded from the Hub, a folder or ``load_from_disk``) is read from the
    cache. An in-memory dataset has no cache: persist it first. Non-finite weak logits raise a ``ValueError`` naming
    the rows; nothing is cached then.
    """
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        raise TypeError(f"label one split at a time, e.g. dataset['train'] (splits: {list(dataset)})")
    streaming = is_streaming(dataset)
    if not streaming and not isinstance(dataset, Dataset):
        raise TypeError(f"label_dataset needs a datasets.Dataset or a streaming IterableDataset, got "
                        f"{type(dataset).__name__}")
    if streaming and output_dir is None:
        raise ValueError("label_dataset of a streaming IterableDataset writes its labels as Parquet shards: pass "
                         "output_dir= (a folder; run again with the same folder, an interrupted labelling resumes) "
                         "and shard_size= (rows per shard).")
    if streaming and dataset.features is None:
        dataset = dataset._resolve_features()
    decoder = _check_image_column(dataset, image_column)
    if not streaming and len(dataset) == 0:
        raise ValueError("the dataset is empty: there is nothing to label")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    storage = LogitStorage.of(logits_storage, top_k)
    label_column = find_label_column(dataset, label_column)

    model, identity, image_processor = _resolve_weak_model(weak_model, image_processor, revision)
    weak_names, target_names, index = _label_order(dataset, model, label_column, label_names)
    storage.check_width(len(target_names))
    stored = {} if storage.form == "float32" else {"storage": storage.name}  # float32 keeps earlier fingerprints
    fingerprint = labelling_fingerprint(dataset, identity, image_processor, image_column=image_column,
                                        logits_column=logits_column, weak_names=weak_names, target_names=target_names,
                                        **stored)

    if device is None:
        from accelerate import PartialState

        device = PartialState().device
    home = next(model.parameters()).device
    _label = _batch_labeller(model, image_processor, image_column, decoder, index, device, logits_column, storage)
    new_features = Features({
        logits_column: storage.feature(len(target_names)),
        WEAK_LABEL_COLUMN: ClassLabel(names=target_names),
        WEAK_CONFIDENCE_COLUMN: Value("float32"),
        IDENTITY_COLUMN: Value("string"),  # which image each row's labels belong to: joined by it, never by position
    })
    try:  # only the new columns are written (the images are not copied; a stream's shards hold every column)
        labelled = map_batches_to_columns(
            dataset, _label, features=new_features, fingerprint=fingerprint, input_columns=[image_column],
            batch_size=batch_size, tag="weak-labels", desc=desc, what="label_dataset", output_dir=output_dir,
            shard_size=shard_size,
        )
    finally:
        model.to(home)  # the caller's model stays where it was (and, through predicting, as it was)

    acc = weak_label_accuracy(labelled, label_column)
    if acc is not None:
        logger.info("weak model accuracy on %r: %.4f (%d examples)", label_column, acc, len(labelled))
    return labelled


def weak_logits_array(dataset: Dataset, column: str = "weak_logits") -> np.ndarray:
    """The ``(N, C)`` float32 array of a weak-logits column, in any storage form (float16 and top-k decoded)."""
    if storage_of(dataset.features.get(column)) in (None, LogitStorage("float32"), LogitStorage("float16")):
        return column_array(dataset, column, np.float32)
    return full_width(list(dataset[column])) if len(dataset) else np.zeros((0, 0), np.float32)


def align_weak_labels(dataset: Dataset, names: Sequence[str], *, logits_column: str = "weak_logits") -> Dataset:
    """Reorder a labelled dataset's weak logits (and ``weak_label``) to the label order ``names``, by name.

    The dataset's label names come from its ``weak_label`` ``ClassLabel``; without one it is returned unchanged.
    Missing names raise a ``ValueError`` listing them.
    """
    feature = dataset.features.get(WEAK_LABEL_COLUMN) if dataset.features else None
    if not isinstance(feature, ClassLabel) or logits_column not in dataset.column_names:
        return dataset
    names = [str(n) for n in names]
    perm = label_permutation(feature.names, names, source="weak-label dataset", target="student")
    if perm is None:
        return dataset
    index = np.asarray(perm)
    inverse = np.argsort(index)
    storage = storage_of(dataset.features[logits_column]) or LogitStorage("float32")

    def _reorder(logits, weak_label):
        return {logits_column: storage.reorder(logits, index), WEAK_LABEL_COLUMN: inverse[np.asarray(weak_label)]}

    features = dataset.features.copy()
    features[WEAK_LABEL_COLUMN] = ClassLabel(names=names)
    fingerprint = Hasher.hash(json.dumps({"dataset": dataset._fingerprint, "align": names}))
    return dataset.map(
        _reorder,
        batched=True,
        input_columns=[logits_column, WEAK_LABEL_COLUMN],
        features=features,
        new_fingerprint=fingerprint,
        cache_file_name=cache_file_name(dataset, "aligned", fingerprint),  # never into the source's folder
        desc="reorder weak labels",
    )


def align_to_model(dataset, model, logits_column: str = "weak_logits"):
    """Reorder a dataset's weak logits and its ground-truth ``ClassLabel`` ids to the model's ``id2label`` order, by
    name. Names that do not match raise a ``ValueError`` listing them. A model with generic names (``LABEL_0``, ...)
    learns the ground truth's ids: the weak logits are reordered to the ground-truth ``ClassLabel``'s names; a
    dataset without class names is left as is."""
    names = names_of(model) if getattr(getattr(model, "config", None), "id2label", None) else None
    if not isinstance(dataset, Dataset) or names is None:
        return dataset
    if is_generic(names):  # the student learns the ground truth's ids: its weak logits must follow the same names
        column = find_label_column(dataset)
        feature = dataset.features.get(column) if column else None
        if isinstance(feature, ClassLabel) and len(feature.names) == len(names):
            return align_weak_labels(dataset, feature.names, logits_column=logits_column)
        return dataset
    dataset = align_weak_labels(dataset, names, logits_column=logits_column)
    column = find_label_column(dataset)
    feature = dataset.features.get(column) if column else None
    if isinstance(feature, ClassLabel) and label_permutation(
        feature.names, names, source=f"dataset's {column!r} column", target="student"
    ) is not None:
        dataset = dataset.align_labels_with_mapping({n: i for i, n in enumerate(names)}, column)
    return dataset
