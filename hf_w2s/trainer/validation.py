"""Checks on the options, data, models and output directory of a weak-to-strong run, before any compute is spent.

* Options: :func:`check_options` is the one pass over a dataclass of options (``WeakToStrongConfig``,
  ``RecipeArguments``, the experiment's and the demo's configs, ``hf-w2s label``'s): every field's type from its
  annotation (a boolean, a word or a list where a number is expected is an error), finiteness (no NaN/inf), and the
  ranges the class declares in ``RANGES`` (``name: (low, high, closed)``, as :attr:`hf_w2s.losses.LossKnobs.RANGES`).
* Data: :func:`check_dataset` (column names that exist, labels within the label set or class names mapped to ids,
  images present and decodable, with rows and paths) and the weak-logits checks.
* Files: the output directory (another run, a file, the user's own README), checkpoints (the last *complete* one),
  writes that leave nothing half-written (:func:`atomic_write`, :func:`replace_dir`).

Each check raises ``ValueError`` with a message that names the problem and the way
out (the messages are listed in docs/bad_input.md), except the image-mode check, which only notes (once) that images
will be converted. Column checks run on the Arrow data in batches (pyarrow compute), without loading a column into
Python lists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import types
import typing

import numpy as np

from ..data.logit_storage import full_width_arrow

logger = logging.getLogger(__name__)

__all__ = [
    "check_range",
    "check_options",
    "check_inputs",
    "check_weak_logits",
    "check_image_inputs",
    "check_channels",
    "image_mode_note",
    "RUN_FILE",
    "run_identity",
    "check_output_dir",
    "write_run_file",
    "check_output_path",
    "is_disk_full",
    "disk_full_error",
    "atomic_write",
    "staged_dir",
    "staged_files",
    "foreign_readme",
    "checkpoint_problem",
    "last_complete_checkpoint",
    "resume_target",
    "checkpoint_to_resume",
]

_BATCH = 65_536


# -- options ---------------------------------------------------------------------------------------------------------


def check_range(name: str, value, low, high, closed: bool) -> None:
    """``low < value <= high`` (``low <= value`` when ``closed``; ``None`` = unbounded); NaN and ±inf never pass."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}.")
    ok_low = low is None or (value >= low if closed else value > low)
    ok_high = high is None or value <= high
    if not (ok_low and ok_high):
        if low is not None and high is not None:
            raise ValueError(f"{name} must be within {'[' if closed else '('}{low:g}, {high:g}], got {value}.")
        raise ValueError(f"{name} must be {'>=' if closed else '>'} {low:g}, got {value}.")


#: the plain kinds of option :func:`check_options` checks: what one value must be, and what a list holds
_NUMBER_KINDS = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
                 str: ("a string", "strings")}


def _is_kind(value, kind) -> bool:
    is_bool = isinstance(value, (bool, np.bool_))
    if kind is bool:
        return is_bool
    if kind is int:
        return isinstance(value, (int, np.integer)) and not is_bool
    if kind is float:
        return isinstance(value, (int, float, np.integer, np.floating)) and not is_bool
    return isinstance(value, str)


def _expected(annotation):
    """What a field's annotation asks for, as ``(kinds, list_of, optional)``, or ``None`` when it is not a plain
    number / boolean / string (or an optional one, or a list of them), which :func:`check_options` leaves alone."""
    args = typing.get_args(annotation)
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        optional = type(None) in args
        args = tuple(a for a in args if a is not type(None))
        if len(args) != 1:
            return None
        annotation = args[0]
    if typing.get_origin(annotation) is list:
        (inner,) = typing.get_args(annotation) or (None,)
        return ((inner,), True, optional) if inner in _NUMBER_KINDS else None
    return ((annotation,), False, optional) if annotation in _NUMBER_KINDS else None


def _describe_value(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_value(name: str, value, annotation) -> None:
    """``value`` is of the plain type ``annotation`` asks for (see :func:`_expected`), and finite if a number."""
    expected = _expected(annotation)
    if expected is None or (value is None and expected[2]):
        return
    (kind,), list_of, optional = expected
    one, many = _NUMBER_KINDS[kind]
    if list_of:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list of {many}{' or null' if optional else ''}, got "
                             f"{_describe_value(value)}.")
        for i, item in enumerate(value):
            check_value(f"{name}[{i}]", item, kind)
        return
    if not _is_kind(value, kind):
        raise ValueError(f"{name} must be {one}{' or null' if optional else ''}, got {_describe_value(value)}.")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}.")


def _hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an unresolvable annotation is left unchecked, never a crash
        return {}


def check_options(options, ranges: dict | None = None, *, where: str = "", names=None, kinds=tuple(_NUMBER_KINDS)
                  ) -> None:
    """The one validation pass over a dataclass of options: each field's type (from its annotation), finiteness, and
    its range in ``ranges`` (default: the class's ``RANGES``, ``name: (low, high, closed)``). ``names`` limits the
    pass to those fields, ``kinds`` the type checks to fields of those kinds (e.g. only numbers and booleans for a
    library's fields that it converts itself). Raises ``ValueError`` naming the field (prefixed with ``where``), the
    value and what it must be."""
    ranges = getattr(type(options), "RANGES", {}) if ranges is None else ranges
    hints = _hints(type(options))
    for f in dataclasses.fields(options):
        if not f.init or (names is not None and f.name not in names):
            continue
        value = getattr(options, f.name)
        expected = _expected(hints[f.name]) if f.name in hints else None
        if expected is not None and expected[0][0] in kinds:
            check_value(where + f.name, value, hints[f.name])
        if f.name in ranges and value is not None:
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                check_range(where + f.name, v, *ranges[f.name])


def _arrow_batches(dataset, column: str, batch_size: int = _BATCH):
    """``(row offset, pyarrow column)`` batches of one column, in the dataset's row order."""
    part = dataset.select_columns([column]).with_format("arrow")
    offset = 0
    for table in part.iter(batch_size=batch_size):
        col = table.column(column)
        yield offset, col
        offset += len(col)


def _rows(indices, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return shown + (", ..." if len(indices) > limit else "")


def check_weak_logits(
    dataset, column: str = "weak_logits", num_labels: int | None = None, *, what: str = "training"
) -> None:
    """Check a cached weak-logits column: present, one list of numbers per row, ``num_labels`` wide, all finite."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = list(getattr(dataset, "column_names", []) or [])
    if column not in columns:
        raise ValueError(
            f"the {what} dataset has no {column!r} column (columns: {columns}); label it first with "
            "hf_w2s.label_dataset(...) or pass weak_model= to the trainer."
        )
    n_null, null_rows, widths, bad_rows, n_bad = 0, [], set(), [], 0
    wrong_width_rows = []
    for offset, col in _arrow_batches(dataset, column):
        col = full_width_arrow(col)  # float16 / top-k weak logits are checked at full width
        value_type = getattr(col.type, "value_type", None)
        if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
                or pa.types.is_fixed_size_list(col.type)) or not (
                pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
            raise ValueError(
                f"the {column!r} column of the {what} dataset must hold one list of numbers (the weak logits) per "
                f"example, but its Arrow type is {col.type}."
            )
        for chunk in col.chunks:
            if chunk.null_count:
                null_idx = np.flatnonzero(chunk.is_null().to_numpy(zero_copy_only=False))
                n_null += len(null_idx)
                null_rows.extend((null_idx + offset).tolist()[:5])
            lengths = pc.list_value_length(chunk).to_numpy(zero_copy_only=False).astype(float)
            valid = ~np.isnan(lengths)
            widths.update(np.unique(lengths[valid]).astype(int).tolist())
            if num_labels is not None:
                wrong = np.flatnonzero(valid & (lengths != num_labels))
                wrong_width_rows.extend((wrong + offset).tolist()[:5])
            values = pc.list_flatten(chunk)
            ok = pc.is_finite(values) if pa.types.is_floating(values.type) else pc.is_valid(values)
            ok = pc.fill_null(ok, False)
            if not pc.all(ok).as_py():
                parents = pc.list_parent_indices(chunk).to_numpy(zero_copy_only=False)
                rows = np.unique(parents[~ok.to_numpy(zero_copy_only=False)])
                n_bad += len(rows)
                bad_rows.extend((rows + offset).tolist()[:5])
            offset += len(chunk)
    if n_null:
        raise ValueError(
            f"the {column!r} column of the {what} dataset is missing for {n_null} example(s) "
            f"(rows {_rows(null_rows)}); "
            "re-label those examples or drop them before training."
        )
    if num_labels is not None and wrong_width_rows:
        raise ValueError(
            f"the {column!r} column of the {what} dataset has {' or '.join(map(str, sorted(widths)))} values per "
            f"example but the student has "
            f"{num_labels} labels "
            f"(rows {_rows(wrong_width_rows)}); weak and strong label sets must match (label the data with a weak "
            "model of the same label names)."
        )
    if n_bad:
        raise ValueError(
            f"the {column!r} column of the {what} dataset has NaN or infinite values in {n_bad} example(s) "
            f"(rows {_rows(bad_rows)}); the weak model diverged or the file is corrupt — re-label the data."
        )


def _has_transform(dataset) -> bool:
    fmt = getattr(dataset, "format", None) or {}
    return fmt.get("type") == "custom" or bool((fmt.get("format_kwargs") or {}).get("transform"))


def check_image_inputs(dataset, image_column: str, processing_class, *, what: str = "training") -> None:
    """The dataset has images the collator can use: ``pixel_values``, or ``image_column`` plus an image processor."""
    columns = list(getattr(dataset, "column_names", None) or [])
    if not columns or _has_transform(dataset) or "pixel_values" in columns:
        return
    if image_column not in columns:
        raise ValueError(
            f"the {what} dataset has no image column {image_column!r} and no 'pixel_values' (columns: {columns}); "
            "set image_column= in WeakToStrongConfig to the column that holds the images."
        )
    if processing_class is None:
        raise ValueError(
            f"the {what} dataset holds raw images in {image_column!r} but no image processor was given: pass "
            "processing_class=AutoImageProcessor.from_pretrained(...) to the trainer."
        )


def _processor_channels(image_processor) -> int | None:
    from ..data.images import processor_channels

    return processor_channels(image_processor) if image_processor is not None else None


def check_channels(model, image_processor, *, who: str = "student") -> None:
    """The image processor normalises as many channels as the model's config expects."""
    expected = getattr(getattr(model, "config", None), "num_channels", None)
    got = _processor_channels(image_processor)
    if expected is None or got is None or expected == got:
        return
    raise ValueError(
        f"the {who}'s image processor normalises {got} channel(s) (image_mean of length {got}) but the {who} "
        f"expects {expected} (config.num_channels); use the processor that belongs to the model."
    )


_MODE_CHANNELS = {"1": 1, "L": 1, "LA": 1, "I": 1, "I;16": 1, "F": 1, "P": 3, "RGB": 3, "RGBA": 3, "CMYK": 3,
                  "YCbCr": 3, "LAB": 3, "HSV": 3}


def image_mode_note(dataset, image_column: str, image_processor, *, what: str = "training") -> str | None:
    """Log a one-time note when the images' mode differs from the processor's (they are converted, not rejected).

    Looks at the first image only; the collator converts every image (``PIL.Image.convert``) to ``L`` for a
    one-channel processor and to ``RGB`` otherwise. Returns the note, or ``None``.
    """
    columns = list(getattr(dataset, "column_names", None) or [])
    if image_processor is None or image_column not in columns or _has_transform(dataset) or len(dataset) == 0:
        return None
    image = dataset.select_columns([image_column])[0][image_column]
    mode = getattr(image, "mode", None)
    if mode is None:
        return None
    channels = _processor_channels(image_processor)
    target = "L" if channels == 1 else "RGB"
    if mode == target:
        return None
    from ..data.images import WIDE_MODES

    if mode in WIDE_MODES:
        kind = "floating-point" if mode == "F" else "16-bit" if mode.startswith("I;16") else "32-bit integer"
        note = (f"the {what} images in {image_column!r} are {kind} (PIL mode {mode!r}); they are scaled to 8 bits "
                f"(not clipped: hf_w2s.data.images.to_8bit) and converted to {target!r} as batches are built.")
        logger.warning(note)
        return note
    kind = "grayscale" if _MODE_CHANNELS.get(mode) == 1 else "colour"
    note = (
        f"the {what} images in {image_column!r} are {kind} (PIL mode {mode!r}) but the model's image processor "
        f"expects {target!r} ({1 if target == 'L' else 3} channel(s)); they are converted with "
        f"PIL.Image.convert({target!r}) as batches are built."
    )
    logger.warning(note)
    return note


# -- the data: columns, labels, images --------------------------------------------------------------------------

#: the columns the trainer and the collator read true labels from, in this order
LABEL_COLUMNS = ("label", "labels", "label_ids")
_IMAGE_BATCH = 1_000
#: (fingerprint, column) of datasets whose images all decoded, in this process: a dataset is scanned once
_SCANNED: set = set()


def is_streaming(dataset) -> bool:
    """Whether ``dataset`` is a streaming ``IterableDataset`` (:func:`hf_w2s.data.loading.is_streaming`)."""
    from ..data.loading import is_streaming as streaming

    return streaming(dataset)


def missing_column_error(what: str, kind: str, name: str, columns, option: str) -> ValueError:
    """A column the options name is not in the dataset: say which columns there are, and the closest name."""
    close = difflib.get_close_matches(str(name), [str(c) for c in columns], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"the {what} dataset has no {kind} column {name!r} (columns: {list(columns)}); set {option} to "
                      f"the column that holds the {kind}s.{hint}")


def _shown(rows, values=None) -> str:
    text = _rows(rows)
    if values:
        text += ": " + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:5])
    return text


def check_labels(dataset, column: str, names=None, *, what: str = "training", needs_labels: bool = True):
    """The true labels in ``column`` are class ids within the label set (``names``, default the column's
    ``ClassLabel`` names), or class names (strings) in ``names``, which are then mapped to ids; a ``ClassLabel`` with
    the same names in another order is re-numbered to ``names``' order (the dataset is returned with the column as
    ``ClassLabel(names)``). Rows without a label (null or negative, e.g. -1) are an error where labels are needed
    (``needs_labels``). Read on the Arrow data in batches; nothing is written next to the source data."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import ClassLabel

    feature = dataset.features.get(column)
    if names is None and isinstance(feature, ClassLabel):
        names = list(feature.names)
    names = None if names is None else [str(n) for n in names]
    own = [str(n) for n in feature.names] if isinstance(feature, ClassLabel) else None
    reorder = own is not None and own != names and sorted(own) == sorted(names) and len(set(own)) == len(own)
    found = {key: {"rows": [], "count": 0, "values": []} for key in ("missing", "out", "unknown")}
    strings = False
    for offset, col in _arrow_batches(dataset, column):
        strings = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        if strings and names is None:
            raise ValueError(f"the {what} dataset's {column!r} column holds class names (strings), not class ids; "
                             "pass class_names (every class name, in id order) to map them to ids.")
        if not strings and not pa.types.is_integer(col.type):
            raise ValueError(f"the {what} dataset's {column!r} column must hold class ids (integers) or class names "
                             f"(strings), but its Arrow type is {col.type}.")
        masks = {"missing": col.is_null() if strings else pc.fill_null(pc.less(col, 0), True)}
        if strings:
            masks["unknown"] = pc.invert(pc.fill_null(pc.is_in(col, value_set=pa.array(names)), True))
        elif names is not None:
            masks["out"] = pc.fill_null(pc.greater_equal(col, len(names)), False)
        for key, mask in masks.items():
            idx = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
            entry = found[key]
            entry["count"] += len(idx)
            entry["rows"].extend((idx + offset).tolist()[:5])
            entry["values"].extend(pc.take(col, pa.array(idx[:5])).to_pylist() if len(idx) else [])
    _raise_label_problems(found, column, names, what, needs_labels)
    if strings:
        return _names_to_ids(dataset, column, names)
    return _reorder_class_ids(dataset, column, own, names) if reorder else dataset


def _names_to_ids(dataset, column: str, names: list[str]):
    """The dataset with its class-name column replaced by ids of ``names`` (``ClassLabel(names)``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = [pc.index_in(col, value_set=pa.array(names)).to_numpy(zero_copy_only=False)
           for _, col in _arrow_batches(dataset, column)]
    ids = np.concatenate(ids) if ids else np.zeros(0)
    return _replace_label_column(dataset, column, np.where(np.isnan(ids.astype(float)), -1, ids), names)


def _reorder_class_ids(dataset, column: str, own: list[str], names: list[str]):
    """A ``ClassLabel`` column whose names are ``names`` in another order, re-numbered to ``names``' order."""
    perm = np.asarray([names.index(n) for n in own])
    ids = np.concatenate([np.asarray(col.to_numpy(zero_copy_only=False)) for _, col in _arrow_batches(dataset, column)]
                         or [np.zeros(0, dtype=np.int64)])
    return _replace_label_column(dataset, column, np.where(ids >= 0, perm[np.clip(ids, 0, None)], ids), names)


def _replace_label_column(dataset, column: str, ids, names: list[str]):
    """``dataset`` with ``column`` replaced by the class ids ``ids`` of ``ClassLabel(names)``, built in memory:
    nothing is written next to the source data (``cast_column`` / ``map`` would write a cache file into its folder;
    a dataset with a row mapping is first flattened under hf_w2s's own cache)."""
    from datasets import ClassLabel, Dataset, Features, concatenate_datasets

    from ..data.loading import without_indices

    new = Dataset.from_dict({column: np.asarray(ids, dtype=np.int64)},
                            features=Features({column: ClassLabel(names=names)}))
    return concatenate_datasets([without_indices(dataset.remove_columns(column)), new], axis=1)


def _raise_label_problems(found, column, names, what, needs_labels) -> None:
    unknown, out, missing = found["unknown"], found["out"], found["missing"]
    if unknown["count"]:
        raise ValueError(f"the {what} dataset's {column!r} column has class names that are not in class_names in "
                         f"{unknown['count']} example(s) (rows {_shown(unknown['rows'], unknown['values'])}); "
                         f"class_names: {names}.")
    if out["count"]:
        shown = _shown(out["rows"], out["values"])
        raise ValueError(f"the {what} dataset's {column!r} column has labels outside 0..{len(names) - 1} (the "
                         f"{len(names)} classes) in {out['count']} example(s) (rows {shown}); correct those labels or "
                         "give every class name (class_names).")
    if missing["count"] and needs_labels:
        raise ValueError(f"the {what} dataset's {column!r} column has no label (null or negative, e.g. -1) in "
                         f"{missing['count']} example(s) (rows {_rows(missing['rows'])}); true labels are needed here "
                         "(a loss with true labels, or evaluation): drop those rows, e.g. dataset.filter(lambda y: y "
                         f"is not None and y >= 0, input_columns={column!r}).")


def _decode_error(blob, path, i):
    """``(i, error)`` if the encoded image does not decode, else ``None``."""
    from ..data.images import verify_image

    try:
        verify_image(blob, path)
    except Exception as err:  # noqa: BLE001 - PIL raises several kinds; each is the same user error
        return i, err
    return None


def check_images(dataset, column: str, *, what: str = "training", decode: bool = True) -> None:
    """Every row of the ``datasets.Image`` column ``column`` has an image, and (with ``decode``) every image decodes:
    an unreadable one is reported with its row and path before any compute. Each dataset is scanned once per
    process."""
    from datasets import Image

    from ..data.images import undecodable_image_error

    if not isinstance(dataset.features.get(column), Image):
        return
    key = (getattr(dataset, "_fingerprint", None), column)
    if key in _SCANNED:
        return
    n_null, null_rows = 0, []
    for offset, col in _arrow_batches(dataset, column, _IMAGE_BATCH):
        nulls = np.flatnonzero(np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool))
        n_null += len(nulls)
        null_rows.extend((nulls + offset).tolist()[:5])
    if n_null:
        raise ValueError(f"the {what} dataset has no image in column {column!r} for {n_null} example(s) (rows "
                         f"{_rows(null_rows)}); drop those rows, e.g. dataset.filter(lambda image: image is not None, "
                         f"input_columns={column!r}).")
    if not decode:
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
        for offset, col in _arrow_batches(dataset, column, _IMAGE_BATCH):
            col = col.combine_chunks()
            blobs, paths = col.field("bytes").to_pylist(), col.field("path").to_pylist()
            failed = next((r for r in pool.map(_decode_error, blobs, paths, range(len(blobs))) if r), None)
            if failed is not None:
                i, err = failed
                raise ValueError(f"the {what} dataset's {undecodable_image_error(offset + i, column, paths[i], err)}. "
                                 "Fix or drop that row (every image is decoded before training; check_images=False "
                                 "skips this).") from None
    _SCANNED.add(key)


def check_dataset(dataset, *, what: str = "training", image_column: str = "image", label_column: str | None = None,
                  label_names=None, needs_labels: bool = False, decode_images: bool = True,
                  label_option: str = "label_column"):
    """The data checks of one dataset, before any compute: the named label column exists, every image is there and
    decodes (:func:`check_images`), the labels are within the label set or class names mapped to ids
    (:func:`check_labels`). Returns the dataset (string labels cast to ids). A streaming dataset is returned as is
    (it cannot be scanned; the losses check every batch)."""
    if dataset is None or is_streaming(dataset) or not hasattr(dataset, "features"):
        return dataset
    columns = dataset.column_names
    if label_column is not None and label_column not in columns:
        raise missing_column_error(what, "label", label_column, columns, label_option)
    column = label_column or next((c for c in LABEL_COLUMNS if c in columns), None)
    if image_column in columns:
        check_images(dataset, image_column, what=what, decode=decode_images)
    if column is not None:
        dataset = check_labels(dataset, column, label_names, what=what, needs_labels=needs_labels)
    return dataset


# -- the output directory ------------------------------------------------------------------------------------------

RUN_FILE = "w2s_run.json"
#: what a run leaves that another run would overwrite (w2s_run.json alone only names a run that saved nothing)
_RUN_ARTEFACTS = ("trainer_state.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                  "adapter_model.safetensors", "config.json", "training_args.bin")
_CHECKPOINT = re.compile(r"^checkpoint-\d+$")
#: TrainingArguments that do not change what is trained (where it goes, how it is logged, saved or pushed)
_NOT_THE_RUN = re.compile(
    r"^(output_dir|logging_dir|run_name|overwrite_output_dir|resume_from_checkpoint|report_to|push_to_hub|hub_.*|"
    r"check_images|"
    r"logging_.*|save_.*|disable_tqdm|dataloader_.*|.*_token|project|trackio_.*|eval_.*|per_device_eval_batch_size|"
    r"do_train|do_eval|do_predict|include_.*|log_.*|skip_memory_metrics|ddp_.*)$"
)


def run_identity(args, model) -> dict:
    """What makes a run *this* run: the training arguments that affect the result and the student's config."""
    config = {k: v for k, v in sorted(args.to_dict().items()) if not _NOT_THE_RUN.match(k)}
    model_config = model.config.to_dict() if hasattr(model, "config") else {}
    model_config = {k: v for k, v in sorted(model_config.items()) if k not in ("transformers_version", "dtype")}
    # through JSON, as it is stored: int keys of id2label become strings, tuples become lists
    identity = json.loads(json.dumps({"config": config, "model": model_config}, sort_keys=True, default=str))
    blob = json.dumps(identity, sort_keys=True)
    return {"fingerprint": hashlib.sha256(blob.encode()).hexdigest()[:16], **identity}


def _existing_run(output_dir: str) -> tuple[dict | None, list[str]]:
    if not os.path.isdir(output_dir):
        return None, []
    names = sorted(os.listdir(output_dir))
    found = [n for n in names if n in _RUN_ARTEFACTS or _CHECKPOINT.match(n)]
    marker = None
    if RUN_FILE in names:
        try:
            with open(os.path.join(output_dir, RUN_FILE)) as f:
                marker = json.load(f)
        except (OSError, ValueError):
            marker = {}
    return marker, found


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for section in ("config", "model"):
        a, b = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return out


def check_output_dir(output_dir: str, identity: dict, *, resuming: bool, overwrite: bool, remove: bool = True) -> None:
    """Refuse an ``output_dir`` that holds another run, unless resuming or told to overwrite.

    * same run (same :func:`run_identity` fingerprint) or an empty / unrelated directory: fine;
    * resuming (``resume_from_checkpoint``): fine, with a warning listing what changed if the run differs;
    * another run (different fingerprint, or run files without an ``w2s_run.json``): ``ValueError`` unless
      ``overwrite`` — then its ``checkpoint-*`` folders are removed (by the process with ``remove``, the main one)
      so that a later resume cannot pick them up.
    """
    marker, found = _existing_run(output_dir)
    if not found:
        return
    same = bool(marker) and marker.get("fingerprint") == identity["fingerprint"]
    if same:
        return
    diff = _differences(marker, identity) if marker else []
    if resuming:
        if diff:
            logger.warning("resuming a run in %s with changed settings: %s", output_dir, "; ".join(diff[:10]))
        return
    if overwrite:
        stale = [n for n in found if _CHECKPOINT.match(n)]
        if not remove:
            return
        logger.warning("overwrite_output_dir: replacing the run in %s (removing %s)", output_dir, stale or "nothing")
        for name in stale:
            shutil.rmtree(os.path.join(output_dir, name))
        return
    what = f"a different run ({'; '.join(diff[:5])}{'; ...' if len(diff) > 5 else ''})" if diff else (
        "the files of another run")
    raise ValueError(
        f"output_dir {output_dir} already holds {what}: {', '.join(found[:8])}. Refusing to overwrite it; pass "
        "resume_from_checkpoint=True to continue that run, overwrite_output_dir=True to replace it, or choose "
        "another output_dir."
    )


def write_run_file(output_dir: str, identity: dict) -> None:
    with atomic_write(os.path.join(output_dir, RUN_FILE)) as f:
        json.dump(identity, f, indent=2, sort_keys=True, default=str)


# -- files: output paths, whole-or-nothing writes, checkpoints -------------------------------------------------------


def check_output_path(path, option: str = "output_dir") -> None:
    """``path`` can hold a run: it is a folder, or it does not exist yet and the nearest existing folder above it is
    a folder (not a file). Checked when the options are read, before any compute."""
    if not path:
        return
    full = probe = os.path.abspath(os.path.expanduser(str(path)))
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent
    if not os.path.isdir(probe):
        where = "" if probe == full else f" cannot be created: {probe!r}"
        raise ValueError(f"{option} {str(path)!r}{where} is a file, not a folder; choose a folder for {option}.")


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(err: BaseException, path=None) -> bool:
    """Whether ``err`` (or what caused it) is a full disk or quota, also when a library wrapped it (safetensors,
    pyarrow and torch report it in their own exception types and words): by its errno or message, or, given the
    ``path`` that was being written, by the space left on its disk (under 1 MiB)."""
    if path is not None:
        probe = os.path.abspath(str(path))
        while not os.path.exists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        with contextlib.suppress(OSError):
            if shutil.disk_usage(probe).free < 2**20:
                return True
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, OSError) and err.errno in _DISK_FULL:
            return True
        if any(s in str(err) for s in ("No space left on device", "Disk quota exceeded", "StorageFull")):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def disk_full_error(err: BaseException, path, kept: str = "") -> OSError:
    """The ``OSError`` a full disk is reported with: where it happened, that nothing half-written was left there,
    and what to do."""
    return OSError(errno.ENOSPC, f"no space left on the device while writing {os.path.abspath(str(path))}; the "
                                 f"partial files were removed{kept}. Free some space (or choose an output folder on "
                                 "another disk) and run again")


@contextlib.contextmanager
def atomic_write(path, mode: str = "w"):
    """Write ``path`` whole or not at all: the block writes a temporary file in the same folder, renamed to ``path``
    when the block ends; on any failure the temporary file is removed and ``path`` is left as it was. A full disk is
    reported with the path (:func:`disk_full_error`)."""
    folder = os.path.dirname(os.path.abspath(str(path)))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(str(path))}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException as err:
        full = is_disk_full(err, tmp)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if full:
            raise disk_full_error(err, path) from err
        raise


@contextlib.contextmanager
def staged_dir(target, *, replace: bool = False):
    """Build a folder whole or not at all: the block fills a temporary folder next to ``target`` (yielded), which then
    becomes ``target``; on any failure it is removed and ``target`` is left as it was. With ``replace`` an existing
    ``target`` is swapped out only once the new one is complete (and then removed)."""
    target = os.path.abspath(str(target))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".partial", dir=parent)
    try:
        yield tmp
        old = None
        if os.path.lexists(target):
            if not replace:
                raise FileExistsError(f"{target} appeared while it was being written; nothing was replaced")
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".old", dir=parent)
            os.replace(target, os.path.join(old, "previous"))
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        full = is_disk_full(err, tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise disk_full_error(err, target) from err
        raise


@contextlib.contextmanager
def staged_files(folder):
    """Write files into ``folder`` whole or not at all: the block writes into a temporary folder inside ``folder``
    (yielded), whose entries then replace those of the same name in ``folder``; on any failure the temporary folder is
    removed and ``folder`` keeps what it had. A full disk is reported with the path."""
    folder = os.path.abspath(str(folder))
    os.makedirs(folder, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".w2s-save-", suffix=".partial", dir=folder)
    try:
        yield tmp
        for name in sorted(os.listdir(tmp)):
            target = os.path.join(folder, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            os.replace(os.path.join(tmp, name), target)
    except BaseException as err:
        if is_disk_full(err, tmp):
            raise disk_full_error(err, folder) from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def foreign_readme(output_dir) -> str | None:
    """The path of a ``README.md`` in ``output_dir`` that is not an hf_w2s model card (the user's own), or ``None``."""
    path = os.path.join(str(output_dir), "README.md")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(20_000)
    header = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    return None if re.search(r"^\s*-\s*hf_w2s\s*$", header, re.M) else path


_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin",
                 "pytorch_model.bin.index.json", "adapter_model.bin")


def _safetensors_truncated(path: str) -> bool:
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return True
            header = json.loads(f.read(n))
    except (OSError, ValueError):
        return True
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    return 8 + n + max(ends, default=0) > size


def checkpoint_problem(path: str) -> str | None:
    """Why the Trainer checkpoint folder ``path`` is not complete (it writes ``trainer_state.json`` last), or
    ``None`` when it is."""
    state = os.path.join(path, "trainer_state.json")
    if not os.path.isfile(state):
        return "it has no trainer_state.json (written last: the save did not finish)"
    try:
        with open(state) as f:
            json.load(f)
    except (OSError, ValueError):
        return "its trainer_state.json is cut short"
    names = os.listdir(path)
    weights = [n for n in _WEIGHT_FILES if n in names]
    sharded = [n for n in names if n.startswith(("pytorch_model_fsdp", "global_step"))]
    if not weights and not sharded:
        return "it holds no model weights"
    bad = [n for n in weights if n.endswith(".safetensors") and _safetensors_truncated(os.path.join(path, n))]
    return f"its {bad[0]} is cut short" if bad else None


def last_complete_checkpoint(output_dir, warn: bool = True) -> str | None:
    """The ``checkpoint-N`` folder of ``output_dir`` with the largest ``N`` that is complete
    (:func:`checkpoint_problem`); incomplete ones after it are skipped (with a warning, if ``warn``). ``None`` when
    there is none."""
    if not os.path.isdir(str(output_dir)):
        return None
    steps = sorted((int(n.split("-")[1]) for n in os.listdir(output_dir) if _CHECKPOINT.match(n)), reverse=True)
    for step in steps:
        path = os.path.join(str(output_dir), f"checkpoint-{step}")
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if warn:
            logger.warning("not resuming from %s: %s; trying the checkpoint before it", path, problem)
    return None


def checkpoint_to_resume(value, output_dir, warn: bool = True):
    """``resume_from_checkpoint`` resolved as training will use it: ``None``, a checkpoint folder that exists, or for
    ``True`` / ``"true"`` the last complete checkpoint of ``output_dir`` (:func:`last_complete_checkpoint`); a
    ``ValueError`` when there is none."""
    target = resume_target(value)
    if target is not True:
        return target
    last = last_complete_checkpoint(output_dir, warn=warn)
    if last is None:
        raise ValueError(f"resume_from_checkpoint=True but output_dir {output_dir} holds no complete checkpoint-N "
                         "folder; start the run without resume_from_checkpoint.")
    return last


_TRUE, _FALSE = {"true", "yes", "1"}, {"", "false", "no", "0", "none", "null"}


def resume_target(value, hub: bool = False):
    """``resume_from_checkpoint`` as ``Trainer.train`` takes it: ``None``, ``True`` (the last complete checkpoint of
    ``output_dir``; the command line's ``true``) or the path of a checkpoint folder, which must exist. With ``hub``
    (a run that pushes), ``last-checkpoint`` names the checkpoint the Trainer pushed (``hub_strategy`` checkpoint),
    which the recipe fetches before any compute."""
    if value is None or value is False:
        return None
    if value is True:
        return True
    text = str(value).strip()
    if text.lower() in _FALSE:
        return None
    if text.lower() in _TRUE:
        return True
    if hub and text == "last-checkpoint" and not os.path.isdir(text):
        return text
    if not os.path.isdir(text):
        raise ValueError(f"resume_from_checkpoint {text!r} is not a folder; give a checkpoint folder "
                         "(output_dir/checkpoint-N), or true to resume from the last complete checkpoint in "
                         "output_dir.")
    return text


def check_inputs(model, args, train_dataset=None, eval_dataset=None, processing_class=None, weak_model=None,
                 weak_processing_class=None):
    """Everything the trainer checks about its inputs before training (one entry point for the trainer); returns
    ``(train_dataset, eval_dataset)``, with class-name labels mapped to the student's ids."""
    check_channels(model, processing_class)
    if weak_model is not None:
        _check_weak_channels(model, processing_class, weak_model, weak_processing_class)
    if is_streaming(train_dataset) and not args.max_steps > 0:
        raise ValueError("the training dataset is a streaming IterableDataset, which has no length: set max_steps (the "
                         "number of optimizer steps to train), or load it with load_dataset(..., streaming=False).")
    from ..losses import LOSSES

    needs_labels = LOSSES[args.w2s_loss].needs_labels or args.gt_loss_weight > 0
    id2label = getattr(model.config, "id2label", None) or {}
    names = [str(id2label[i]) for i in range(len(id2label))] if id2label else None
    checked = {}
    evals = eval_dataset.items() if isinstance(eval_dataset, dict) else [("evaluation", eval_dataset)]
    for key, dataset in [("training", train_dataset), *evals]:
        if dataset is None or not hasattr(dataset, "column_names") or is_streaming(dataset):
            checked[key] = dataset
            continue
        what = key if key in ("training", "evaluation") else f"evaluation ({key})"
        check_image_inputs(dataset, args.image_column, processing_class, what=what)
        if args.weak_logits_column in dataset.column_names:
            check_weak_logits(dataset, args.weak_logits_column, model.config.num_labels, what=what)
        checked[key] = check_dataset(dataset, what=what, image_column=args.image_column, label_names=names,
                                     needs_labels=needs_labels or key != "training", decode_images=args.check_images)
    train_dataset = checked.pop("training")
    if train_dataset is not None and hasattr(train_dataset, "column_names") and not is_streaming(train_dataset):
        image_mode_note(train_dataset, args.image_column, processing_class)
    eval_dataset = checked if isinstance(eval_dataset, dict) else checked.get("evaluation")
    return train_dataset, eval_dataset


def _check_weak_channels(model, processing_class, weak_model, weak_processing_class) -> None:
    if weak_processing_class is not None:
        check_channels(weak_model, weak_processing_class, who="weak model")
        return
    weak_c = getattr(weak_model.config, "num_channels", None)
    student_c = _processor_channels(processing_class) or getattr(model.config, "num_channels", None)
    if weak_c is not None and student_c is not None and weak_c != student_c:
        raise ValueError(
            f"the online weak model expects {weak_c} channel(s) but would receive the student's "
            f"{student_c}-channel pixel_values; pass weak_processing_class= (the weak model's image processor)."
        )
