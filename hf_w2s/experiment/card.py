"""What the saved student's model card says: rendered from what ran (the record of the saved student run, its
supervisor's record, the ceiling of the same seed) by :func:`hf_w2s.hub.render_student_card`."""

from __future__ import annotations

import json
import os

from ..files import atomic_write
from ..hub import dataset_commit, is_hub_id, lora_load_snippet, render_student_card
from ..metrics import performance_gap_recovered
from ..security import redact_obj

__all__ = ["write_student_card", "augmentation_description", "supervisor_description"]


def augmentation_description(exp, candidate: dict | None = None) -> str:
    """The augmentation a run trained with: its candidate's (chosen on validation), else the config's."""
    c = exp.config
    parts = [f"{name}({', '.join(f'{k}={v}' for k, v in (kwargs or {}).items())})"
             for name, kwargs in (exp.augmentation_spec(candidate) or {}).items()]
    if c.mixup_alpha > 0:
        parts.append(f"mixup α={c.mixup_alpha}")
    if c.cutmix_alpha > 0:
        parts.append(f"CutMix α={c.cutmix_alpha}" + (" (one of the two per batch)" if c.mixup_alpha > 0 else ""))
    return ", ".join(parts) + " (kornia), training only" if parts else "none (the image processor's transform)"


def supervisor_description(w, record: dict | None) -> tuple[str, str]:
    """``(identifier, description)`` of a weak supervisor for the card."""
    if w.source == "noisy_labels":
        what = f"ground truth with {w.label_noise_kind} label noise at rate {w.label_noise_rate} (seed {w.seed})"
        return f"label-noise:{w.label_noise_kind}:{w.label_noise_rate}", what
    if w.source == "weak_labels":
        return w.weak_labels, f"weak labels from `{w.weak_labels}`"
    if w.source == "combine":
        return f"combine:{','.join(w.combine)}", f"a {w.combination} combination of {w.combine}"
    how = ""
    if w.trains:
        n = (record or {}).get("num_train_examples")
        how = f", trained on the ground truth of {n or ''} {w.train_split} examples (saved in `weak_model/`)"
        if w.shots_per_class:
            how += f" ({w.shots_per_class} per class)"
    return w.model, f"`{w.model}`{how}; {'online' if w.online else 'cached'} supervision"


def _candidate(exp, record: dict) -> dict | None:
    """The candidate (training settings chosen on validation) the saved student's run trained with."""
    spec = next((s for s in exp.config.losses if s.label == record.get("loss")), None)
    return next((c for c in exp.candidates(spec) if c["label"] == record.get("candidate")), None)


def write_student_card(exp, folder, record: dict, saved: dict, results: list[dict], repo_id: str | None) -> dict:
    """``README.md`` (the card) and ``w2s_results.json`` of the saved student in ``folder``; returns the summary
    (accuracy, weak and ceiling accuracy, PGR, agreement)."""
    import numpy as np

    from .provenance import card_provenance, check_figures

    check_figures(exp, results, "the card")  # the saved student, its checkpoint and candidate chosen on validation
    by_kind = {}
    for r in results:
        by_kind.setdefault(r.get("kind"), []).append(r)
    w = exp.supervisors.config_of(record["weak"])
    weak = next((r for r in by_kind.get("weak", []) if r.get("weak") == w.name), None)
    weak_acc = None if weak is None else weak.get("test_accuracy")
    ceilings = [r for r in by_kind.get("ceiling", []) if r["seed"] == record["seed"]]
    ceiling_acc = ceilings[0]["test_accuracy"] if ceilings else None
    agreement = None
    if weak is not None and weak.get("test_predictions") is not None:
        agreement = float(np.mean(np.asarray(record["test_predictions"]) == np.asarray(weak["test_predictions"])))
    pgr = None
    if weak_acc is not None and ceiling_acc is not None:
        pgr = performance_gap_recovered(weak_acc, record["test_accuracy"], ceiling_acc)
        pgr = None if pgr != pgr else pgr  # NaN: no gap to recover
    summary = {"accuracy": record["test_accuracy"], "validation_accuracy": record.get("validation_accuracy"),
               "weak_accuracy": weak_acc, "ceiling_accuracy": ceiling_acc, "pgr": pgr, "agreement": agreement,
               "loss": record.get("loss_name"), "seed": record["seed"],
               "provenance": card_provenance(record, weak, ceilings[0] if ceilings else None)}
    data, model = exp.data, exp.model
    card_repo = repo_id or os.path.abspath(str(folder))
    lora = saved.get("lora")
    if lora is not None:
        lora = {**lora, "load_snippet": lora_load_snippet(card_repo, None if model.is_tiny else
                                                          model.model_name_or_path,
                                                          base_subfolder="base_model" if model.is_tiny else None)}
    weak_id, weak_desc = supervisor_description(w, weak)
    splits = exp.splits()
    hyper = dict(saved.get("hyperparameters") or {})
    hyper["evaluated_during_training_on"] = (f"validation: {len(splits['validation'])} examples"
                                             if exp.evaluates else "nothing")
    hub_dataset = is_hub_id(data.dataset)
    card = render_student_card(
        model_name=(repo_id or str(exp.out.resolve())).rstrip("/").split("/")[-1], repo_id=card_repo,
        architecture=saved.get("architecture", "?"), label_names=exp.label_names, loss=record["loss_name"],
        knobs=saved.get("knobs") or {}, hyperparameters=hyper, base_model=model.model_name_or_path,
        weak_supervisor=weak_id, weak_desc=weak_desc,
        dataset=w.weak_labels if w.source == "weak_labels" else data.dataset, eval_dataset=data.dataset,
        # the configuration the data was loaded with (the dataset's default one when the config names none)
        dataset_config=data.dataset_config or (splits["test"].info.config_name if hub_dataset else None),
        dataset_revision=dataset_commit(data.dataset, data.dataset_revision, exp.training.hub_token)
        if hub_dataset else None,
        # the dataset's split the test examples come from (model-index), and what the card's text says of them
        train_split="strong_train", eval_split=data.test_split or data.train_split or "train",
        eval_split_desc=f"test: {len(splits['test'])} examples of the dataset's "
                        f"{data.test_split or data.train_split or 'train'} split, read once",
        accuracy=record["test_accuracy"], weak_accuracy=weak_acc, agreement=agreement, ceiling_accuracy=ceiling_acc,
        extra_metrics={m: record[f"test_{m}"] for m in exp.config.metrics if f"test_{m}" in record},
        gt_loss_weight=float((saved.get("knobs") or {}).get("gt_loss_weight", 0.0)),
        augmentation_desc=augmentation_description(exp, _candidate(exp, record)),  # what ran, not the config's
        noise_desc=weak_desc if w.source == "noisy_labels" else None, lora=lora, command=exp.command,
        max_train_samples=len(splits["strong_train"]) if "strong_train" in splits else None,
        eval_provenance=summary["provenance"].get("accuracy"),
    )
    with atomic_write(os.path.join(str(folder), "README.md")) as f:  # whole or not at all
        f.write(str(card))
    with atomic_write(os.path.join(str(folder), "w2s_results.json")) as f:
        json.dump(redact_obj({**saved, **summary}), f, indent=2)
    return summary
