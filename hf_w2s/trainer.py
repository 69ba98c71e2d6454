"""``WeakToStrongTrainer``: a thin ``Trainer`` whose loss is a weak-to-strong loss from :mod:`hf_w2s.losses`."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import torch
import torch.nn.functional as F
from transformers import Trainer

from .collator import WeakToStrongCollator
from .config import WeakToStrongConfig
from .distributed import gather_weighted_means, prepare_weak_model
from .hub import resolve_train_dataset
from .labels import label_names, label_permutation, reorder_logits
from .loading import checkpoint_needs_key_conversion, load_converted_checkpoint
from .losses import NEEDS_LABELS, NO_WEAK, compute_w2s_loss
from .metrics import compute_accuracy
from .validation import check_inputs, check_output_dir, run_identity, write_run_file


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
        train_dataset = resolve_train_dataset(train_dataset, model, args.weak_logits_column)  # Hub id / path too
        self._check_supervision(model, args, train_dataset, weak_model)
        check_inputs(model, args, train_dataset, eval_dataset, processing_class, weak_model, weak_processing_class)
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
        # random augmentation runs in the training step, not in the collator: Accelerate collates one batch ahead,
        # so collator-side randomness would not be restored by resume_from_checkpoint (and the step runs on device)
        self.train_transform = None
        if isinstance(self.data_collator, WeakToStrongCollator) and self.data_collator.train_transform is not None:
            self.train_transform = self.data_collator.train_transform
            self.data_collator = dataclasses.replace(self.data_collator, train_transform=None)
        self.weak_model = None
        self._weak_perm = None
        if weak_model is not None:
            self._weak_perm = label_permutation(
                label_names(weak_model.config.id2label), label_names(model.config.id2label)
            )
            # inference only: never wrapped for training; sharded only under DeepSpeed ZeRO-3 (hf_w2s.distributed)
            self.weak_model = prepare_weak_model(weak_model, self.accelerator)

    # -- validation, before any compute -------------------------------------------------------------------------

    @staticmethod
    def _check_supervision(model, args, train_dataset, weak_model) -> None:
        columns = getattr(train_dataset, "column_names", None)
        if columns is None:
            return
        if args.w2s_loss in NEEDS_LABELS or args.gt_loss_weight > 0:
            if not any(c in columns for c in ("label", "labels", "label_ids")):
                raise ValueError(
                    f"w2s_loss={args.w2s_loss!r} with gt_loss_weight={args.gt_loss_weight} needs true labels, but "
                    f"the training dataset has no 'label'/'labels' column (columns: {columns})."
                )
        if args.w2s_loss in NO_WEAK:
            return
        col = args.weak_logits_column
        if col not in columns and weak_model is None:
            raise ValueError(
                f"w2s_loss={args.w2s_loss!r} needs weak supervision: the training dataset has no {col!r} "
                f"column (columns: {columns}) and no weak_model was given. Label it first with "
                "hf_w2s.label_dataset(...) or pass weak_model=."
            )
        # the column's width, nulls and NaN/inf are checked on the Arrow data by validation.check_inputs

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

    # -- training --------------------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        # refuse an output_dir that holds another run (transformers 5 has no overwrite_output_dir of its own)
        identity = run_identity(self.args, self.model)
        check_output_dir(self.args.output_dir, identity, resuming=bool(resume_from_checkpoint),
                         overwrite=self.args.overwrite_output_dir, remove=self.args.should_save)
        if self.args.should_save:
            write_run_file(self.args.output_dir, identity)
        return super().train(resume_from_checkpoint, trial, ignore_keys_for_eval, **kwargs)

    # -- checkpoints -----------------------------------------------------------------------------------------------

    def _converted_load(self, checkpoint_dir, model) -> bool:
        # transformers 5 saves checkpoints with the Hub's weight names (ViT: ...attention.attention.query), but its
        # resume path loads them without renaming and silently keeps the fresh weights (transformers#48805)
        if self.is_fsdp_enabled or self.is_deepspeed_enabled or not checkpoint_dir:
            return False
        if not checkpoint_needs_key_conversion(model, checkpoint_dir):
            return False
        load_converted_checkpoint(model, checkpoint_dir)
        return True

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not self._converted_load(resume_from_checkpoint, model if model is not None else self.model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self):
        if not self._converted_load(self.state.best_model_checkpoint, self.model):
            super()._load_best_model()

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
        if model.training and self.train_transform is not None:
            inputs = {**inputs, "pixel_values": self.train_transform(inputs["pixel_values"])}
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
        # exact means over the global batch (all processes), weighted by each process's batch size
        for name, value in gather_weighted_means(components, logits.shape[0], self.accelerator).items():
            self._metrics[mode][name].append(value)
        return (loss, outputs) if return_outputs else loss

    # -- logging (TRL's pattern) -----------------------------------------------------------------------------------

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        for name, values in self._metrics["eval"].items():
            if values:
                output.metrics[f"{prefix}_{name}"] = sum(values) / len(values)
        self._metrics["eval"].clear()
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model is None or self.model.training or "loss" in logs or "train_loss" in logs:
            metrics = {k: sum(v) / len(v) for k, v in self._metrics["train"].items() if v}
            logs = {**logs, **metrics}
            self._metrics["train"].clear()
        super().log(logs, start_time)
