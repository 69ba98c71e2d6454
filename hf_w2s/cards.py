"""Model cards for weak-to-strong students, rendered from the Jinja template ``model_cards/student.md``."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from .metrics import performance_gap_recovered

LOSS_DESCRIPTIONS = {
    "adapt_conf": "AdaptConf (Guo et al. 2024): per example, a mix of distillation from the weak supervisor and "
    "cross-entropy to the student's own hard prediction, weighted by how confident the student is relative to the "
    "supervisor.",
    "aug_conf": "AugConf: distillation from the weak supervisor mixed with cross-entropy to the student's own hard "
    "prediction, with a confidence weight that ramps up linearly to a_max.",
    "aux_conf": "OpenAI's auxiliary confidence loss (Burns et al. 2023): cross-entropy to the weak supervisor's soft "
    "labels mixed with cross-entropy to the student's hardened predictions.",
    "kd": "Knowledge distillation (Hinton et al. 2015) from the weak supervisor at temperature tau.",
    "weak_soft": "Cross-entropy to the weak supervisor's soft labels.",
    "weak_hard": "Naive weak-to-strong training: cross-entropy to the weak supervisor's argmax labels.",
    "ground_truth": "Cross-entropy to the ground-truth labels (the strong ceiling).",
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def template_path(name: str = "student.md") -> str:
    """Path of a card template shipped as ``hf_w2s.model_cards`` (or found in a source checkout)."""
    try:
        from importlib.resources import files

        candidate = files("hf_w2s.model_cards") / name
        if candidate.is_file():
            return str(candidate)
    except ModuleNotFoundError:
        pass
    candidate = Path(__file__).resolve().parent.parent / "model_cards" / name
    if not candidate.is_file():
        raise FileNotFoundError(f"card template {name!r} not found (looked in hf_w2s.model_cards and {candidate})")
    return str(candidate)


def is_hub_id(name: str | None) -> bool:
    """``namespace/name`` that is not a local path: safe to put in card metadata as a Hub reference."""
    return bool(name) and bool(_HUB_ID.match(name)) and not os.path.exists(name)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def lora_load_snippet(repo_id: str, base_model: str | None, base_class: str = "AutoModelForImageClassification",
                      base_subfolder: str | None = None) -> str:
    """Python that loads the LoRA adapter on top of its base model."""
    if base_subfolder:
        base_line = f'base = {base_class}.from_pretrained("{repo_id}", subfolder="{base_subfolder}")'
    else:
        base_line = (f'base = {base_class}.from_pretrained(\n    "{base_model}", id2label=config.id2label, '
                     "label2id=config.label2id, ignore_mismatched_sizes=True)")
    return "\n".join([
        "from peft import PeftModel",
        f"from transformers import AutoConfig, {base_class}",
        "",
        f'config = AutoConfig.from_pretrained("{repo_id}")  # the student\'s label names',
        base_line,
        f'model = PeftModel.from_pretrained(base, "{repo_id}", subfolder="adapter")',
    ])


def render_student_card(
    *,
    model_name: str,
    repo_id: str,
    architecture: str,
    label_names: list[str],
    loss: str,
    knobs: dict,
    hyperparameters: dict,
    base_model: str,
    weak_supervisor: str,
    dataset: str,
    train_split: str,
    eval_split: str,
    eval_dataset: str | None = None,
    dataset_config: str | None = None,
    accuracy: float | None = None,
    weak_accuracy: float | None = None,
    ceiling_accuracy: float | None = None,
    extra_metrics: dict[str, float] | None = None,
    gt_loss_weight: float = 0.0,
    augmentation_desc: str = "none",
    noise_desc: str | None = None,
    lora: dict | None = None,
    command: str = "",
    max_train_samples: int | None = None,
    base_model_desc: str | None = None,
    weak_desc: str | None = None,
    dataset_desc: str | None = None,
):
    """Render the student's card: YAML metadata (``model-index`` with accuracy, and PGR when the weak and ceiling
    accuracies are known) plus the body of ``model_cards/student.md``. Returns a ``huggingface_hub.ModelCard``."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from . import __version__

    eval_dataset = eval_dataset or dataset
    pgr = None
    if accuracy is not None and weak_accuracy is not None and ceiling_accuracy is not None:
        pgr = performance_gap_recovered(weak_accuracy, accuracy, ceiling_accuracy)
    common = dict(task_type="image-classification", task_name="Image Classification", dataset_type=eval_dataset,
                  dataset_name=eval_dataset, dataset_config=dataset_config, dataset_split=eval_split)
    eval_results = []
    if accuracy is not None:
        eval_results.append(EvalResult(metric_type="accuracy", metric_name="Accuracy", metric_value=accuracy,
                                       **common))
    for name, value in (extra_metrics or {}).items():
        eval_results.append(EvalResult(metric_type=name, metric_name=name, metric_value=value, **common))
    if pgr is not None and not math.isnan(pgr):
        eval_results.append(EvalResult(metric_type="pgr", metric_name="Performance gap recovered",
                                       metric_value=pgr, **common))
    hub_datasets = [d for d in dict.fromkeys([dataset, eval_dataset]) if is_hub_id(d)]
    tags = ["image-classification", "weak-to-strong", "hf_w2s", loss.replace("_", "-")]
    if lora:
        tags.append("lora")
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model if is_hub_id(base_model) else None,
        datasets=hub_datasets or None,
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=tags,
        metrics=["accuracy"],
        eval_results=eval_results or None,
        weak_supervisor=weak_supervisor,
    )
    results = []
    if accuracy is not None:
        results.append({"name": "student accuracy", "value": _fmt(accuracy)})
    for name, value in (extra_metrics or {}).items():
        results.append({"name": f"student {name}", "value": _fmt(value)})
    if weak_accuracy is not None:
        results.append({"name": "weak supervisor accuracy", "value": _fmt(weak_accuracy)})
    if ceiling_accuracy is not None:
        results.append({"name": "ceiling accuracy (student trained on ground truth)", "value": _fmt(ceiling_accuracy)})
    if pgr is not None:
        results.append({"name": "PGR", "value": _fmt(pgr)})
    preview = ", ".join(label_names[:20]) + (f", … ({len(label_names) - 20} more)" if len(label_names) > 20 else "")
    return ModelCard.from_template(
        card_data,
        template_path=template_path("student.md"),
        model_name=model_name,
        repo_id=repo_id,
        architecture=architecture,
        num_labels=len(label_names),
        label_preview=preview,
        loss=loss,
        loss_description=LOSS_DESCRIPTIONS.get(loss, "a custom loss registered with hf_w2s.register_loss."),
        knobs={k: _fmt(v) for k, v in knobs.items()},
        hyperparameters={k: _fmt(v) for k, v in hyperparameters.items()},
        gt_loss_weight=gt_loss_weight,
        base_model_desc=base_model_desc or f"`{base_model}`",
        weak_desc=weak_desc or f"`{weak_supervisor}`",
        dataset_desc=dataset_desc or f"`{dataset}`",
        eval_desc=f"`{eval_dataset}`",
        train_split=train_split,
        eval_split=eval_split,
        max_train_samples=max_train_samples,
        augmentation_desc=augmentation_desc,
        noise_desc=noise_desc,
        results=results,
        pgr_note="PGR = (student − weak) / (ceiling − weak): 0 means no better than the supervisor, 1 means the "
        "ground-truth ceiling." if pgr is not None else None,
        lora=lora,
        command=command,
        hf_w2s_version=__version__,
    )
