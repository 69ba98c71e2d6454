"""What :class:`~hf_w2s.WeakToStrongTrainer` checks of its inputs before training: supervision for its loss (true
labels, weak logits or an online weak model: :func:`check_supervision`), images the collator can use (an image column
and a processor, or pixel values), processors that normalise as many channels as their models expect, a note (once)
when images are converted between grayscale and colour, and the data checks of each split (:mod:`hf_w2s.data.checks`).
The trainer's arguments themselves are checked first (:func:`check_arguments`: a ``DatasetDict`` where one split is
meant, a weak model given by its path; an empty dataset in :func:`check_inputs`), then what would only fail once
training started: every parameter frozen (:func:`check_trainable`), a precision the device cannot run
(:func:`check_precision`), metrics that are not numbers (:func:`checked_metrics`). docs/bad_input.md lists the
messages."""

from __future__ import annotations

import logging

from ..data.checks import LABEL_COLUMNS, check_dataset, check_label_set, check_weak_logits
from ..data.identity import check_identity
from ..data.loading import is_streaming

logger = logging.getLogger(__name__)

__all__ = ["check_supervision", "check_inputs", "check_channels", "check_image_inputs", "image_mode_note",
           "check_arguments", "check_trainable", "check_precision", "checked_metrics", "check_best_metric",
           "best_metric_error"]


def check_supervision(model, args, train_dataset, weak_model=None) -> None:
    """The loss ``args.w2s_loss`` gets what it learns from: true labels when it (or ``gt_loss_weight``) needs them,
    and weak supervision (the weak-logits column(s), or an online ``weak_model``) when it is a weak loss; a loss made
    for a number of classes (OpenAI's binary ``aux_conf``) gets that number."""
    from ..losses import LOSSES

    if args.weak_logits_columns and weak_model is not None:
        raise ValueError("several weak supervisors come from cached weak_logits_columns, not an online weak_model")
    info = LOSSES[args.w2s_loss]
    info.check_classes(model.config.num_labels)  # e.g. OpenAI's binary aux_conf on ten classes
    columns = getattr(train_dataset, "column_names", None)
    if columns is None:
        return
    if (info.needs_labels or args.gt_loss_weight > 0) and not any(c in columns for c in LABEL_COLUMNS):
        raise ValueError(f"w2s_loss={args.w2s_loss!r} with gt_loss_weight={args.gt_loss_weight} needs true labels, "
                         f"but the training dataset has no 'label'/'labels' column (columns: {columns}).")
    if not info.uses_weak:
        return
    if args.weak_logits_columns:
        missing = [c for c in args.weak_logits_columns if c not in columns]
        if missing:
            raise ValueError(f"weak_logits_columns {missing} are not in the training dataset (columns: {columns}); "
                             "label it with hf_w2s.label_dataset_multi(...) or merge weak-label datasets "
                             "(hf_w2s.merge_weak_label_datasets).")
        for col in args.weak_logits_columns:
            check_weak_logits(train_dataset, col, model.config.num_labels, what="training")
        return
    col = args.weak_logits_column
    if col not in columns and weak_model is None:
        raise ValueError(f"w2s_loss={args.w2s_loss!r} needs weak supervision: the training dataset has no {col!r} "
                         f"column (columns: {columns}) and no weak_model was given. Label it first with "
                         "hf_w2s.label_dataset(...) or pass weak_model=.")
    # the column's width, nulls and NaN/inf are checked on the Arrow data by check_inputs


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
        if len(dataset) == 0:
            name = "train_dataset" if key == "training" else "eval_dataset" + ("" if key == "evaluation" else
                                                                               f"[{key!r}]")
            raise ValueError(f"{name} is empty (0 rows): there is nothing to "
                             f"{'train on' if key == 'training' else 'evaluate on'}.")
        check_image_inputs(dataset, args.image_column, processing_class, what=what)
        if args.weak_logits_column in dataset.column_names:
            check_weak_logits(dataset, args.weak_logits_column, model.config.num_labels, what=what)
        checked[key] = check_dataset(dataset, what=what, image_column=args.image_column, label_names=names,
                                     needs_labels=needs_labels or key != "training", decode_images=args.check_images)
        if args.check_images:  # weak labels carry their image's identity: joined to it, never by position
            check_identity(dataset, image_column=args.image_column, what=f"the {what} dataset")
    train_dataset = checked.pop("training")
    if names is not None:  # one class is refused; classes the training data lacks are said
        labelled = train_dataset if hasattr(train_dataset, "column_names") and not is_streaming(train_dataset) else None
        column = next((c for c in LABEL_COLUMNS if labelled is not None and c in labelled.column_names), "label")
        check_label_set(names, {"training": labelled}, where=f"the student's label set ({type(model).__name__})",
                        label_column=column)
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


def check_arguments(args, train_dataset, weak_model, weak_processing_class):
    """The trainer's arguments as it takes them, each refused with a sentence naming it: a ``DatasetDict`` as
    ``train_dataset`` (one split is trained on), a weak model that is not one, a precision the device cannot run
    (:func:`check_precision`). A ``weak_model`` given as a Hub id or a path is loaded (with its image processor as
    ``weak_processing_class`` unless one is given). Returns ``(weak_model, weak_processing_class)``."""
    import os

    from datasets import DatasetDict, IterableDatasetDict

    check_precision(args)

    if isinstance(train_dataset, (DatasetDict, IterableDatasetDict)):
        raise TypeError(f"train_dataset is a DatasetDict (splits {list(train_dataset)}); the trainer trains on one "
                        f"split: pass train_dataset=dataset[{next(iter(train_dataset), 'train')!r}].")
    if isinstance(weak_model, (str, os.PathLike)):
        from ..data.loading import check_source_name
        from ..data.weak_labels import load_weak_model

        check_source_name(weak_model, "model", "weak_model")  # a missing folder, or not a saved model, named
        loaded = load_weak_model(weak_model)
        return loaded.model, weak_processing_class if weak_processing_class is not None else loaded.image_processor
    if weak_model is not None and not hasattr(getattr(weak_model, "config", None), "id2label"):
        raise TypeError(f"weak_model must be an image classifier (e.g. AutoModelForImageClassification."
                        f"from_pretrained(...)) or its Hub id or path, got {type(weak_model).__name__}.")
    return weak_model, weak_processing_class


def check_trainable(model) -> None:
    """Some parameter of the student trains (after LoRA and ``student_mode`` are applied)."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"every parameter of the student ({type(model).__name__}) is frozen (requires_grad=False): "
                         "nothing would train. Unfreeze what should learn (model.requires_grad_(True), or "
                         "student_mode / trainable_blocks for a part of it).")


def check_precision(args) -> None:
    """fp16 / bf16 only where the device runs them: fp16 needs a CUDA (or other accelerator) device; bf16 on a CUDA
    GPU needs one that supports it (Ampere or later); bf16 runs on CPU."""
    import torch

    device = "cpu" if args.use_cpu or not _accelerator_available() else "accelerator"
    if args.fp16 and device == "cpu":
        raise ValueError("fp16 needs a GPU (or another accelerator), but this run trains on the CPU (use_cpu, or no "
                         "accelerator here): leave fp16 off (bf16 runs on the CPU).")
    if args.bf16 and device != "cpu" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ValueError(f"bf16 is not supported by this GPU ({torch.cuda.get_device_name()}): use fp16 instead.")


def _accelerator_available() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


def checked_metrics(compute_metrics):
    """``compute_metrics`` whose every value must be a number (a Python or numpy scalar, or a one-element array);
    anything else is a ``TypeError`` naming the metric, at the first evaluation (the preflight's, in a run), never a
    string or an array in the logs."""
    if compute_metrics is None or getattr(compute_metrics, "_w2s_checked", False):
        return compute_metrics
    import numbers

    import numpy as np

    def checked(eval_pred):
        out = compute_metrics(eval_pred)
        if not isinstance(out, dict):
            raise TypeError(f"compute_metrics must return a dict of metric names to numbers, got "
                            f"{type(out).__name__}.")
        result = {}
        for name, value in out.items():
            array = np.asarray(value) if not isinstance(value, (str, bytes)) else None
            if isinstance(value, bool) or array is None or array.size != 1 or not np.issubdtype(array.dtype, np.number):
                raise TypeError(f"compute_metrics must return numbers, but its {name!r} is {value!r} "
                                f"({type(value).__name__}).")
            result[name] = float(array.reshape(())) if not isinstance(value, numbers.Integral) else int(value)
        return result

    checked._w2s_checked = True
    return checked


def best_metric_error(wanted: str, names) -> ValueError:
    """The refusal of a ``metric_for_best_model`` that the evaluation does not give."""
    return ValueError(f"metric_for_best_model={wanted!r} is not a metric of the evaluation (it gives {sorted(names)}); "
                      "load_best_model_at_end would fail at the first evaluation. Choose one of them, e.g. accuracy or "
                      "loss.")


def check_best_metric(args, compute_metrics, num_labels: int) -> None:
    """With ``load_best_model_at_end``, ``metric_for_best_model`` names a metric the evaluation gives: the loss, a
    metric of ``compute_metrics`` (called on two made-up predictions) or a component of the loss; checked when the
    trainer is built, not after the first evaluation (a ``compute_metrics`` that cannot run on made-up predictions is
    left to the evaluation)."""
    wanted = args.metric_for_best_model
    if not (wanted and args.load_best_model_at_end):
        return
    import numpy as np
    import torch
    from transformers import EvalPrediction

    from ..losses import compute_w2s_loss

    name = wanted[len("eval_"):] if wanted.startswith("eval_") else wanted
    try:
        c = max(int(num_labels), 2)
        metrics = compute_metrics(EvalPrediction(predictions=np.eye(2, c, dtype=np.float32), label_ids=np.arange(2)))
        _, parts = compute_w2s_loss(args.w2s_loss, torch.zeros(2, c), torch.zeros(2, c), torch.arange(2),
                                    gt_loss_weight=args.gt_loss_weight, **args.loss_knobs())
    except Exception:  # noqa: BLE001 - the evaluation will say
        return
    names = {"loss", "ce_gt", *metrics, *parts}
    if name not in names and not name.startswith("weak_"):  # several supervisors log weak_weight_k, weak_agreement
        raise best_metric_error(wanted, [f"eval_{n}" for n in names])
