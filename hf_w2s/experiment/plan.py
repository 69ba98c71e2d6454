"""What an :class:`~hf_w2s.experiment.runner.Experiment` plans before it trains anything: the checks of a config
(before any compute), the candidates of each row, the training arguments of each run (built afresh from the ones the
config sets, the runner's mechanics, the row's values and what the runner sets itself), and the key of each run — a
hash of everything the run depends on, under which ``results.jsonl`` keeps it — and its folder.

:class:`RunPlan` is the part of ``Experiment`` that reads only the options (``config``, ``data``, ``model``,
``training``, ``given``, ``out``): no data, model or process state.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..losses import LOSSES
from ..trainer.config import WeakToStrongConfig
from .config import LossSpec, WeakSupervisorConfig
from .store import non_default, slug, stable_hash

__all__ = ["RunPlan", "HARNESS_VERSION", "DEFAULT_CANDIDATE", "RUN_MECHANICS", "given_training_arguments"]

#: bump when a change makes old results incomparable (3: the one schema of 0.3; 4: figures carry their provenance)
HARNESS_VERSION = 4
#: the one candidate of a row without candidates
DEFAULT_CANDIDATE = {"label": "default"}
#: how the runner runs each strong run unless the training arguments say otherwise (how it is evaluated, saved and
#: logged: never what is learned)
RUN_MECHANICS = {"save_strategy": "no", "logging_steps": 10}


def _value(option) -> str:
    return str(getattr(option, "value", option))


#: training arguments TrainingArguments derives from others when they are not given (never "given" by themselves)
_DERIVED = frozenset({"do_eval", "greater_is_better", "logging_dir", "disable_tqdm"})


def given_training_arguments(training: WeakToStrongConfig) -> frozenset[str]:
    """The training arguments a config built in Python sets (they differ from their defaults; what the runner leaves
    alone). The command line and config files say exactly what they set (``Experiment(given=...)``)."""
    defaults = WeakToStrongConfig(output_dir=training.output_dir, report_to="none")
    given = {f.name for f in dataclasses.fields(training) if f.init and f.name not in _DERIVED
             and getattr(training, f.name) != getattr(defaults, f.name)}
    if training.load_best_model_at_end and training.metric_for_best_model == "loss":
        given.discard("metric_for_best_model")  # TrainingArguments' own default when load_best_model_at_end
    return frozenset(given)


class RunPlan:
    """The planning half of :class:`~hf_w2s.experiment.runner.Experiment` (see the module doc)."""

    # -- checks before any compute -------------------------------------------------------------------------------

    def validate(self) -> None:
        """Everything that can be checked before data or models are loaded: the splits the rows need, selection on
        validation only, and every run's training arguments (built once)."""
        c, sizes = self.config, self.data.split_sizes
        metric = str(self.training.metric_for_best_model or "")
        if metric.startswith(("test", "eval_test")):
            raise ValueError(f"metric_for_best_model={metric!r} would choose the checkpoint on the test split; "
                             "checkpoints are chosen on the validation split (eval_accuracy / eval_loss).")
        from .probe import check_cache_features

        check_cache_features(self)
        from .preflight import check_options

        check_options(self)  # inputs outside output_dir; options the chosen path would ignore
        if c.early_stopping_patience and not self.evaluates:
            raise ValueError("early_stopping_patience stops on the validation split: set eval_strategy (epoch or "
                             "steps) and save_strategy to the same, with load_best_model_at_end true.")
        for w in c.weak_supervisors:
            if w.trains and w.train_split == "weak_train" and sizes[0] == 0:
                raise ValueError(f"weak supervisor {w.name!r} trains on weak_train, but split_sizes[0] is 0.")
            if w.model and not self.model.allow_pickle:  # pickled weights: refused now, not once the splits exist
                from ..modeling import refuse_pickle_only

                refuse_pickle_only(w.model)
        from .given_labels import given_strong_split

        if sizes[1] == 0 and not given_strong_split(self) and (
                c.ceiling or any(w.source != "weak_labels" for w in c.weak_supervisors)):
            raise ValueError("split_sizes[1] (the strong split) is 0.")
        if sizes[3] == 0 and not self.data.test_split:
            raise ValueError("split_sizes[3] (the test split) is 0: give it a size, or test_split.")
        if self.training.push_to_hub and not self.config.student_rows:
            raise ValueError("push_to_hub pushes the saved student, but the config trains none (no loss listed).")
        for spec in [None, *c.losses]:
            for candidate in self.candidates(spec):
                try:
                    self.run_args(spec.name if spec else "ground_truth", seed=0, run_dir=self.out / "_check",
                                  overrides=self.row_arguments(spec, candidate), with_eval=True)
                except (ValueError, TypeError) as err:
                    what = f"loss {spec.label!r}" if spec else "the ceiling's training arguments"
                    if candidate["label"] != "default":
                        what += f", candidate {candidate['label']!r}"
                    raise ValueError(f"{what}: {err}") from None
        for w in c.weak_supervisors:
            if w.trains:
                try:
                    self.weak_args(w, self.out / "_check")
                except (ValueError, TypeError) as err:
                    raise ValueError(f"weak supervisor {w.name!r}: {err}") from None

    @property
    def evaluates(self) -> bool:
        """Whether strong runs evaluate during training (``eval_strategy``): always on the validation split."""
        return _value(self.training.eval_strategy) != "no"

    # -- planning ------------------------------------------------------------------------------------------------

    def candidates(self, spec: LossSpec | None) -> list[dict]:
        """The candidates of a row (the ceiling: ``spec=None``): ``training_candidates`` × the loss's candidates,
        each ``{label, augmentation?, <training arguments>}``; one default candidate when there are none."""
        training = self.config.training_candidates or [DEFAULT_CANDIDATE]
        own = (spec.candidates if spec else None) or [DEFAULT_CANDIDATE]
        out = []
        for t in training:
            for c in own:
                labels = [x["label"] for x in (t, c) if x is not DEFAULT_CANDIDATE]
                merged = {k: v for x in (t, c) for k, v in x.items() if k != "label"}
                out.append({**merged, "label": " + ".join(labels) or "default"})
        return out

    def row_arguments(self, spec: LossSpec | None = None, candidate: dict | None = None) -> dict:
        """The training arguments a row sets over the base ones (its loss's knobs, its candidate's values)."""
        extra = {k: v for k, v in (candidate or {}).items() if k not in ("label", "augmentation")}
        args = {**(spec.knobs if spec else {"gt_loss_weight": 0.0}), **extra}
        if self.config.early_stopping_patience:
            args.setdefault("load_best_model_at_end", True)
        return args

    def needs_labels(self, spec: LossSpec) -> bool:
        """Whether a row's students read the strong split's ground truth (a loss with true labels, or a ground-truth
        term from the row or the config)."""
        base = self.training.gt_loss_weight if "gt_loss_weight" in self.given else 0.0
        weights = [self.row_arguments(spec, c).get("gt_loss_weight", base) for c in self.candidates(spec)]
        return LOSSES[spec.name].needs_labels or any(float(w) > 0 for w in weights)

    def run_args(self, loss: str, *, seed: int, run_dir: Path, overrides: dict, with_eval: bool,
                 run_name: str | None = None) -> WeakToStrongConfig:
        """The training arguments of one run, built afresh (what TrainingArguments derives is derived again): the
        ones the config sets, the runner's mechanics where it sets none, the row's ``overrides``, and what the runner
        sets for every run (its folder, loss, seed and name). ``with_eval``: evaluate on the validation split as the
        config says (strong runs); without it, no evaluation and no checkpoints (a weak supervisor)."""
        args = {k: v for k, v in RUN_MECHANICS.items() if k not in self.given}
        args.update({k: getattr(self.training, k) for k in self.given})
        args["disable_tqdm"] = self.training.disable_tqdm if "disable_tqdm" in self.given else not self.verbose
        args.update(overrides)
        if not with_eval:
            args.update(eval_strategy="no", load_best_model_at_end=False, save_strategy="no")
        if args.get("load_best_model_at_end"):  # the checkpoint chosen on the validation split
            for name, value in (("save_strategy", args.get("eval_strategy", "no")),
                                ("metric_for_best_model", self.config.selection_metric), ("save_total_limit", 1)):
                if name not in self.given and name not in overrides:
                    args[name] = value
        args.update(output_dir=str(run_dir), w2s_loss=loss, seed=seed, run_name=run_name, image_column="image",
                    push_to_hub=False, hub_model_id=None, resume_from_checkpoint=None)
        return WeakToStrongConfig(**args)

    def weak_args(self, w: WeakSupervisorConfig, run_dir: Path) -> WeakToStrongConfig:
        """A weak supervisor's training: the base arguments with its own, ground truth, every weight, no evaluation
        or checkpoints."""
        overrides = {"num_train_epochs": w.num_train_epochs, "learning_rate": w.learning_rate,
                     "per_device_train_batch_size": w.per_device_train_batch_size, "weight_decay": w.weight_decay,
                     "gt_loss_weight": 0.0, "student_mode": "full", "layer_decay": 1.0, "max_steps": -1,
                     "channels_last": False, **w.training_args}
        return self.run_args("ground_truth", seed=w.seed, run_dir=run_dir, overrides=overrides, with_eval=False,
                             run_name=f"weak-{slug(w.name)}")

    def augmentation_spec(self, candidate: dict | None = None):
        return (candidate or {}).get("augmentation", self.config.augmentation)

    @property
    def data_spec(self) -> dict:
        from .given_labels import strong_split_spec

        return {**self.data.identity(), **strong_split_spec(self), "v": HARNESS_VERSION}

    def model_spec(self) -> dict:
        return {**non_default(self.model), "image_size": self.model.image_size,
                "num_channels": self.model.num_channels}

    def strong_spec(self, candidate: dict | None = None) -> dict:
        c = self.config
        return {"strong": self.model_spec(), "augmentation": self.augmentation_spec(candidate),
                "mixup": [c.mixup_alpha, c.cutmix_alpha], "data": self.data_spec,
                **({"cache_features": True} if c.cache_features else {})}

    def training_spec(self, spec: LossSpec | None, candidate: dict | None) -> dict:
        base = {k: v for k, v in self.training.to_dict().items() if k in self.given and not k.startswith(
            ("output_dir", "logging", "report_to", "push_to_hub", "hub_", "resume_from", "overwrite", "disable_tqdm",
             "run_name", "save_", "dataloader_"))}
        return {**base, **self.row_arguments(spec, candidate)}

    def weak_key(self, w: WeakSupervisorConfig) -> str:
        spec = non_default(w)
        spec.pop("name", None)
        spec.pop("online", None)  # the same model, cached or online
        if w.source == "combine":  # the members by content, not by name
            spec["combine"] = [self.weak_key(self.supervisors.config_of(n)) for n in w.combine]
        return stable_hash({"weak": spec, "data": self.data_spec, "image_size": self.model.image_size,
                            "num_channels": self.model.num_channels})

    def ceiling_key(self, seed: int, candidate: dict | None = None) -> str:
        return stable_hash({"kind": "ceiling", **self.strong_spec(candidate),
                            "training": self.training_spec(None, candidate), "seed": seed})

    def w2s_key(self, w: WeakSupervisorConfig, spec: LossSpec, seed: int, candidate: dict | None = None) -> str:
        protocol = {} if self.config.selection_protocol == "ground_truth" else {"selection": "weak_labels"}
        return stable_hash({"kind": "w2s", **self.strong_spec(candidate), **protocol, "weak": self.weak_key(w),
                            "online": w.online, "loss": spec.name, "training": self.training_spec(spec, candidate),
                            "seed": seed})

    def seed_order(self) -> tuple[list[int], list[int]]:
        """``(selection seeds, other seeds)``: candidates are compared on the first, the chosen one runs on both."""
        c = self.config
        selection = list(c.selection_seeds or c.seeds)
        return selection, [s for s in c.seeds if s not in selection]

    def keys_by_role(self) -> dict:
        """Every key this config may produce: ``{"weak": {name: key}, "ceiling": {label: {seed: key}}, "w2s":
        {(weak, loss label): {label: {seed: key}}}}``."""
        c = self.config
        ceiling = {cand["label"]: {s: self.ceiling_key(s, cand) for s in c.seeds} for cand in self.candidates(None)}
        return {
            "weak": {w.name: self.weak_key(w) for w in c.weak_supervisors},
            "ceiling": ceiling if c.ceiling else {},
            "w2s": {(w.name, spec.label): {cand["label"]: {s: self.w2s_key(w, spec, s, cand) for s in c.seeds}
                                           for cand in self.candidates(spec)}
                    for w in c.weak_supervisors for spec in c.losses},
        }

    def planned_keys(self) -> list[str]:
        """The runs to do (with candidates: all of them on the selection seeds, one per other seed)."""
        selection, others = self.seed_order()
        roles = self.keys_by_role()
        keys = list(roles["weak"].values())
        for row in [*([roles["ceiling"]] if roles["ceiling"] else []), *roles["w2s"].values()]:
            first = next(iter(row.values()))
            keys += [k[s] for k in row.values() for s in selection] + [first[s] for s in others]
        return keys
    def _key(self, w, spec, seed, candidate) -> str:
        return self.ceiling_key(seed, candidate) if spec is None else self.w2s_key(w, spec, seed, candidate)

    def run_dir(self, w, spec, seed: int, candidate: dict) -> Path:
        sub = "" if candidate["label"] == "default" else f"/{slug(candidate['label'])}"
        runs = self.out / "runs"
        if getattr(self, "setting_label", None):  # setting_candidates: each setting's runs in a folder of their own
            runs = runs / f"setting-{slug(self.setting_label)}"
        if spec is None:
            return runs / f"ceiling{sub}" / f"seed{seed}"
        return runs / slug(w.name) / f"{slug(spec.label)}{sub}" / f"seed{seed}"

