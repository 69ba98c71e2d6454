"""Checks of a dataset before any compute, on its Arrow data in batches (pyarrow compute; no column is loaded into
Python lists): the named columns exist (:func:`missing_column_error` suggests the closest), labels lie within the
label set or class names are mapped to ids (:func:`check_labels`), every image is there and decodes
(:func:`check_images`), cached weak logits are one finite list of the right width per row
(:func:`check_weak_logits`), the label set has two classes or more and a training split lacking some of them is
said (:func:`check_label_set`). :func:`check_dataset` runs the checks one split needs. Each raises ``ValueError``
naming the rows (docs/bad_input.md lists the messages)."""

from __future__ import annotations

import difflib
import logging
import os

import numpy as np

from .logit_storage import full_width_arrow

__all__ = ["LABEL_COLUMNS", "check_dataset", "check_images", "check_labels", "check_label_set", "check_weak_logits",
           "missing_column_error"]

logger = logging.getLogger(__name__)

_BATCH = 65_536


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


LABEL_COLUMNS = ("label", "labels", "label_ids")
_IMAGE_BATCH = 1_000
#: (fingerprint, column) of datasets whose images all decoded, in this process: a dataset is scanned once
_SCANNED: set = set()


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

    from .loading import without_indices

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
    from .images import verify_image

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

    from .images import undecodable_image_error

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
    from .loading import is_streaming

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




#: the splits a run trains on (a class absent from them is said); evaluation splits may lack classes
TRAINING_SPLITS = ("training", "weak_train", "strong_train")


def check_label_set(names, datasets=None, *, where: str = "the dataset", label_column: str = "label") -> list[str]:
    """A classifier needs two classes or more: one class is refused (every prediction would be right). Each training
    split of ``datasets`` (``{name: dataset}``, labels as class ids) that lacks some of the classes is said in a
    warning naming them (nothing can learn a class it never sees); returns those warnings."""
    names = [str(n) for n in names]
    if len(names) < 2:
        raise ValueError(f"{where} has {len(names)} class ({names}): a classifier needs at least two classes (with "
                         "one, every prediction is right and accuracy is 1.0 whatever is learned). Give every class "
                         "(class_names), or a dataset of two classes or more.")
    notes = []
    for what, ds in (datasets or {}).items():
        if what not in TRAINING_SPLITS or ds is None or label_column not in ds.column_names or not len(ds):
            continue
        import pyarrow.compute as pc

        present = set()
        for _, col in _arrow_batches(ds, label_column):
            present.update(v for v in pc.unique(col).to_pylist() if v is not None)
        absent = [n for i, n in enumerate(names) if i not in present]
        if absent:
            label = "the training dataset" if what == "training" else f"the {what} split of {where}"
            note = (f"{label} has no example of {len(absent)} of the {len(names)} classes "
                    f"({absent[:10]}{' ...' if len(absent) > 10 else ''}): what trains on it cannot learn them.")
            logger.warning(note)
            notes.append(note)
    return notes
