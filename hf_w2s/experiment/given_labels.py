"""Weak labels given as a dataset — ``weak_supervisors: [{weak_labels: DIR}]``, e.g. what ``hf-w2s label`` wrote — as a
first-class input beside the images (``dataset``).

Every row of the weak labels is joined to its image by identity (:mod:`hf_w2s.data.identity`: the ``image_hash``
column ``label_dataset`` writes, or the content of its own images), never by position. When every weak supervisor of a
config is the same weak-labels dataset, its rows *are* the strong split (:func:`given_strong_split`): the images and
ground truth of those rows (the weak labels' own, or the pool's found by identity) — ``split_sizes[1]`` is not used,
nothing is carved for what is already split — less the rows that weak_train (only when a loss needs it), validation
and test take, carved from the dataset as ``split_sizes[2:]`` say (or its own ``validation_split`` / ``test_split``).
Otherwise the weak labels supervise their own rows, and the strong split is carved as ``split_sizes`` says; they must
not hold a validation or test image.
"""

from __future__ import annotations

import dataclasses

__all__ = ["given_strong_split", "weak_label_set", "strong_split_spec", "build_run_splits", "check_splits",
           "weak_labels_supervision"]


def given_strong_split(exp):
    """The weak supervisor (``source: weak_labels``) whose rows are the strong split, or ``None``: when every weak
    supervisor of the config is that one weak-labels dataset."""
    ws = exp.config.weak_supervisors
    if ws and all(w.source == "weak_labels" for w in ws) and len({(w.weak_labels, w.weak_labels_split)
                                                                 for w in ws}) == 1:
        return ws[0]
    return None


def weak_label_set(exp, w):
    """The weak-labels dataset of ``w``, loaded once per experiment."""
    from ..data.loading import load_image_dataset

    loaded = exp.__dict__.setdefault("_weak_label_sets", {})
    key = (w.weak_labels, w.weak_labels_split)
    if key not in loaded:
        ds = load_image_dataset(w.weak_labels, w.weak_labels_split)
        if "weak_logits" not in ds.column_names:
            raise ValueError(f"weak supervisor {w.name!r}: the weak-label dataset {w.weak_labels} has no "
                             f"'weak_logits' column (columns: {ds.column_names}); make it with hf-w2s label.")
        if not len(ds):
            raise ValueError(f"weak supervisor {w.name!r}: the weak-label dataset {w.weak_labels} is empty.")
        loaded[key] = ds
    return loaded[key]


def strong_split_spec(exp) -> dict:
    """What the splits depend on beyond the data config: the weak-labels dataset that gives the strong split (its
    content, by fingerprint), or nothing."""
    w = given_strong_split(exp)
    if w is None:
        return {}
    return {"strong_split": {"weak_labels": w.weak_labels, "split": w.weak_labels_split,
                             "fingerprint": weak_label_set(exp, w)._fingerprint}}


def _has(ds, *columns) -> bool:
    return all(c is not None and c in ds.column_names for c in columns)


def _pool(exp):
    """The images and ground truth of the dataset's pool, as the splits read them (``image``, ``label``)."""
    from ..data.config import _canonical
    from ..data.loading import load_image_dataset

    d = exp.data
    ds = load_image_dataset(d.dataset, d.train_split, config_name=d.dataset_config, data_dir=d.data_dir,
                            revision=d.dataset_revision)
    return _canonical(ds, d, d.dataset)


def _identity_view(exp, weak, columns):
    """``weak``'s identity — its ``image_hash`` column, else its images (renamed ``image``) — and ``columns``."""
    from ..data.identity import IDENTITY_COLUMN

    if _has(weak, IDENTITY_COLUMN):
        return weak.select_columns([IDENTITY_COLUMN, *columns])
    image = next((c for c in (exp.data.image_column, "image") if _has(weak, c)), None)
    if image is None:
        return weak.select_columns(list(columns))  # join_weak_labels says it carries no identity
    view = weak.select_columns([image, *columns])
    return view.rename_column(image, "image") if image != "image" else view


def _rows_of(exp, w, weak):
    """The images and ground truth of the weak labels' rows: their own (an ``image_hash`` must be their images'),
    or the pool's rows of the same identity."""
    from ..data.identity import check_identity, join_weak_labels
    from ..data.splits import canonical_columns

    d = exp.data
    what = f"weak supervisor {w.name!r} (weak_labels {w.weak_labels})"
    image = next((c for c in (d.image_column, "image") if _has(weak, c)), None)
    if image is not None:
        check_identity(weak, image_column=image, what=what)
        label = d.label_column if _has(weak, d.label_column) else None
        return canonical_columns(weak, image_column=image, label_column=label, select=True, where=what)
    joined = join_weak_labels(_pool(exp), _identity_view(exp, weak, ["weak_logits"]), columns=["weak_logits"],
                              what=what)
    return joined.select_columns(["image", "label"])


def build_run_splits(exp, **kwargs):
    """The four splits of ``exp`` (:func:`hf_w2s.data.config.build_splits`); with a given strong split
    (:func:`given_strong_split`) weak_train (when a loss needs it), validation and test are carved as ``split_sizes``
    says and the strong split is the weak labels' rows that are in none of them."""
    import logging

    from datasets import DatasetDict

    from ..data.checks import check_dataset, check_label_set
    from ..data.config import SPLIT_NAMES, build_splits, label_names_of
    from ..data.identity import row_identities
    from ..data.splits import example_hashes, split_fingerprint

    w = given_strong_split(exp)
    if w is None:
        splits = build_splits(exp.data, **kwargs)
        check_splits(exp, splits)  # before they are saved: an empty one cannot be loaded back
        return splits
    sizes = list(exp.data.split_sizes)
    weak_train = sizes[0] if any(spec.name == "conf_select" for spec in exp.config.losses) else 0  # its calibration
    # carved as without weak labels (the same validation and test), the strong split's own size where it fits, else
    # the rest of the pool; that carved strong split is not used
    for strong in (sizes[1], -1):
        carve = dataclasses.replace(exp.data, split_sizes=[weak_train, strong, sizes[2], sizes[3]])
        try:
            splits = dict(build_splits(carve, **kwargs))
            break
        except ValueError as err:
            if not str(err).startswith("split_sizes"):
                raise
            if strong == -1:
                d = exp.data
                needed = weak_train + (0 if d.validation_split else sizes[2]) + (0 if d.test_split else sizes[3])
                raise ValueError(f"split_sizes {sizes}: the weak labels of weak supervisor {w.name!r} give the strong "
                                 "split (split_sizes[1] is not used), and validation and test are carved from "
                                 f"{d.dataset} as split_sizes[2:] say: {needed} examples, more than it has. Give "
                                 "smaller sizes, or take them from the dataset's own splits (validation_split, "
                                 "test_split).") from None
    del splits["strong_train"]
    rows = _rows_of(exp, w, weak_label_set(exp, w))
    elsewhere = {h for ds in splits.values() if len(ds) for h in example_hashes(ds, "image")}  # kept disjoint
    hashes = row_identities(rows)
    keep = [i for i, h in enumerate(hashes) if h not in elsewhere]
    if len(keep) < len(rows):
        logging.getLogger(__name__).warning(
            f"{len(rows) - len(keep)} of the {len(rows)} weak-labelled rows of weak supervisor {w.name!r} are in the "
            "validation, test or weak_train split: left out of the strong split (their weak labels are not used).")
        rows = rows.select(keep, keep_in_memory=True)
    if not len(rows):
        raise ValueError(f"every weak-labelled row of weak supervisor {w.name!r} is in the validation, test or "
                         "weak_train split: nothing is left to train the students on.")
    names = label_names_of(exp.data, *splits.values(), rows)
    needs_labels = exp.config.ceiling or any(exp.needs_labels(spec) for spec in exp.config.losses)
    splits["strong_train"] = check_dataset(rows, what="strong_train", image_column="image",
                                           label_column="label" if "label" in rows.column_names else None,
                                           label_names=names, needs_labels=needs_labels,
                                           decode_images=kwargs.get("decode_images", True))
    check_label_set(names, {"strong_train": splits["strong_train"]}, where=exp.data.dataset)
    if kwargs.get("fingerprints") is not None:
        kwargs["fingerprints"]["strong_train"] = split_fingerprint([hashes[i] for i in keep])
    check_splits(exp, splits)
    return DatasetDict({k: splits[k] for k in SPLIT_NAMES})


def check_splits(exp, splits) -> None:
    """Every split the run reads has examples (an empty one cannot be trained or evaluated on)."""
    c = exp.config
    needed = {"validation": "every run evaluates on it", "test": "every run is tested on it"}
    if c.ceiling or any(w.source != "weak_labels" for w in c.weak_supervisors):
        needed["strong_train"] = "the ceiling and the students train on it"
    for w in c.weak_supervisors:
        if w.trains:
            needed.setdefault(w.train_split, f"weak supervisor {w.name!r} trains on it")
    for name, why in needed.items():
        if name not in splits or not len(splits[name]):
            raise ValueError(f"the {name} split is empty (0 rows), but {why}; give it examples (split_sizes, or "
                             "validation_split / test_split naming a split of the dataset that has some).")


def weak_labels_supervision(exp, w):
    """The strong split a weak-labels supervisor supervises, with its weak logits joined to each image by identity:
    the given strong split, or the weak labels' own rows (which must not hold a validation or test image); joined
    once per experiment (the preflight's and the run's)."""
    from datasets import ClassLabel

    from ..data.identity import join_weak_labels
    from ..data.splits import check_disjoint
    from ..data.weak_labels import weak_logits_array
    from ..labels import label_permutation, names_of

    joined = exp.__dict__.setdefault("_weak_label_joins", {})
    key = (w.weak_labels, w.weak_labels_split)
    if key in joined:
        return joined[key]
    weak = weak_label_set(exp, w)
    names = exp.label_names
    width = weak_logits_array(weak.select(range(1))).shape[-1]  # any storage
    if width != len(names):
        raise ValueError(f"weak-label dataset {w.weak_labels}: weak_logits has {width} values per example but the "
                         f"dataset has {len(names)} classes")
    feature = weak.features.get(exp.data.label_column)
    if isinstance(feature, ClassLabel):
        label_permutation(names_of(feature), names, source="weak-label dataset", target="experiment dataset")
    what = f"weak supervisor {w.name!r} (weak_labels {w.weak_labels})"
    splits = exp.splits()
    rows = splits["strong_train"] if given_strong_split(exp) is not None else _rows_of(exp, w, weak)
    columns = [c for c in ("weak_logits", "weak_label") if c in weak.column_names]
    given = given_strong_split(exp) is not None  # every image of the strong split has its weak labels
    ds = join_weak_labels(rows, _identity_view(exp, weak, columns), columns=columns, what=what,
                          every="images" if given else "weak_labels")
    if not given:  # a dataset made elsewhere: it must not hold a validation or test image
        check_disjoint({"weak_labels": ds, "validation": splits["validation"], "test": splits["test"]}, "image",
                       where=what)
    if "weak_label" not in ds.column_names:
        ds = ds.add_column("weak_label", weak_logits_array(ds).argmax(-1).tolist())
    joined[key] = ds
    return ds
