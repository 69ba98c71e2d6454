"""The strong setting chosen for the task, on validation (``setting_candidates``): the student's input size, what of
it trains (a cached-feature probe, its last blocks, all of it), how long and how regularised — each candidate's
ceiling runs on the selection seeds, the one with the best mean validation figure is kept, and every other run (the
ceiling on the other seeds, every student) is trained in that setting. A student much stronger than its supervisor is
what makes weak-to-strong meaningful; this chooses it on the data at hand, not beforehand.

A candidate is a mapping of ``ModelConfig`` fields (``input_size``, ...), ``cache_features`` and training arguments
(``student_mode``, ``trainable_blocks``, ``num_train_epochs``, ``learning_rate``, ``weight_decay``, ...), with an
optional ``label``.
"""

from __future__ import annotations

import dataclasses

__all__ = ["with_setting", "choose_setting", "recorded_setting", "setting_plan", "SETTING_KIND"]

SETTING_KIND = "setting"


def with_setting(exp, candidate: dict):
    """An :class:`~hf_w2s.experiment.runner.Experiment` like ``exp`` in the setting ``candidate`` (sharing its output
    folder, the splits it persisted and its records; its runs in ``runs/setting-<label>/``)."""
    from ..trainer.config import WeakToStrongConfig
    from .entries import model_fields

    model_keys = {k: v for k, v in candidate.items() if k in model_fields()}
    training_keys = {k: v for k, v in candidate.items() if k not in model_fields() | {"label", "cache_features"}}
    config = dataclasses.replace(exp.config, setting_candidates=[],
                                 cache_features=candidate.get("cache_features", exp.config.cache_features))
    model = dataclasses.replace(exp.model, **model_keys)
    given = set(exp.given) | set(training_keys)
    training = WeakToStrongConfig(**{**{k: getattr(exp.training, k) for k in exp.given}, **training_keys})
    other = type(exp)(config, exp.data, model, training, log=exp.log, verbose=exp.verbose, command=exp.command,
                      given=given)
    other.setting_label = candidate["label"]
    return other


def setting_plan(exp) -> tuple[dict, dict, str]:
    """``(experiment per setting label, {label: {selection seed: ceiling key}}, the key of the choice's record)``."""
    from .store import stable_hash

    selection = list(exp.config.selection_seeds or exp.config.seeds)
    candidates = {c["label"]: with_setting(exp, c) for c in exp.config.setting_candidates}
    keys = {label: {seed: sub.ceiling_key(seed, sub.candidates(None)[0]) for seed in selection}
            for label, sub in candidates.items()}
    return candidates, keys, stable_hash({"kind": SETTING_KIND, "settings": keys})


def recorded_setting(exp, done: dict):
    """The experiment in the setting an earlier run chose (its record in ``done``), or ``None``."""
    candidates, _, key = setting_plan(exp)
    record = done.get(key)
    return None if record is None else (candidates[record["chosen"]], key)


def choose_setting(exp, done: dict, progress, output):
    """Run each setting's ceiling on the selection seeds, keep the best on validation, record the choice; returns
    ``(the experiment in the chosen setting, the key of the choice's record)``."""
    from .provenance import check_figures
    from .report import choose_candidate

    selection = list(exp.config.selection_seeds or exp.config.seeds)
    candidates, keys, key = setting_plan(exp)
    for label, sub in candidates.items():
        for seed in selection:
            sub._run_one(None, None, seed, sub.candidates(None)[0], done, progress, output)
    by_label = {label: [done[k] for k in by_seed.values() if k in done] for label, by_seed in keys.items()}
    metric = exp.config.selection_metric
    check_figures(exp, [r for records in by_label.values() for r in records], "the choice of a setting")
    chosen = choose_candidate(by_label, metric)
    table = {label: [r.get(f"validation_{metric}") for r in records] for label, records in by_label.items()}
    if key not in done:
        exp._record(done, {"key": key, "kind": SETTING_KIND, "chosen": chosen, "metric": metric,
                           "validation": table, "selection_seeds": selection, "role": "selection"})
    exp.log(f"setting {chosen!r} chosen on the validation split by the ceiling (seeds {selection})")
    return candidates[chosen], key

