"""``WeakToStrongTrainer``: a thin ``Trainer`` whose loss is a weak-to-strong loss from :mod:`hf_w2s.losses`."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import torch
import torch.nn.functional as F
from transformers import Trainer

from .collator import WeakToStrongCollator
from .config import WeakToStrongConfig
from .labels import label_names, label_permutation, reorder_logits
from .losses import NEEDS_LABELS, NO_WEAK, compute_w2s_loss
from .metrics import compute_accuracy


class WeakToStrongTrainer(Trainer):
    """Train a strong image classifier from a weak supervisor's predictions.

    Supervision comes either from a cached ``weak_logits`` column of the dataset (see
    :func:`hf_w2s.label_dataset`) or online from ``weak_model``, which Accelerate places in evaluation mode (never
    wrapped for training) and which runs under ``no_grad`` on ``weak_pixel_values`` if the batch has them (pass
    ``weak_processing_class`` when weak and strong preprocess differently) or on the student's ``pixel_values``.

    The loss is a per-batch mean, so ``loss_is_scaled_for_ga = False`` lets the Trainer divide it by the number of
    accumulation steps: batch 8 × accumulation 1 and batch 4 × accumulation 2 take the same step.
    """

    _tag_names = ["hf_w2s", "weak-to-strong"]
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model=None,
        args: WeakToStrongConfig | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        weak_model=None,
        weak_processing_class=None,
        compute_metrics=None,
        **kwargs,
    ):
        if args is None:
            args = WeakToStrongConfig(output_dir="w2s-output")
        if not isinstance(args, WeakToStrongConfig):
            raise TypeError(
                "WeakToStrongTrainer needs a WeakToStrongConfig (TrainingArguments plus the w2s knobs), got "
                f"{type(args).__name__}."
            )
        args.validate_w2s()
        if model is None:
            raise ValueError("WeakToStrongTrainer needs a student model.")
        self._check_supervision(model, args, train_dataset, weak_model)
        if data_collator is None:
            data_collator = WeakToStrongCollator(
                image_processor=processing_class,
                weak_image_processor=weak_processing_class,
                image_column=args.image_column,
                weak_logits_column=args.weak_logits_column,
            )
        if compute_metrics is None:
            compute_metrics = compute_accuracy
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            **kwargs,
        )
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self.weak_model = None
        self._weak_perm = None
        if weak_model is not None:
            weak_model.eval()
            weak_model.requires_grad_(False)
            self._weak_perm = label_permutation(
                label_names(weak_model.config.id2label), label_names(model.config.id2label)
            )
            self.weak_model = self.accelerator.prepare_model(weak_model, evaluation_mode=True)

    # -- validation, before any compute -------------------------------------------------------------------------

    @staticmethod
    def _check_supervision(model, args, train_dataset, weak_model) -> None:
        columns = getattr(train_dataset, "column_names", None)
        if columns is None:
            return
        num_labels = model.config.num_labels
        if args.w2s_loss in NEEDS_LABELS or args.gt_loss_weight > 0:
            if not any(c in columns for c in ("label", "labels", "label_ids")):
                raise ValueError(
                    f"w2s_loss={args.w2s_loss!r} with gt_loss_weight={args.gt_loss_weight} needs true labels, but "
                    f"the training dataset has no 'label'/'labels' column (columns: {columns})."
                )
        if args.w2s_loss in NO_WEAK:
            return
        col = args.weak_logits_column
        if col not in columns:
            if weak_model is None:
                raise ValueError(
                    f"w2s_loss={args.w2s_loss!r} needs weak supervision: the training dataset has no {col!r} "
                    f"column (columns: {columns}) and no weak_model was given. Label it first with "
                    "hf_w2s.label_dataset(...) or pass weak_model=."
                )
            return
        feature = train_dataset.features.get(col) if getattr(train_dataset, "features", None) else None
        width = getattr(feature, "length", None)
        if width in (None, -1) and len(train_dataset) > 0:
            width = len(train_dataset[0][col])
        if width is not None and width not in (-1, num_labels):
            raise ValueError(
                f"the {col!r} column has {width} values per example but the student has {num_labels} labels; "
                "weak and strong label sets must match (label the data with a weak model of the same label names)."
            )

    # -- data ------------------------------------------------------------------------------------------------------

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        keep = [self.args.image_column, self.args.weak_logits_column, "weak_pixel_values", "pixel_values", "label"]
        self._signature_columns += [c for c in keep if c not in self._signature_columns]

    def _get_dataloader(self, dataset, description, batch_size, sampler_fn=None, is_training=False, **kwargs):
        collator = self.data_collator
        if not is_training and isinstance(collator, WeakToStrongCollator) and collator.training:
            self.data_collator = dataclasses.replace(collator, training=False)
        try:
            return super()._get_dataloader(dataset, description, batch_size, sampler_fn, is_training, **kwargs)
        finally:
            self.data_collator = collator

    # -- loss ------------------------------------------------------------------------------------------------------

    @property
    def training_progress(self) -> float:
        """Fraction of training done, from the trainer state, so that a resumed run continues its schedules."""
        max_steps = self.state.max_steps or 0
        return float(self.state.global_step) / max_steps if max_steps > 0 else 1.0

    @torch.no_grad()
    def _online_weak_logits(self, inputs) -> torch.Tensor:
        pixel_values = inputs.get("weak_pixel_values", inputs["pixel_values"])
        logits = self.weak_model(pixel_values=pixel_values).logits
        return reorder_logits(logits.float(), self._weak_perm)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        labels = inputs.get("labels")
        weak_logits = inputs.get(self.args.weak_logits_column, inputs.get("weak_logits"))
        outputs = model(pixel_values=inputs["pixel_values"])
        logits = outputs.logits
        if weak_logits is None and self.weak_model is not None and self.args.w2s_loss not in NO_WEAK:
            weak_logits = self._online_weak_logits(inputs)
        if weak_logits is None and self.args.w2s_loss not in NO_WEAK:
            if mode == "eval" and labels is not None:
                # evaluation on plain (image, label) data: cross-entropy on the true labels
                loss = F.cross_entropy(logits.float(), labels)
                components = {"ce_gt": loss.detach()}
            else:
                raise ValueError(
                    f"w2s_loss={self.args.w2s_loss!r} needs weak supervision, but the batch has no "
                    f"{self.args.weak_logits_column!r} and the trainer has no weak_model."
                )
        else:
            loss, components = compute_w2s_loss(
                self.args.w2s_loss,
                logits,
                weak_logits,
                labels,
                gt_loss_weight=self.args.gt_loss_weight,
                weak_loss_weight=self.args.weak_loss_weight,
                progress=self.training_progress,
                **self.args.loss_knobs(),
            )
        if components:  # one gather and one host sync per step for all the logged components
            names = list(components)
            values = torch.stack([components[n].detach().float().reshape(()) for n in names]).unsqueeze(0)
            gathered = self.accelerator.gather_for_metrics(values).reshape(-1, len(names)).mean(0).tolist()
            for name, value in zip(names, gathered):
                self._metrics[mode][name].append(value)
        return (loss, outputs) if return_outputs else loss

    # -- logging (TRL's pattern) -----------------------------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        metrics = {k: sum(v) / len(v) for k, v in self._metrics[mode].items() if v}
        if mode == "eval":
            metrics = {f"eval_{k}": v for k, v in metrics.items()}
        logs = {**logs, **metrics}
        super().log(logs, start_time)
        self._metrics[mode].clear()
