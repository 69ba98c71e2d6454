"""Which image each row belongs to: weak labels carry the identity of their image and are joined to the images by it,
never by position.

A row's identity is the content hash of its image — :data:`IDENTITY_COLUMN` (``image_hash``), the SHA-1 of the
encoded image's bytes, the hash :func:`hf_w2s.data.splits.example_hashes` compares splits by — which
:func:`hf_w2s.label_dataset` writes next to the weak logits; or a dataset's own id column (``id_column=``). So weak
labels whose rows were shuffled, filtered or made from another copy of the images still meet their own images
(:func:`join_weak_labels`), and a dataset whose ``image_hash`` is not the hash of its row's image (its weak columns
joined to the images by position) is refused (:func:`check_identity`). A mismatch names how many rows and the first
ones.
"""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np

from .splits import content_hash

__all__ = ["IDENTITY_COLUMN", "content_hash", "row_identities", "check_identity", "join_weak_labels", "rows_text"]

#: the column holding each row's image identity (the content hash of its image)
IDENTITY_COLUMN = "image_hash"
#: the columns a weak labelling adds (joined to the images with the logits)
WEAK_COLUMNS = ("weak_logits", "weak_label", "weak_confidence")


def rows_text(rows, limit: int = 5) -> str:
    """``rows 3, 7, 9, …`` (the first ``limit`` of them)."""
    rows = list(rows)
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return f"row{'s' if len(rows) > 1 else ''} {shown}{', …' if len(rows) > limit else ''}"


def _key(dataset, image_column: str, id_column: str | None) -> str:
    if id_column is not None:
        return f"its {id_column!r} column"
    if IDENTITY_COLUMN in dataset.column_names:
        return f"its {IDENTITY_COLUMN!r} column"
    return f"the content of its {image_column!r} images"


def row_identities(dataset, *, image_column: str = "image", id_column: str | None = None,
                   what: str = "the dataset") -> list[str]:
    """One identity per row: ``id_column``'s values, else the ``image_hash`` column, else the content hash of the
    image column; a dataset with none of them is refused."""
    columns = dataset.column_names
    if id_column is not None:
        if id_column not in columns:
            raise ValueError(f"{what} has no id column {id_column!r} to join on (columns: {columns}).")
        return [str(v) for v in dataset.with_format("arrow")[id_column].to_pylist()]
    if IDENTITY_COLUMN in columns:
        return [str(v) for v in dataset.with_format("arrow")[IDENTITY_COLUMN].to_pylist()]
    if image_column in columns:
        from .splits import example_hashes

        return example_hashes(dataset, image_column)
    raise ValueError(f"{what} carries no identity of its images: no {IDENTITY_COLUMN!r} column (hf-w2s label and "
                     f"label_dataset write one), no image column {image_column!r} and no id column (columns: "
                     f"{columns}); rows are never matched to images by position. Label the images again, or give "
                     "id_column=.")


def check_identity(dataset, *, image_column: str = "image", what: str = "the weak labels") -> None:
    """A dataset holding both images and an ``image_hash`` column: every row's hash is the hash of its own image
    (else its weak columns were put next to other images, e.g. joined by position after a shuffle)."""
    columns = dataset.column_names
    if IDENTITY_COLUMN not in columns or image_column not in columns or len(dataset) == 0:
        return
    from .splits import example_hashes

    stored = np.asarray(row_identities(dataset, image_column=image_column))
    actual = np.asarray(example_hashes(dataset, image_column))
    bad = np.flatnonzero(stored != actual)
    if len(bad):
        raise ValueError(f"{what}: the {IDENTITY_COLUMN} of {len(bad)} of {len(dataset)} rows is not the hash of the "
                         f"row's image ({rows_text(bad)}): its weak labels belong to other images (rows reordered, "
                         "or joined to the images by position). Label the images again (hf-w2s label), or join the "
                         "weak labels to the images by identity (hf_w2s.data.identity.join_weak_labels).")


def join_weak_labels(images, weak_labels, *, image_column: str = "image", id_column: str | None = None,
                     columns=None, what: str = "the weak labels", every: str = "weak_labels"):
    """The rows of ``images`` that ``weak_labels`` labels, in the images' order, with the weak columns (``columns``,
    default ``weak_logits`` / ``weak_label`` / ``weak_confidence`` and any ``weak_logits_*``) of their own row of
    ``weak_labels``, matched by identity (:func:`row_identities`: ``id_column``, else ``image_hash``, else the
    images' content). ``every="weak_labels"``: a weak-label row whose image is not among ``images`` is refused (an
    image without weak labels is left out); ``every="images"``: an image without weak labels is refused (weak labels
    of other images are left out). A refusal names the count and the first rows."""
    from datasets import concatenate_datasets

    from .loading import without_indices

    wanted = list(columns) if columns is not None else [
        c for c in weak_labels.column_names if c in WEAK_COLUMNS or c.startswith("weak_logits")]
    if not wanted:
        raise ValueError(f"{what} has no weak columns to join (columns: {weak_labels.column_names}).")
    weak_ids = row_identities(weak_labels, image_column=image_column, id_column=id_column, what=what)
    image_ids = row_identities(images, image_column=image_column, id_column=id_column, what="the images")
    waiting = defaultdict(deque)  # identity -> its weak-label rows not matched yet (identical images: in order)
    for row, identity in enumerate(weak_ids):
        waiting[identity].append(row)
    image_rows, weak_rows = [], []
    for row, identity in enumerate(image_ids):
        rows_of = waiting.get(identity)
        if rows_of:
            image_rows.append(row)
            weak_rows.append(rows_of.popleft())
    key = _key(weak_labels, image_column, id_column)
    missing = sorted(r for rows_of in waiting.values() for r in rows_of)
    if missing and every == "weak_labels":
        raise ValueError(f"{what}: {len(missing)} of {len(weak_labels)} rows have no image among the {len(images)} "
                         f"images, matched by {key} ({rows_text(missing)}); label these images (hf-w2s label on the "
                         "same dataset), or give the images they were made from.")
    unlabelled = sorted(set(range(len(images))) - set(image_rows))
    if unlabelled and every == "images":
        raise ValueError(f"{what}: {len(unlabelled)} of the {len(images)} images have no weak labels, matched by "
                         f"{key} ({rows_text(unlabelled)}); the weak labels were made from other images: label these "
                         "ones (hf-w2s label).")
    rows = images if image_rows == list(range(len(images))) else images.select(image_rows, keep_in_memory=True)
    rows = rows.remove_columns([c for c in wanted if c in rows.column_names])
    weak = weak_labels.select_columns(wanted)
    if weak_rows != list(range(len(weak_labels))):
        weak = weak.select(weak_rows, keep_in_memory=True)
    return concatenate_datasets([without_indices(rows), without_indices(weak)], axis=1)
