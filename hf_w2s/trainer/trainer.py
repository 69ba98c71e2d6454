"""``WeakToStrongTrainer``: a thin ``Trainer`` whose loss is a weak-to-strong loss from :mod:`hf_w2s.losses`.

Longer than ~400 lines because a ``Trainer`` subclass holds its hook overrides in one class (loss, checkpoints saved
whole, FSDP, the online weak model, logging), as TRL's trainers do; what is not a hook lives next to it: the input
checks (:mod:`.checks`), batches (:mod:`.collator`, :mod:`.augment`), several supervisors (:mod:`.combiner`), the
optimizer's groups (:mod:`.optim`) and the pixel cache (:mod:`.pixel_cache`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections import defaultdict

import torch
import torch.nn.functional as F
from datasets import Dataset
from safetensors.torch import load_file, save_file
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ..calibration import StudentCalibrationCallback
from ..checkpoints import checkpoint_to_resume, last_complete_checkpoint
from ..data.loading import open_dataset, select_split
from ..data.weak_labels import align_to_model
from ..distributed import (
    adapt_model_to_fsdp2,
    enable_fsdp_on_cpu,
    gather_weighted_means,
    own_fsdp_plugin,
    prepare_weak_model,
)
from ..files import disk_full_error, is_disk_full, staged_files
from ..labels import label_names, label_permutation, reorder_logits
from ..losses import LOSSES, compute_w2s_loss, knobs_of
from ..metrics import compute_accuracy
from ..modeling import checkpoint_needs_key_conversion, load_converted_checkpoint
from ..outputs import check_output_dir, finished_at, run_identity, write_run_file
from ..predicting import predicting
from .checks import (
    check_arguments,
    check_best_metric,
    check_inputs,
    check_supervision,
    check_trainable,
    checked_metrics,
)
from .collator import WeakToStrongCollator
from .combiner import WeakCombiner, ZeroGradCallback, supervisors_agree
from .config import WeakToStrongConfig
from .optim import apply_layer_decay, layer_ids
from .pixel_cache import cache_pixels
from .student_modes import apply_student_mode

logger = logging.get_logger(__name__)
#: file holding the learned weak-supervisor weights in a checkpoint (next to the optimizer state)
WEAK_COMBINER_NAME = "weak_combiner.safetensors"


class WeakToStrongTrainer(Trainer):
    """Train a strong image classifier from a weak supervisor's predictions.

    Supervision comes either from a cached ``weak_logits`` column of the dataset (see
    :func:`hf_w2s.label_dataset`) or online from ``weak_model``, which Accelerate places in evaluation mode (never
    wrapped for training) and which runs under ``no_grad`` on ``weak_pixel_values`` if the batch has them (pass
    ``weak_processing_class`` when weak and strong preprocess differently) or on the student's ``pixel_values``.

    The loss is a per-batch mean, so ``loss_is_scaled_for_ga = False`` lets the Trainer divide it by the number of
    accumulation steps: batch 8 × accumulation 1 and batch 4 × accumulation 2 take the same step.

    What of the student trains is ``args.student_mode`` (:mod:`hf_w2s.trainer.student_modes`); ``peft_config`` (a
    ``peft.LoraConfig``, as TRL's trainers take it) trains a LoRA student instead, its target modules and
    ``modules_to_save`` completed for the architecture when left unset (:func:`hf_w2s.lora.complete_peft_config`).

    Several weak supervisors (``args.weak_logits_columns``): the collator stacks their logits to ``(B, K, C)`` and
    :class:`~hf_w2s.trainer.combiner.WeakCombiner` (``self.weak_combiner``) mixes them into the loss's weak logits;
    learned weights get their own optimizer group and are saved with the optimizer state in checkpoints.
    ``calibration_dataset`` (images with true labels): ``conf_select`` refits the student's temperature on it during
    training (:class:`~hf_w2s.calibration.StudentCalibrationCallback`).
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
        calibration_dataset=None,
        peft_config=None,
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
        weak_model, weak_processing_class = check_arguments(args, train_dataset, weak_model, weak_processing_class)
        if peft_config is not None:
            if args.student_mode != "full":
                raise ValueError(f"peft_config (LoRA) trains adapters on the whole model; student_mode "
                                 f"{args.student_mode!r} would freeze parts of it too: use one of the two.")
            from ..lora import apply_peft

            model = apply_peft(model, peft_config)
        model = apply_student_mode(model, args.student_mode, args.trainable_blocks)
        check_trainable(model)
        if args.channels_last:  # 4-d weights only: linear layers and ViTs are unchanged
            model = model.to(memory_format=torch.channels_last)
            if isinstance(weak_model, torch.nn.Module):
                weak_model = weak_model.to(memory_format=torch.channels_last)
        train_dataset = _resolve_dataset(train_dataset, "train", None, model, args.weak_logits_column)  # id / path
        eval_dataset = _resolve_dataset(eval_dataset, "test", args.eval_dataset_split, model, args.weak_logits_column)
        check_supervision(model, args, train_dataset, weak_model)
        if args.layer_decay < 1.0:
            layer_ids(model)  # a model without one sequence of numbered blocks is refused now, not when training starts
        train_dataset, eval_dataset = check_inputs(model, args, train_dataset, eval_dataset, processing_class,
                                                   weak_model, weak_processing_class)
        if data_collator is None:
            data_collator = WeakToStrongCollator(
                image_processor=processing_class,
                weak_image_processor=weak_processing_class,
                image_column=args.image_column,
                weak_logits_column=args.weak_logits_column,
                weak_logits_columns=args.weak_logits_columns,
            )
        compute_metrics = checked_metrics(compute_metrics or compute_accuracy)  # every value a number
        check_best_metric(args, compute_metrics, model.config.num_labels)
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
        # id(dataset) -> (dataset, what its loaders read): _with_cached_pixels
        self._pixel_caches: dict[int, tuple] = {}
        # random augmentation runs in the training step, not in the collator: Accelerate collates one batch ahead,
        # so collator-side randomness would not be restored by resume_from_checkpoint (and the step runs on device)
        self.train_transform = None
        if isinstance(self.data_collator, WeakToStrongCollator) and self.data_collator.train_transform is not None:
            self.train_transform = self.data_collator.train_transform
            self.data_collator = dataclasses.replace(self.data_collator, train_transform=None)
        self._setup_weak_model(weak_model, model)
        # the chosen loss's knobs, read once (conf_select's calibration callback updates its student temperature)
        self.loss_knobs = knobs_of(args.w2s_loss, args)
        self._setup_beyond_the_paper(model, args, calibration_dataset)
        self._setup_fsdp2()

    def _setup_weak_model(self, weak_model, model) -> None:
        """The online weak model: matched to the student by label names, placed for inference only (never wrapped
        for training; sharded only under DeepSpeed ZeRO-3, see hf_w2s.distributed)."""
        self.weak_model = None
        self._weak_perm = None
        if weak_model is not None:
            self._weak_perm = label_permutation(
                label_names(weak_model.config.id2label), label_names(model.config.id2label)
            )
            self.weak_model = prepare_weak_model(weak_model, self.accelerator)

    def _setup_beyond_the_paper(self, model, args, calibration_dataset) -> None:
        """Several weak supervisors' combiner, and conf_select's student recalibration."""
        self.weak_combiner = None
        if args.weak_logits_columns:
            self.weak_combiner = WeakCombiner(
                len(args.weak_logits_columns), args.weak_combination, args.weak_accuracies,
                model.config.num_labels, args.weak_temperatures,
            ).to(args.device)
            if self.weak_combiner.learnable:
                self.add_callback(ZeroGradCallback(self.weak_combiner))
        self.calibration_callback = None
        if calibration_dataset is not None:
            if args.w2s_loss != "conf_select":
                logger.warning(f"calibration_dataset is only used by conf_select, not {args.w2s_loss!r}; ignored.")
            else:
                collator = self.data_collator
                if isinstance(collator, WeakToStrongCollator):
                    collator = dataclasses.replace(collator, training=False)
                self.calibration_callback = StudentCalibrationCallback(
                    calibration_dataset, collator, self.loss_knobs, args.student_calibration_steps,
                    batch_size=args.per_device_eval_batch_size,
                )
                self.add_callback(self.calibration_callback)

    # -- sharded training (FSDP), see hf_w2s.distributed and docs/many_gpus.md -----------------------------------

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        # several CPU processes: accelerate 1.15 drops the FSDP plugin and wraps the student in DDP without a word
        if enable_fsdp_on_cpu(self.accelerator, self.args.fsdp_plugin_args):
            self.is_fsdp_enabled = True
        own_fsdp_plugin(self.accelerator)  # not one fitted to an earlier trainer's model

    def _fsdp_plugin(self, version: int | None = None):
        """Accelerate's FSDP plugin when the student is sharded (of that FSDP ``version`` if given), else None."""
        plugin = getattr(self.accelerator.state, "fsdp_plugin", None) if self.is_fsdp_enabled else None
        if plugin is None or (version is not None and getattr(plugin, "fsdp_version", 1) != version):
            return None
        return plugin

    def _setup_fsdp2(self) -> None:
        """FSDP2: refuse what it cannot train; let Accelerate shard a vision model (hf_w2s.distributed.
        adapt_model_to_fsdp2). The online weak model stays replicated (prepare_weak_model)."""
        plugin = self._fsdp_plugin(version=2)
        if plugin is None:
            return
        if self.weak_combiner is not None and self.weak_combiner.learnable:
            # Accelerate's FSDP2 prepare swaps every optimizer parameter for its sharded twin and fails with a bare
            # KeyError on the supervisor weights' group, which is not part of the model
            raise ValueError(
                "weak_combination='learned' is not supported with FSDP2 (fsdp=True): its supervisor weights are "
                "trained outside the sharded model. Use weak_combination='mean' or 'accuracy', or train without "
                "fsdp (data parallel)."
            )
        for change in adapt_model_to_fsdp2(self.model, plugin):
            logger.info(f"FSDP2: {change}")

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Transformers' ``save_model``; under FSDP with sharded checkpoints it writes the full weights (a plain
        ``from_pretrained`` checkpoint, also for ``push_to_hub``), where transformers would write no weights at all.
        Checkpoints (``checkpoint-N`` folders, saved with ``_internal_call``) stay sharded."""
        plugin = self._fsdp_plugin()
        checkpoint = _internal_call and output_dir is not None
        if checkpoint or plugin is None or "FULL_STATE_DICT" in str(plugin.state_dict_type):
            return super().save_model(output_dir, _internal_call)
        saved = (plugin.state_dict_type, plugin.state_dict_config, plugin.optim_state_dict_config)
        plugin.state_dict_config = plugin.optim_state_dict_config = None
        plugin.set_state_dict_type("FULL_STATE_DICT")
        try:
            return super().save_model(output_dir, _internal_call)
        finally:
            plugin.state_dict_type, plugin.state_dict_config, plugin.optim_state_dict_config = saved

    # -- data ------------------------------------------------------------------------------------------------------

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        keep = [self.args.image_column, self.args.weak_logits_column, "weak_pixel_values", "pixel_values", "label"]
        keep += list(self.args.weak_logits_columns or [])
        self._signature_columns += [c for c in keep if c not in self._signature_columns]

    def _get_dataloader(self, dataset, description, batch_size, sampler_fn=None, is_training=False, **kwargs):
        dataset = self._with_cached_pixels(dataset, description)
        collator = self.data_collator
        if not is_training and isinstance(collator, WeakToStrongCollator) and collator.training:
            self.data_collator = dataclasses.replace(collator, training=False)
        try:
            return super()._get_dataloader(dataset, description, batch_size, sampler_fn, is_training, **kwargs)
        finally:
            self.data_collator = collator

    def _with_cached_pixels(self, dataset, description):
        """``dataset`` with its images pre-processed once and kept in memory (:mod:`hf_w2s.trainer.pixel_cache`),
        when they fit in ``pixel_cache_mb``; built once per dataset object."""
        if not isinstance(dataset, Dataset) or self.args.pixel_cache_mb <= 0:
            return dataset
        cached = self._pixel_caches.get(id(dataset))
        if cached is None or cached[0] is not dataset:  # the dataset object is kept, so its id is not reused
            rows = self._remove_unused_columns(dataset, description=description)
            cached = (dataset, cache_pixels(rows, self.data_collator, self.args.pixel_cache_mb) or dataset)
            self._pixel_caches[id(dataset)] = cached
        return cached[1]

    # -- training --------------------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        # refuse an output_dir that holds another run (transformers 5 has no overwrite_output_dir of its own)
        resume_from_checkpoint = self._checkpoint_to_resume(resume_from_checkpoint)
        finished = finished_at(resume_from_checkpoint, self.args) if resume_from_checkpoint else None
        if finished:  # transformers then trains no step; nothing of the finished run is rewritten
            logger.warning(f"the run in {self.args.output_dir} is finished ({finished}): resuming it from "
                           f"{resume_from_checkpoint} trains nothing and changes nothing.")
        identity = run_identity(self.args, self.model)
        check_output_dir(self.args.output_dir, identity, resuming=bool(resume_from_checkpoint),
                         overwrite=self.args.overwrite_output_dir, remove=self.args.should_save)
        if self.args.should_save and not finished:
            write_run_file(self.args.output_dir, identity)
        return super().train(resume_from_checkpoint, trial, ignore_keys_for_eval, **kwargs)

    # -- checkpoints -----------------------------------------------------------------------------------------------

    def _checkpoint_to_resume(self, resume_from_checkpoint):
        """``True`` (or the command line's ``true``) is the last *complete* checkpoint of ``output_dir`` (a save cut
        short, e.g. by a full disk or a kill, is skipped); a path must exist. Checked before any compute."""
        return checkpoint_to_resume(resume_from_checkpoint, self.args.output_dir)

    def _save_checkpoint(self, model, trial):
        """A checkpoint is saved whole or removed: a save that fails (a full disk, ...) leaves no half-written
        ``checkpoint-N`` behind, and a full disk is reported with the path and the last complete checkpoint."""
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        existed = os.path.exists(folder)
        try:
            super()._save_checkpoint(model, trial)
        except Exception as err:
            full = is_disk_full(err, folder)
            if not existed and self.args.should_save:
                shutil.rmtree(folder, ignore_errors=True)
            if full:
                last = last_complete_checkpoint(self._get_output_dir(trial=trial))
                kept = f"; the last complete checkpoint is {last}" if last else "; there is no complete checkpoint"
                raise disk_full_error(err, folder, kept) from err
            raise

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """The model, its config and processor are saved whole or not at all: into a temporary folder inside
        ``output_dir`` whose files then replace the old ones (a full disk: reported with the path, nothing
        half-written left)."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save or getattr(self, "is_distributed_loading_by_transformers", False):
            return super()._save(output_dir, state_dict)
        with staged_files(output_dir) as tmp:
            super()._save(tmp, state_dict)

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

    def _online_weak_logits(self, inputs) -> torch.Tensor:
        pixel_values = inputs.get("weak_pixel_values", inputs["pixel_values"])
        with predicting(self.weak_model):  # evaluation mode, no autograd, its modes restored
            logits = reorder_logits(self.weak_model(pixel_values=pixel_values).logits.float(), self._weak_perm)
        return logits.clone()  # a plain tensor: the loss keeps its target for backward

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        labels = inputs.get("labels")
        weak_logits = inputs.get(self.args.weak_logits_column, inputs.get("weak_logits"))
        if model.training and self.train_transform is not None:
            inputs = {**inputs, "pixel_values": self.train_transform(inputs["pixel_values"])}
        outputs = model(pixel_values=inputs["pixel_values"])
        logits = outputs.logits
        uses_weak = LOSSES[self.args.w2s_loss].uses_weak
        if weak_logits is None and self.weak_model is not None and uses_weak:
            weak_logits = self._online_weak_logits(inputs)
        multi = None
        if weak_logits is not None and weak_logits.dim() == 3:
            logits, weak_logits, labels, multi = self._combine_weak(logits, weak_logits, labels, mode)
        label_mix = _label_mix(inputs, model.training, multi is not None)
        if weak_logits is None and uses_weak:
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
                label_mix=label_mix,
                label_smoothing=self.args.label_smoothing_factor if model.training else 0.0,
                **self.loss_knobs,
            )
        # exact means over the global batch (all processes), weighted by each process's batch size
        for name, value in gather_weighted_means(components, logits.shape[0], self.accelerator).items():
            self._metrics[mode][name].append(value)
        extras = {}
        if multi is not None:  # several weak supervisors: weights, agreement, the learned weights' objective
            loss = loss * multi.pop("loss_scale")
            weight_step = multi.pop("weight_step", None)
            if weight_step is not None:
                # adds the weights' gradient without changing the reported loss value
                loss = loss + (weight_step - weight_step.detach())
                multi["weak_weights_nll"] = weight_step.detach()
            extras = multi
        if self.calibration_callback is not None:  # the student temperature conf_select currently uses
            extras["student_calibration_temperature"] = torch.tensor(self.loss_knobs["student_calibration_temperature"])
        for name, value in gather_weighted_means(extras, outputs.logits.shape[0], self.accelerator).items():
            self._metrics[mode][name].append(value)
        return (loss, outputs) if return_outputs else loss

    def _combine_weak(self, logits, stacked, labels, mode):
        """Several supervisors ``(B, K, C)`` → one ``(B, C)``.

        During ``weak_agreement_warmup`` only the rows where all supervisors agree are kept (a batch without any keeps
        its rows at loss scale 0, so every process logs the same metrics). Returns the (possibly filtered) student
        logits, weak logits and labels, and a dict with ``loss_scale``, the supervisor weights and agreement for
        logging and, for learned weights in training after ``weak_weights_warmup``, ``weight_step``: their objective
        computed on the batch gathered over all processes, so that every process takes the same step on its copy of
        the weights.
        """
        if self.weak_combiner is None:
            raise ValueError("the batch carries several weak supervisors (B, K, C); set args.weak_logits_columns")
        stacked = stacked.to(logits.device)
        combined = self.weak_combiner(stacked)
        agree = supervisors_agree(stacked)
        pi = self.weak_combiner.weights().detach()
        extra = {f"weak_weight_{k}": pi[k] for k in range(len(pi))}
        extra["weak_agreement"] = agree.float().mean()
        extra["loss_scale"] = 1.0
        learning = self.weak_combiner.learnable and self.training_progress >= self.args.weak_weights_warmup
        if mode == "train" and learning:
            gathered_weak = self.accelerator.gather(stacked.contiguous())
            gathered_student = self.accelerator.gather(logits.detach().contiguous())
            extra["weight_step"] = self.weak_combiner.weight_loss(gathered_weak, gathered_student)
        if mode == "train" and self.training_progress < self.args.weak_agreement_warmup:
            if agree.any():
                logits, combined = logits[agree], combined[agree]
                labels = labels[agree] if labels is not None else None
            else:
                extra["loss_scale"] = 0.0
        return logits, combined, labels, extra

    def create_optimizer(self, model=None):
        """Transformers' optimizer; its param groups split by encoder layer when ``args.layer_decay < 1``; the
        learned weights of several weak supervisors in a group of their own."""
        optimizer = super().create_optimizer(model)
        if self.args.layer_decay < 1.0:
            apply_layer_decay(optimizer, self.model if model is None else model, self.args.layer_decay)
        if self.weak_combiner is not None and self.weak_combiner.learnable:
            params = list(self.weak_combiner.parameters())
            present = {id(p) for group in optimizer.param_groups for p in group["params"]}
            if not any(id(p) in present for p in params):
                optimizer.add_param_group(
                    {"params": params, "weight_decay": 0.0, "lr": self.args.weak_weights_learning_rate}
                )
        return optimizer

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.weak_combiner is not None and self.weak_combiner.learnable and self.args.should_save:
            state = {k: v.detach().cpu().contiguous() for k, v in self.weak_combiner.state_dict().items()}
            save_file(state, os.path.join(output_dir, WEAK_COMBINER_NAME))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self.weak_combiner is None or not self.weak_combiner.learnable:
            return
        path = os.path.join(checkpoint, WEAK_COMBINER_NAME)
        if not os.path.isfile(path):
            raise ValueError(f"checkpoint {checkpoint} has no {WEAK_COMBINER_NAME}: cannot resume the learned weights")
        self.weak_combiner.load_state_dict(load_file(path, device=str(self.args.device)))

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


def _label_mix(inputs, training: bool, several_weak: bool):
    """``(λ, perm)`` of a batch mixed by the collator (mixup / CutMix), so the ground-truth term mixes the labels as
    the images were mixed; ``None`` for an unmixed batch."""
    if not training or "mixup_lambda" not in inputs:
        return None
    if several_weak:
        raise ValueError("mixup / CutMix with several weak supervisors is not supported (the agreement warm-up drops "
                         "rows of a mixed batch); set mixup_alpha and cutmix_alpha to 0.")
    return inputs["mixup_lambda"], inputs["mixup_index"]


def _resolve_dataset(dataset, default_split, split, model, logits_column):
    """A dataset given as a Hub id or a path is loaded: its ``split``, or with ``split=None`` the whole of a single
    pool or the ``default_split`` of a dataset with splits. Every dataset (or each of a dict of eval datasets) has its
    labels matched to the student's by name."""
    if isinstance(dataset, dict):
        return {name: _resolve_dataset(ds, default_split, split, model, logits_column) for name, ds in dataset.items()}
    if isinstance(dataset, (str, os.PathLike)):
        opened = open_dataset(dataset)
        if split is None and not isinstance(opened, Dataset):
            split = default_split
        dataset = select_split(opened, split, repr(str(dataset)))
    return align_to_model(dataset, model, logits_column)
