"""Checks on the data, models and output directory of a weak-to-strong run, before any compute is spent.

Each check raises ``ValueError`` with a message that names the problem and the way out (the messages are listed in
docs/bad_input.md), except the image-mode check, which only notes (once) that images will be converted.
Column checks run on the Arrow data in batches (pyarrow compute), without loading a column into Python lists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "check_inputs",
    "check_weak_logits",
    "check_image_inputs",
    "check_channels",
    "image_mode_note",
    "RUN_FILE",
    "run_identity",
    "check_output_dir",
    "write_run_file",
]

_BATCH = 65_536


def _arrow_batches(dataset, column: str):
    """``(row offset, pyarrow column)`` batches of one column, in the dataset's row order."""
    part = dataset.select_columns([column]).with_format("arrow")
    offset = 0
    for table in part.iter(batch_size=_BATCH):
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
    kind = "grayscale" if _MODE_CHANNELS.get(mode) == 1 else "colour"
    note = (
        f"the {what} images in {image_column!r} are {kind} (PIL mode {mode!r}) but the model's image processor "
        f"expects {target!r} ({1 if target == 'L' else 3} channel(s)); they are converted with "
        f"PIL.Image.convert({target!r}) as batches are built."
    )
    logger.warning(note)
    return note


# -- the output directory ------------------------------------------------------------------------------------------

RUN_FILE = "w2s_run.json"
#: what a run leaves that another run would overwrite (w2s_run.json alone only names a run that saved nothing)
_RUN_ARTEFACTS = ("trainer_state.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                  "adapter_model.safetensors", "config.json", "training_args.bin")
_CHECKPOINT = re.compile(r"^checkpoint-\d+$")
#: TrainingArguments that do not change what is trained (where it goes, how it is logged, saved or pushed)
_NOT_THE_RUN = re.compile(
    r"^(output_dir|logging_dir|run_name|overwrite_output_dir|resume_from_checkpoint|report_to|push_to_hub|hub_.*|"
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
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, RUN_FILE), "w") as f:
        json.dump(identity, f, indent=2, sort_keys=True, default=str)


def check_inputs(model, args, train_dataset=None, eval_dataset=None, processing_class=None, weak_model=None,
                 weak_processing_class=None) -> None:
    """Everything the trainer checks about its inputs before training (one entry point for the trainer)."""
    check_channels(model, processing_class)
    if weak_model is not None:
        if weak_processing_class is not None:
            check_channels(weak_model, weak_processing_class, who="weak model")
        else:
            weak_c = getattr(weak_model.config, "num_channels", None)
            student_c = _processor_channels(processing_class) or getattr(model.config, "num_channels", None)
            if weak_c is not None and student_c is not None and weak_c != student_c:
                raise ValueError(
                    f"the online weak model expects {weak_c} channel(s) but would receive the student's "
                    f"{student_c}-channel pixel_values; pass weak_processing_class= (the weak model's image processor)."
                )
    evals = eval_dataset.items() if isinstance(eval_dataset, dict) else [("evaluation", eval_dataset)]
    for what, dataset in [("training", train_dataset), *evals]:
        if dataset is None or not hasattr(dataset, "column_names"):
            continue
        what = what if what in ("training", "evaluation") else f"evaluation ({what})"
        check_image_inputs(dataset, args.image_column, processing_class, what=what)
        if args.weak_logits_column in dataset.column_names:
            check_weak_logits(dataset, args.weak_logits_column, model.config.num_labels, what=what)
    if train_dataset is not None and hasattr(train_dataset, "column_names"):
        image_mode_note(train_dataset, args.image_column, processing_class)
