"""The experiment harness: a weak-to-strong sweep, its results as JSON lines, and the report.

Pipeline: data splits (persisted with ``save_to_disk``; checked disjoint by content hash) → each weak supervisor
(:mod:`.supervision`) → the strong ceiling on ground truth, per seed → one student per weak supervisor × loss × seed.
Each finished run is appended to ``<output_dir>/results.jsonl`` under a key that hashes everything the run depends
on, so an interrupted or extended sweep skips the runs that are done and never reuses a partial one (a run is written
only when it has finished). The report (markdown table + PNG plots) is rebuilt from that file.

The validation protocol: every strong run evaluates on the validation split during training (the curves, the best
checkpoint with ``load_best_model_at_end``, early stopping); where a row (the ceiling or a loss) has several
candidates (``training_candidates`` × the loss's ``candidates``), each is run on the selection seeds and the one with
the best mean validation figure is run on the other seeds. The test split is read once per run, after training, for
the reported figures.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from datasets import Dataset, DatasetDict, load_from_disk

from ..data.loading import column_array, load_image_dataset
from ..data.splits import canonical_columns, check_disjoint, random_subset, w2s_splits
from ..losses import LOSSES
from ..lora import save_lora_student
from ..metrics import evaluate_metric
from ..modeling import build_model, load_image_classifier, load_image_processor, tiny_image_processor
from ..security import redact_obj
from ..trainer.augment import AugmentingCollator, TrainAugmentation
from ..trainer.config import WeakToStrongConfig
from ..trainer.fit import fit
from ..trainer.student_modes import is_peft_model
from .config import SPLIT_NAMES, ExperimentConfig, LossSpec, WeakSupervisorConfig
from .report import choose_candidate
from .store import ResultStore, non_default, slug, stable_hash
from .supervision import Supervision, Supervisors

__all__ = ["Experiment", "RESULTS_FILE", "CONFIG_FILE", "DEFAULT_TRAINING"]

RESULTS_FILE = "results.jsonl"
CONFIG_FILE = "experiment.yaml"
#: training arguments of every strong run unless the config's ``training`` (or a loss entry) says otherwise
DEFAULT_TRAINING = {
    "num_train_epochs": 5,
    "learning_rate": 3e-3,
    "per_device_train_batch_size": 64,
    "per_device_eval_batch_size": 256,
    "logging_steps": 10,
}
#: bump when a change makes old results incomparable (2: four splits, validation protocol)
HARNESS_VERSION = 2
#: the one candidate of a row without candidates
DEFAULT_CANDIDATE = {"label": "default"}


def _mean_metric(log_history: list[dict], name: str) -> float | None:
    values = [entry[name] for entry in log_history if name in entry and "eval_loss" not in entry]
    return float(np.mean(values)) if values else None


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f} %"


class Experiment:
    """Runs one :class:`ExperimentConfig`. ``run()`` does the work; ``report()`` rebuilds the report."""

    def __init__(self, config: ExperimentConfig, log=print):
        self.config = config
        self.out = Path(config.output_dir)
        self.log = log
        self.store = ResultStore(self.out / RESULTS_FILE)
        self.supervisors = Supervisors(self)
        self._splits: DatasetDict | None = None
        self._names: list[str] | None = None
        self._strong_init_path: str | None = None
        self.validate_runs()
        self._check_output_dir()

    # -- planning ------------------------------------------------------------------------------------------------

    def candidates(self, spec: LossSpec | None) -> list[dict]:
        """The candidates of a row (the ceiling: ``spec=None``): ``training_candidates`` × the loss's candidates,
        each ``{label, augmentation?, <run arguments>}``; one default candidate when there are none."""
        training = self.config.training_candidates or [DEFAULT_CANDIDATE]
        own = (spec.candidates if spec else None) or [DEFAULT_CANDIDATE]
        out = []
        for t in training:
            for c in own:
                labels = [x["label"] for x in (t, c) if x is not DEFAULT_CANDIDATE]
                merged = {**{k: v for k, v in t.items() if k != "label"}, **{k: v for k, v in c.items() if k != "label"}}
                out.append({**merged, "label": " + ".join(labels) or "default"})
        return out

    def run_arguments(self, spec: LossSpec | None = None, candidate: dict | None = None) -> dict:
        c = self.config
        extra = {k: v for k, v in (candidate or {}).items() if k not in ("label", "augmentation")}
        args = {**DEFAULT_TRAINING, **c.training, **(spec.knobs if spec else {}), **extra}
        if c.eval_during_training and "eval_strategy" not in args:
            args["eval_strategy"] = "epoch"
        if c.early_stopping_patience:
            args.setdefault("load_best_model_at_end", True)
        if args.get("load_best_model_at_end"):  # the checkpoint is chosen on the validation split
            args.setdefault("save_strategy", args.get("eval_strategy", "epoch"))
            args.setdefault("metric_for_best_model", c.selection_metric)
            args.setdefault("save_total_limit", 1)
        return args

    def augmentation_spec(self, candidate: dict | None = None):
        return (candidate or {}).get("augmentation", self.config.augmentation)

    def validate_runs(self) -> None:
        """Build every run's WeakToStrongConfig once, so a bad knob fails before any compute."""
        for spec in [None, *self.config.losses]:
            for candidate in self.candidates(spec):
                try:
                    self.training_config(spec.name if spec else "ground_truth", seed=0, run_dir=self.out / "_check",
                                         args=self.run_arguments(spec, candidate))
                except (ValueError, TypeError) as err:
                    what = f"loss {spec.label!r}" if spec else "training"
                    if candidate["label"] != "default":
                        what += f", candidate {candidate['label']!r}"
                    raise ValueError(f"{what}: {err}") from err

    @property
    def data_spec(self) -> dict:
        c = self.config
        return {"dataset": c.dataset, "config": c.dataset_config_name, "split": c.dataset_split,
                "test_split": c.test_split, "sizes": c.split_sizes, "seed": c.split_seed,
                "image_column": c.image_column, "label_column": c.label_column}

    def strong_spec(self, candidate: dict | None = None) -> dict:
        c = self.config
        return {"strong": non_default(c.strong_model), "image_size": c.image_size,
                "num_channels": c.num_channels, "augmentation": self.augmentation_spec(candidate),
                "mixup": [c.mixup_alpha, c.cutmix_alpha], "data": self.data_spec, "v": HARNESS_VERSION}

    def weak_key(self, w: WeakSupervisorConfig) -> str:
        spec = non_default(w)
        spec.pop("name", None)
        spec.pop("online", None)  # the same model, cached or online
        if w.source == "combine":  # the members by content, not by name
            spec["combine"] = [self.weak_key(self.supervisors.config_of(n)) for n in w.combine]
        return stable_hash({"weak": spec, "data": self.data_spec, "image_size": self.config.image_size,
                            "num_channels": self.config.num_channels, "v": HARNESS_VERSION})

    def ceiling_key(self, seed: int, candidate: dict | None = None) -> str:
        return stable_hash({"kind": "ceiling", **self.strong_spec(candidate),
                            "training": self.run_arguments(None, candidate), "seed": seed})

    def w2s_key(self, w: WeakSupervisorConfig, spec: LossSpec, seed: int, candidate: dict | None = None) -> str:
        return stable_hash({"kind": "w2s", **self.strong_spec(candidate), "weak": self.weak_key(w),
                            "online": w.online, "loss": spec.name, "training": self.run_arguments(spec, candidate),
                            "seed": seed})

    def seed_order(self) -> tuple[list[int], list[int]]:
        """``(selection seeds, other seeds)``: candidates are compared on the first, the chosen one runs on both."""
        c = self.config
        selection = list(c.selection_seeds or c.seeds)
        return selection, [s for s in c.seeds if s not in selection]

    def _keys_by_role(self) -> dict:
        """Every key this config may produce: ``{"weak": {name: key}, "ceiling": {label: {seed: key}}, "w2s":
        {(weak, loss label): {label: {seed: key}}}}`` (all candidates on all seeds: which ones run depends on the
        choice made on the selection seeds)."""
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
        c = self.config
        selection, others = self.seed_order()
        roles = self._keys_by_role()
        rows = [*([roles["ceiling"]] if c.ceiling else []), *roles["w2s"].values()]
        keys = list(roles["weak"].values())
        for row in rows:
            first = next(iter(row.values()))
            keys += [k[s] for k in row.values() for s in selection] + [first[s] for s in others]
        return keys

    # -- output directory ----------------------------------------------------------------------------------------

    def _check_output_dir(self) -> None:
        """Refuse a non-empty directory that is not an experiment's (before any compute)."""
        if self.out.exists() and any(self.out.iterdir()) and not (self.out / CONFIG_FILE).exists():
            raise ValueError(
                f"output_dir {self.out} exists, is not empty and holds no {CONFIG_FILE}: it is not an experiment "
                "directory, and nothing in it will be overwritten. Choose another output_dir."
            )

    def _claim_output_dir(self) -> None:
        self._check_output_dir()
        self.out.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(redact_obj(self.config.to_dict()), sort_keys=False)
        (self.out / CONFIG_FILE).write_text(text)

    # -- data ----------------------------------------------------------------------------------------------------

    def _source_splits(self) -> DatasetDict:
        c = self.config

        def load(split, where):
            ds = load_image_dataset(c.dataset, split, config_name=c.dataset_config_name)
            return canonical_columns(ds, image_column=c.image_column, label_column=c.label_column, select=True,
                                     where=where)

        source = load(c.dataset_split, c.dataset)
        if not c.test_split:
            return w2s_splits(source, tuple(c.split_sizes), seed=c.split_seed, names=SPLIT_NAMES)
        test = load(c.test_split, f"{c.dataset}[{c.test_split}]")
        dd = w2s_splits(source, (*c.split_sizes[:3], 0), seed=c.split_seed, names=SPLIT_NAMES)
        dd["test"] = random_subset(test, c.split_sizes[3] or None, c.split_seed, strict=True)
        return dd

    def splits(self) -> DatasetDict:
        """The four splits, persisted under ``data/`` (so ``Dataset.map`` caches really hit) and loaded back; their
        disjointness is checked by content hash before anything trains."""
        if self._splits is not None:
            return self._splits
        path = self.out / "data" / f"splits-{stable_hash(self.data_spec)}"
        if not (path / "dataset_dict.json").exists():
            self.log(f"preparing the splits of {self.config.dataset} -> {path}")
            dd = self._source_splits()
            for name, ds in dd.items():
                feature = ds.features["label"]
                if not hasattr(feature, "names"):
                    raise ValueError(f"{self.config.dataset}: the label column {self.config.label_column!r} must be "
                                     f"a ClassLabel (named classes), got {feature}")
            check_disjoint(dd, "image", where=f"the splits of {self.config.dataset}")
            tmp = path.with_name(path.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            # an empty split (size 0: nobody trains on it) cannot be loaded back by datasets: leave it out
            DatasetDict({k: v for k, v in dd.items() if len(v)}).save_to_disk(str(tmp))
            tmp.rename(path)
        self._splits = load_from_disk(str(path))
        self._names = list(self._splits["test"].features["label"].names)
        return self._splits

    @property
    def label_names(self) -> list[str]:
        if self._names is None:
            self.splits()
        return self._names

    # -- strong runs ---------------------------------------------------------------------------------------------

    def training_config(self, loss: str, *, seed: int, run_dir: Path, args: dict, report_to=None,
                        with_eval: bool = True, run_name: str | None = None) -> WeakToStrongConfig:
        args = dict(args)
        if not with_eval:
            args["eval_strategy"] = "no"
            args["load_best_model_at_end"] = False
        return WeakToStrongConfig(
            output_dir=str(run_dir), w2s_loss=loss, seed=seed, run_name=run_name,
            report_to=self.config.report_to if report_to is None else report_to,
            save_strategy=args.pop("save_strategy", "no"), disable_tqdm=args.pop("disable_tqdm", True), **args,
        )

    def fit(self, model, processor, train: Dataset, *, loss: str, seed: int, run_dir: Path, args: dict,
            eval_dataset: Dataset | None = None, augmentation=None, report_to=None, run_name: str | None = None,
            calibration_dataset: Dataset | None = None, mixing: bool = False, weak=None):
        """Train one model (a weak supervisor, a ceiling or a student) as the harness does every run. ``mixing``:
        the config's mixup / CutMix (strong runs); ``weak``: ``(model, processor or None)`` of an online weak
        supervisor."""
        training_args = self.training_config(loss, seed=seed, run_dir=run_dir, args=args, report_to=report_to,
                                             with_eval=eval_dataset is not None, run_name=run_name)
        c = self.config
        weak_model, weak_processor = weak if weak is not None else (None, None)
        collator = AugmentingCollator(image_processor=processor, weak_image_processor=weak_processor,
                                      train_transform=augmentation,
                                      weak_logits_columns=training_args.weak_logits_columns,
                                      mixup_alpha=c.mixup_alpha if mixing else 0.0,
                                      cutmix_alpha=c.cutmix_alpha if mixing else 0.0)
        callbacks = None
        if eval_dataset is not None and c.early_stopping_patience:
            from transformers import EarlyStoppingCallback

            callbacks = [EarlyStoppingCallback(early_stopping_patience=c.early_stopping_patience)]
        # one line per run instead of every log dict; `training: {disable_tqdm: false}` brings the logs back
        return fit(model, training_args, train, eval_dataset=eval_dataset, processor=processor, collator=collator,
                   weak_model=weak_model, weak_processor=weak_processor, calibration_dataset=calibration_dataset,
                   quiet=training_args.disable_tqdm, callbacks=callbacks,
                   logs_root=self.out / "logs")  # TensorBoard: logs/<run name> (weak-…, ceiling-…, student-…)

    def _strong_init(self) -> str | None:
        """Offline pre-training of the strong model (``strong_model.pretrain_dataset``), done once."""
        c, s = self.config, self.config.strong_model
        if not s.pretrain_dataset:
            return None
        if self._strong_init_path is None:
            key = stable_hash({"pretrain": non_default(s), "image_size": c.image_size,
                               "num_channels": c.num_channels, "v": HARNESS_VERSION})
            path = self.out / "strong_init" / key
            if not (path / "model" / "config.json").exists():
                data = canonical_columns(load_image_dataset(s.pretrain_dataset), image_column="image",
                                         label_column="label", select=True, where=s.pretrain_dataset)
                data = random_subset(data, s.pretrain_size, 0, strict=True)
                # the pre-training set is another dataset; it must not hold an image of this experiment's
                # validation or test split
                splits = self.splits()
                check_disjoint({"pretrain": data, "validation": splits["validation"], "test": splits["test"]},
                               "image", where=f"pretrain_dataset {s.pretrain_dataset}")
                names = list(data.features["label"].names)
                model = build_model(s.arch, names, image_size=c.image_size, num_channels=c.num_channels,
                                    width=s.width, depth=s.depth, seed=0)
                processor = tiny_image_processor(c.image_size, c.num_channels)
                self.log(f"pre-training the strong model on {s.pretrain_dataset} ({len(data)} examples)")
                args = {"num_train_epochs": s.pretrain_epochs, "learning_rate": s.pretrain_learning_rate,
                        "per_device_train_batch_size": s.pretrain_batch_size, "logging_steps": 10}
                self.fit(model, processor, data, loss="ground_truth", seed=0, run_dir=path / "run", args=args,
                         report_to="none", run_name="strong-pretraining")
                model.save_pretrained(path / "model.tmp")
                processor.save_pretrained(path / "model.tmp")
                (path / "model.tmp").rename(path / "model")
            self._strong_init_path = str(path / "model")
        return self._strong_init_path

    def strong_model(self, seed: int):
        """A fresh strong model for a run with ``seed`` (the same initialisation for the ceiling and every student
        of that seed) and its image processor."""
        c, s = self.config, self.config.strong_model
        torch.manual_seed(seed)
        checkpoint = s.model or self._strong_init()
        if checkpoint is not None:
            return (load_image_classifier(checkpoint, self.label_names, fresh_head=True, seed=seed),
                    load_image_processor(checkpoint, input_size=s.input_size if s.model else None))
        model = build_model(s.arch, self.label_names, image_size=c.image_size, num_channels=c.num_channels,
                            width=s.width, depth=s.depth, seed=seed)
        return model, tiny_image_processor(c.image_size, c.num_channels)

    def _augmentation(self, processor, candidate: dict | None = None):
        spec = self.augmentation_spec(candidate)
        if not spec:
            return None
        return TrainAugmentation.from_image_processor(processor, crop_scale=None, hflip=False, extra=spec)

    def _strong_run(self, key: str, kind: str, train: Dataset, *, seed: int, loss: str, spec: LossSpec | None,
                    run_dir: Path, run_name: str, extra: dict, supervision: Supervision | None = None,
                    candidate: dict | None = None) -> dict:
        splits = self.splits()
        model, processor = self.strong_model(seed)
        start = time.time()
        knobs, calibration = self.supervisors.student_args(supervision, spec) if supervision else ({}, None)
        trainer = self.fit(model, processor, train, loss=loss, seed=seed, run_dir=run_dir,
                           args={**self.run_arguments(spec, candidate), **knobs},
                           eval_dataset=splits["validation"] if self.config.eval_during_training else None,
                           augmentation=self._augmentation(processor, candidate), run_name=run_name,
                           calibration_dataset=calibration, mixing=True,
                           weak=self.supervisors.online_weak(supervision, processor) if supervision else None)
        validation = self._validation_figures(trainer, splits["validation"])
        # the test split, read once, after training (and after the best checkpoint was loaded back)
        pred = np.asarray(trainer.predict(splits["test"]).predictions).argmax(-1)
        if self.config.save_students:
            save_student(trainer, run_dir / "model", processor)
        history = trainer.state.log_history
        combiner = trainer.weak_combiner
        return {
            "key": key, "kind": kind, "seed": seed, **extra, "candidate": (candidate or DEFAULT_CANDIDATE)["label"],
            **validation,
            "test_accuracy": evaluate_metric("accuracy", pred, column_array(splits["test"], "label"))["accuracy"],
            "best_checkpoint_step": _step_of(trainer.state.best_model_checkpoint),
            "steps": trainer.state.global_step,
            "mean_a": _mean_metric(history, "a"),
            "mean_student_selected": _mean_metric(history, "student_selected"),  # conf_select
            "weak_weights": None if combiner is None else combiner.weights().detach().cpu().tolist(),
            "test_predictions": pred.tolist(),
            "train_seconds": round(time.time() - start, 2),
            "log_history": history,
        }

    @staticmethod
    def _validation_figures(trainer, validation: Dataset) -> dict:
        """Accuracy and cross-entropy of the final model on the validation split (what the candidates are chosen
        by)."""
        logits = torch.as_tensor(np.asarray(trainer.predict(validation).predictions), dtype=torch.float32)
        labels = torch.as_tensor(column_array(validation, "label"), dtype=torch.long)
        return {"validation_accuracy": evaluate_metric("accuracy", logits.numpy(), labels.numpy())["accuracy"],
                "validation_loss": float(torch.nn.functional.cross_entropy(logits, labels))}

    # -- the sweep -----------------------------------------------------------------------------------------------

    def run(self) -> dict[str, dict]:
        """Every planned run that is not done yet, in order: supervisors, ceilings, students (each row: its
        candidates on the selection seeds, then the chosen one on the other seeds)."""
        self._claim_output_dir()
        self.splits()  # the disjointness check, before any training
        for spec in self.config.losses:  # e.g. OpenAI's binary aux_conf on ten classes: refused before training
            LOSSES[spec.name].check_classes(len(self.label_names))
        done = self.store.load()
        progress = _Progress(self.log, len(self.planned_keys()))
        for w in self.config.weak_supervisors:
            self._run_weak(w, done, progress)
        if self.config.ceiling:
            self._run_row(None, None, done, progress)
        for w in self.config.weak_supervisors:
            for spec in self.config.losses:
                self._run_row(w, spec, done, progress)
        return done

    def _record(self, done: dict, record: dict) -> None:
        self.store.append(record)
        done[record["key"]] = record

    def _run_weak(self, w: WeakSupervisorConfig, done: dict, progress) -> None:
        if self.weak_key(w) in done:
            return progress(f"weak {w.name}: done before, skipped")
        record = self.supervisors.of(w).record
        self._record(done, record)
        progress(f"weak {w.name}: test accuracy {_pct(record['test_accuracy'])}, supervision accuracy on the "
                 f"strong split {_pct(record['supervision_accuracy'])}")

    def _run_row(self, w: WeakSupervisorConfig | None, spec: LossSpec | None, done: dict, progress) -> None:
        """One row of the report: every candidate on the selection seeds, then the one chosen on the validation
        split on the other seeds."""
        candidates = self.candidates(spec)
        selection, others = self.seed_order()
        if len(candidates) == 1:
            selection, others = [s for s in self.config.seeds], []
        for seed in selection:
            for candidate in candidates:
                self._run_one(w, spec, seed, candidate, done, progress)
        if not others:
            return
        keys = {c["label"]: {s: self._key(w, spec, s, c) for s in selection} for c in candidates}
        chosen = choose_candidate({label: [done[k] for k in by_seed.values()] for label, by_seed in keys.items()},
                                  self.config.selection_metric)
        candidate = next(c for c in candidates if c["label"] == chosen)
        what = "ceiling" if spec is None else f"{w.name} / {spec.label}"
        self.log(f"{what}: candidate {chosen!r} chosen on the validation split (seeds {selection})")
        for seed in others:
            self._run_one(w, spec, seed, candidate, done, progress)

    def _key(self, w, spec, seed, candidate) -> str:
        return self.ceiling_key(seed, candidate) if spec is None else self.w2s_key(w, spec, seed, candidate)

    def _run_one(self, w, spec, seed: int, candidate: dict, done: dict, progress) -> None:
        key = self._key(w, spec, seed, candidate)
        tag = "" if candidate["label"] == "default" else f" [{candidate['label']}]"
        what = (f"ceiling seed {seed}" if spec is None else f"{w.name} / {spec.label} seed {seed}") + tag
        if key in done:
            return progress(f"{what}: done before, skipped")
        sub = "" if candidate["label"] == "default" else f"/{slug(candidate['label'])}"
        named = "" if candidate["label"] == "default" else f"-{slug(candidate['label'])}"  # one log folder per run
        if spec is None:
            record = self._strong_run(key, "ceiling", self.splits()["strong_train"], seed=seed, loss="ground_truth",
                                      spec=None, run_dir=self.out / "runs" / f"ceiling{sub}" / f"seed{seed}",
                                      run_name=f"ceiling{named}-seed{seed}", extra={}, candidate=candidate)
        else:
            sup = self.supervisors.of(w)
            train = sup.train_dataset
            if not spec.needs_labels and "label" in train.column_names:
                train = train.remove_columns("label")  # the strong split is seen only through weak labels
            record = self._strong_run(
                key, "w2s", train, seed=seed, loss=spec.name, spec=spec,
                run_dir=self.out / "runs" / slug(w.name) / f"{slug(spec.label)}{sub}" / f"seed{seed}",
                run_name=f"student-{slug(spec.label)}{named}-{slug(w.name)}-seed{seed}",
                extra={"weak": w.name, "loss": spec.label, "loss_name": spec.name, "knobs": spec.knobs},
                supervision=sup, candidate=candidate,
            )
        self._record(done, record)
        progress(f"{what}: validation {_pct(record['validation_accuracy'])}, test "
                 f"{_pct(record['test_accuracy'])} ({record['train_seconds']} s)")

    # -- results and report --------------------------------------------------------------------------------------

    def results(self) -> list[dict]:
        """The stored records of this config's runs (records of other configs in the same file are left out)."""
        done = self.store.load()
        roles = self._keys_by_role()
        keys = list(roles["weak"].values())
        for row in [roles["ceiling"], *roles["w2s"].values()]:
            keys += [k for by_seed in row.values() for k in by_seed.values()]
        return [done[k] for k in dict.fromkeys(keys) if k in done]

    def report(self) -> str:
        from .report import write_report

        return write_report(self.config, self.results(), self.out / "report", key_of=self._keys_by_role())


def _step_of(checkpoint: str | None) -> int | None:
    """The step of a ``checkpoint-N`` directory (the best checkpoint), or ``None``."""
    if not checkpoint:
        return None
    tail = Path(checkpoint).name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def save_student(trainer, path: Path, processor) -> None:
    """A trained model as a plain transformers checkpoint with its processor (a LoRA student merged, its adapter in
    ``adapter/``)."""
    if is_peft_model(trainer.model):
        save_lora_student(trainer.model, str(path), image_processor=processor)
    else:
        trainer.save_model(str(path))


class _Progress:
    """``[i/total] message`` lines through the experiment's log."""

    def __init__(self, log, total: int):
        self.log, self.total, self.count = log, total, 0

    def __call__(self, message: str) -> None:
        self.count += 1
        self.log(f"[{self.count}/{self.total}] {message}")
