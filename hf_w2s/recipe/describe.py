"""What a recipe's model card says about the run: its supervision, augmentation, knobs and hyper-parameters."""

from __future__ import annotations

import os

from ..hub import dataset_commit, is_hub_id
from ..losses import LOSSES, knobs_of
from .config import RecipeArguments

__all__ = ["card_arguments"]


def loss_settings(args) -> dict:
    """The loss weights and the knobs the chosen loss reads."""
    if not LOSSES[args.w2s_loss].uses_weak:
        return knobs_of(args.w2s_loss, args)
    return {"weak_loss_weight": args.weak_loss_weight, "gt_loss_weight": args.gt_loss_weight,
            **knobs_of(args.w2s_loss, args)}


def weak_id(sa: RecipeArguments) -> str:
    return sa.weak_labels_dataset or sa.weak_model_name_or_path or (
        f"label-noise:{sa.label_noise_kind}:{sa.label_noise_rate}" if sa.label_noise_rate > 0 else "none")


def weak_description(sa: RecipeArguments) -> str:
    if sa.label_noise_rate > 0:
        return f"ground truth with {sa.label_noise_kind} label noise at rate {sa.label_noise_rate}"
    if sa.weak_labels_dataset:
        return f"weak labels from `{sa.weak_labels_dataset}`"
    if sa.weak_model_name_or_path:
        how = (f", fine-tuned on the ground truth of split `{sa.weak_train_split}` (saved in `weak_model/`)"
               if sa.weak_train_split else "")
        shots = f" ({sa.weak_shots_per_class} examples per class)" if sa.weak_shots_per_class else ""
        return f"`{sa.weak_model_name_or_path}`{how}{shots}; {sa.weak_supervision} supervision"
    return "none (ground truth)"


def augmentation_description(sa: RecipeArguments) -> str:
    if not sa.augment and sa.mixup_alpha <= 0 and sa.cutmix_alpha <= 0:
        return "none (the image processor's transform)"
    parts = []
    if sa.augment:
        parts.append(f"random resized crop (scale {sa.crop_scale_min}–1)")
        if sa.hflip:
            parts.append("horizontal flip")
        if sa.randaugment_n:
            parts.append(f"RandAugment n={sa.randaugment_n} m={sa.randaugment_m}")
        if sa.random_erasing:
            parts.append(f"random erasing p={sa.random_erasing}")
    if sa.mixup_alpha > 0:
        parts.append(f"mixup α={sa.mixup_alpha}")
    if sa.cutmix_alpha > 0:
        parts.append(f"CutMix α={sa.cutmix_alpha}" + (" (one of the two per batch)" if sa.mixup_alpha > 0 else ""))
    return ", ".join(parts) + " (kornia), training only"


def card_arguments(recipe, card_repo: str) -> dict:
    """The keyword arguments of :func:`hf_w2s.hub.render_student_card` for a finished
    :class:`~hf_w2s.recipe.runner.StudentRecipe`."""
    sa, args, results = recipe.sa, recipe.args, recipe.results
    hyper = {"learning_rate": args.learning_rate, "num_train_epochs": args.num_train_epochs,
             "max_steps": args.max_steps, "per_device_train_batch_size": args.per_device_train_batch_size,
             "gradient_accumulation_steps": args.gradient_accumulation_steps, "weight_decay": args.weight_decay,
             "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
             "warmup_steps": args.warmup_steps, "seed": args.seed}
    validation = results.get("validation")  # where the run evaluated and chose; the test split is read once
    hyper["evaluated_during_training_on"] = (f"validation: {validation['split']}, {validation['examples']} examples"
                                             if validation else "nothing (eval_strategy no)")
    hyper["load_best_model_at_end"] = bool(args.load_best_model_at_end)
    metrics = recipe.metrics
    extra = {m: metrics[f"eval_{m}"] for m in sa.metrics if m != "accuracy" and f"eval_{m}" in metrics}
    model = recipe.trainer.model
    return dict(
        model_name=os.path.basename(card_repo.rstrip("/")),
        repo_id=card_repo,
        architecture=type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__,
        label_names=recipe.names,
        loss=args.w2s_loss,
        knobs=loss_settings(args),
        hyperparameters=hyper,
        base_model=sa.model_name_or_path,
        weak_supervisor=weak_id(sa),
        weak_desc=weak_description(sa),
        dataset=sa.weak_labels_dataset or sa.dataset_name,
        eval_dataset=recipe.eval_name,
        dataset_config=sa.dataset_config or (recipe.eval_ds.info.config_name if is_hub_id(recipe.eval_name) else None),
        dataset_revision=dataset_commit(recipe.eval_name, sa.dataset_revision, args.hub_token),
        train_split=sa.dataset_train_split,
        eval_split=sa.dataset_test_split,
        accuracy=results["accuracy"],
        weak_accuracy=results["weak_accuracy"],
        agreement=results.get("agreement"),
        ceiling_accuracy=results["ceiling_accuracy"],
        extra_metrics=extra,
        gt_loss_weight=args.gt_loss_weight,
        augmentation_desc=augmentation_description(sa),
        noise_desc=recipe.noise_desc,
        lora=recipe.lora_info,
        command=recipe.command,
        max_train_samples=len(recipe.train_ds),
    )
