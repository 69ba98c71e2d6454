"""Cached-feature students in the runner (``cache_features: true``): every strong run of a config whose students are
linear probes trains the student's head on the frozen backbone's features, computed once per split and cached
(:mod:`hf_w2s.data.features`), with the same losses, metrics and validation protocol as any run; the saved student
is the whole model with the trained head put back (a plain ``transformers`` checkpoint)."""

from __future__ import annotations

from ..data.features import FEATURE_COLUMN, FeatureHead, cache_features

__all__ = ["check_cache_features", "as_features", "features_as_pixels"]


def check_cache_features(exp) -> None:
    """What a cached-feature run cannot honour, refused before any compute with the reason."""
    c = exp.config
    if not c.cache_features:
        return
    problems = []
    if exp.training.student_mode != "linear_probe":
        problems.append(f"student_mode is {exp.training.student_mode!r}: cached features are a linear probe's "
                        "(set student_mode linear_probe)")
    if c.augmentation or any(t.get("augmentation") for t in c.training_candidates) or c.mixup_alpha or \
            c.cutmix_alpha:
        problems.append("augmentation / mixup / CutMix change the images every step, and the features are computed "
                        "once from the clean images")
    if exp.model.use_peft:
        problems.append("use_peft trains adapters inside the backbone, whose features are cached frozen")
    online = [w.name for w in c.weak_supervisors if w.online]
    if online:
        problems.append(f"online supervisors {online} need the images of each batch (use their cached labels)")
    if problems:
        raise ValueError("cache_features: " + "; ".join(problems) + ".")


def features_as_pixels(ds, feats):
    """``ds`` with ``feats``'s feature column as ``pixel_values`` (its images dropped): what a cached-feature run
    trains and evaluates on, read as arrays (a head's step is cheap; reading the rows as Python lists is not)."""
    from datasets import concatenate_datasets

    keep = ds.remove_columns([c for c in ("image", FEATURE_COLUMN, "pixel_values") if c in ds.column_names])
    out = concatenate_datasets([keep, feats.select_columns([FEATURE_COLUMN])], axis=1)
    return out.rename_column(FEATURE_COLUMN, "pixel_values").with_format("numpy")


def _features(exp, model, processor, dataset, what: str):
    return cache_features(dataset, model, processor, batch_size=exp.config.label_batch_size,
                          desc=f"features ({what})")


def as_features(exp, model, processor, *, train, validation=None, calibration=None,
                rows_of_strong_split: bool = True) -> dict:
    """The run's datasets with the features as ``pixel_values`` (the images dropped), and the model to train: the
    student's head (:class:`~hf_w2s.data.features.FeatureHead`). The strong split's features are computed on the
    persisted split (shared by every supervisor, loss and seed) when ``train`` holds that split's rows with columns
    added (``rows_of_strong_split``: the ceiling, a supervisor's labels of the split); a training set made elsewhere
    (a weak-labels dataset) gets its own. Returns ``{"model", "train", "validation", "test", "calibration"}``."""
    splits = exp.splits()

    def featured(ds, source, what):
        out = features_as_pixels(ds, _features(exp, model, processor, source, what))
        return exp.split_ids.derived(out, ds)  # its figures are those of ds's split (provenance.py)

    strong = splits.get("strong_train")
    same_rows = strong is not None and rows_of_strong_split
    if same_rows and len(train) != len(strong):
        raise RuntimeError(f"the training set has {len(train)} rows, the strong split {len(strong)}")
    out = {"model": FeatureHead(model),
           "train": featured(train, strong if same_rows else train, "strong split" if same_rows else "training"),
           "validation": featured(splits["validation"] if validation is None else validation, splits["validation"],
                                  "validation"),
           "test": featured(splits["test"], splits["test"], "test"),
           "calibration": None if calibration is None else featured(calibration, calibration, "calibration")}
    return out
