"""How a weak-logits column is stored: float32 (exact, the default), float16, or the top k.

At ImageNet's width a float32 logits column is 4,000 bytes a row (ImageNet-21k: 87 KB), far more than the labels it
encodes. Three forms, all read back as full-width float32 logits (:func:`full_width`, :func:`full_width_arrow`):

* ``float32``: ``List(float32, length=C)``, exact.
* ``float16``: ``List(float16, length=C)``, half the bytes; values rounded to 11 significant bits (relative error
  ≤ 2⁻¹¹ ≈ 4.9e-4); logits beyond float16's range (±65,504) are refused when encoding.
* ``topk``: a struct of the ``k`` largest logits (``topk_logits``, float32, descending), their class ids
  (``topk_indices``, int32), the log-sum-exp of the other ``C − k`` logits (``rest_logsumexp``) and ``C``
  (``num_classes``): 8·k + 8 bytes a row (88 at k = 10, 2.2 % of float32's 4,000 at C = 1,000). Decoded, each of the
  ``C − k`` other classes gets ``rest_logsumexp − log(C − k)``: the softmax of the decoded logits is exact for the kept
  classes (the normaliser is exact), and so are the argmax and the confidence; the other classes share the rest of
  the probability mass equally. A temperature ``τ ≠ 1`` sees that flattened rest (``softmax(w/τ)`` is then no longer
  exact for the kept classes either).

``weak_label`` and ``weak_confidence`` are always computed from the full float32 logits before they are encoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["FORMS", "TOPK_FIELDS", "LogitStorage", "storage_of", "full_width", "full_width_arrow"]

FORMS = ("float32", "float16", "topk")
TOPK_FIELDS = ("topk_logits", "topk_indices", "rest_logsumexp", "num_classes")
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class LogitStorage:
    """A storage form (``form`` in :data:`FORMS`; ``k`` for ``topk``)."""

    form: str = "float32"
    k: int | None = None

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"logits_storage must be one of {list(FORMS)}, got {self.form!r}")
        if self.form == "topk" and (not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1):
            raise ValueError(f"top_k must be an integer >= 1 for logits_storage='topk', got {self.k!r}")

    @classmethod
    def of(cls, form: str = "float32", top_k: int | None = 10) -> LogitStorage:
        """The storage named by ``form`` (``top_k`` is read only for ``topk``)."""
        return cls(form, top_k if form == "topk" else None)

    @property
    def name(self) -> str:
        return f"top{self.k}" if self.form == "topk" else self.form

    def describe(self) -> str:
        """One line for a card."""
        if self.form == "float32":
            return "float32, one value per class (exact)"
        if self.form == "float16":
            return "float16, one value per class (relative rounding error ≤ 4.9e-4)"
        return (f"top-{self.k}: the {self.k} largest logits (float32) and their class ids, plus the log-sum-exp of the "
                "other classes; softmax, argmax and confidence are exact for the kept classes, the other classes "
                "share the remaining probability equally when decoded")

    def check_width(self, num_classes: int) -> None:
        """Refuse a ``k`` that keeps every class (before any compute)."""
        if self.form == "topk" and self.k >= num_classes:
            raise ValueError(f"top_k={self.k} keeps all {num_classes} classes: use logits_storage='float32' (exact) "
                             f"or a top_k below {num_classes}")

    def feature(self, num_classes: int):
        """The ``datasets`` feature of the stored column."""
        from datasets import List, Value

        if self.form == "topk":
            self.check_width(num_classes)
            return {"topk_logits": List(Value("float32"), length=self.k),
                    "topk_indices": List(Value("int32"), length=self.k),
                    "rest_logsumexp": Value("float32"), "num_classes": Value("int32")}
        return List(Value(self.form), length=num_classes)

    def encode(self, logits: np.ndarray, rows=None):
        """The stored column for a ``(B, C)`` float32 batch: an array, or one dict per row (``topk``). ``rows`` (the
        batch's row numbers) name the rows in the error for logits beyond float16's range."""
        logits = np.asarray(logits, dtype=np.float32)
        if self.form == "float32":
            return logits
        if self.form == "float16":
            too_large = np.abs(logits).max(-1) > FLOAT16_MAX
            if too_large.any():
                bad = np.flatnonzero(too_large)
                names = [int(rows[i]) if rows is not None else int(i) for i in bad[:20]]
                raise ValueError(f"weak logits beyond float16's range (±{FLOAT16_MAX:.0f}) in rows {names}; store "
                                 "them with logits_storage='float32' (or 'topk').")
            return logits.astype(np.float16)
        return _encode_topk(logits, self.k)


    def reorder(self, stored, index: np.ndarray):
        """A batch of stored values with the classes reordered: class ``j`` of the result is class ``index[j]`` of
        ``stored`` (``logits[:, index]`` for full-width forms; the kept class ids remapped for ``topk``)."""
        if self.form != "topk":
            return np.asarray(stored, dtype=self.form)[:, index]
        inverse = np.argsort(index)
        return [{**row, "topk_indices": inverse[np.asarray(row["topk_indices"])].astype(np.int32)} for row in stored]


def _encode_topk(logits: np.ndarray, k: int) -> list[dict]:
    import torch

    x = torch.from_numpy(logits)
    values, order = torch.topk(x, k, dim=1, sorted=True)
    rest = torch.logsumexp(x.scatter(1, order, float("-inf")), dim=1)
    values, order, rest = values.numpy(), order.to(torch.int32).numpy(), rest.numpy()
    return [{"topk_logits": values[i], "topk_indices": order[i], "rest_logsumexp": rest[i],
             "num_classes": logits.shape[1]} for i in range(len(logits))]


def _decode_topk(values, indices, rest_lse, num_classes: int) -> np.ndarray:
    """``(B, C)`` float32 logits from top-k parts (``C`` the same for the batch). Indices outside ``0..C-1`` make
    their row NaN (a corrupt file is then reported as non-finite logits)."""
    values = np.asarray(values, dtype=np.float32).reshape(len(rest_lse), -1)
    indices = np.asarray(indices, dtype=np.int64).reshape(values.shape)
    k = values.shape[1]
    fill = np.asarray(rest_lse, dtype=np.float64) - math.log(max(num_classes - k, 1))
    out = np.repeat(fill.astype(np.float32)[:, None], num_classes, axis=1)
    bad = ((indices < 0) | (indices >= num_classes)).any(axis=1)
    np.put_along_axis(out, np.clip(indices, 0, num_classes - 1), values, axis=1)
    out[bad] = np.nan
    return out


def storage_of(feature) -> LogitStorage | None:
    """The storage form of a column's ``datasets`` feature, or ``None`` if it is not one of :data:`FORMS`."""
    from datasets import List, Value

    if isinstance(feature, dict) and set(feature) == set(TOPK_FIELDS):
        return LogitStorage("topk", feature["topk_logits"].length)
    if isinstance(feature, List) and isinstance(feature.feature, Value) and feature.feature.dtype in FORMS[:2]:
        return LogitStorage(feature.feature.dtype)
    return None


def full_width(rows: list) -> np.ndarray:
    """``(B, C)`` float32 logits from a batch of stored rows as examples hold them: lists of numbers (float32 or
    float16) or top-k dicts. The collator's one hook: the trainer always receives full-width logits."""
    if rows and isinstance(rows[0], dict):
        widths = {int(r["num_classes"]) for r in rows}
        if len(widths) != 1:
            raise ValueError(f"top-k weak logits of different widths {sorted(widths)} in one batch")
        return _decode_topk([r["topk_logits"] for r in rows], [r["topk_indices"] for r in rows],
                            [r["rest_logsumexp"] for r in rows], widths.pop())
    return np.asarray(rows, dtype=np.float32)


def full_width_arrow(column):
    """A stored Arrow column (array or chunked) as full-width float32 lists, for the checks that read the weak logits
    as Arrow (``data.checks.check_weak_logits``): top-k structs are decoded (a null row stays null), float16
    lists are cast; anything else is returned as it is."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        if not _is_topk_type(column.type) and not _is_float16_list(column.type):
            return column
        return pa.chunked_array([full_width_arrow(c) for c in column.chunks], type=pa.list_(pa.float32()))
    if _is_float16_list(column.type):
        return column.cast(pa.list_(pa.float32()))
    if not _is_topk_type(column.type):
        return column
    import pyarrow.compute as pc

    valid = column.is_valid().to_numpy(zero_copy_only=False)
    filler = pa.scalar({"topk_logits": [0.0] * column.type.field("topk_logits").type.list_size,
                        "topk_indices": [0] * column.type.field("topk_indices").type.list_size,
                        "rest_logsumexp": 0.0, "num_classes": 0}, type=column.type)
    column = pc.if_else(column.is_valid(), column, filler) if not valid.all() else column
    parts = {f: pc.struct_field(column, f) for f in TOPK_FIELDS}
    values, indices = (pc.list_flatten(parts[f]).to_numpy(zero_copy_only=False).reshape(len(column), -1)
                       for f in TOPK_FIELDS[:2])
    rest = parts["rest_logsumexp"].to_numpy(zero_copy_only=False)
    widths = np.where(valid, parts["num_classes"].fill_null(0).to_numpy(zero_copy_only=False), 0).astype(np.int64)
    flat = np.empty(int(widths.sum()), dtype=np.float32)
    offsets = np.concatenate([[0], np.cumsum(widths)])
    for width in np.unique(widths[valid]):  # one width in any file hf_w2s wrote
        rows = np.flatnonzero(valid & (widths == width))
        decoded = _decode_topk(values[rows], indices[rows], rest[rows], int(width))
        at = offsets[rows][:, None] + np.arange(int(width))
        flat[at] = decoded
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat), mask=pa.array(~valid))


def _is_topk_type(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_struct(arrow_type) and {arrow_type.field(i).name for i in range(arrow_type.num_fields)} == set(
        TOPK_FIELDS)


def _is_float16_list(arrow_type) -> bool:
    import pyarrow as pa

    is_list = pa.types.is_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type) or pa.types.is_large_list(
        arrow_type)
    return is_list and pa.types.is_float16(arrow_type.value_type)
