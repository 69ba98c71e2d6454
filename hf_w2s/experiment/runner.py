"""The one runner of hf_w2s: ``hf-w2s train`` (one row, one seed), ``hf-w2s experiment`` and ``hf-w2s demo`` are
all an :class:`Experiment`.

Pipeline: the four splits (:func:`hf_w2s.data.config.build_splits`, persisted with ``save_to_disk`` under
``data/``) → each weak supervisor (:mod:`.supervision`) → the strong ceiling on ground truth, per seed → one student
per weak supervisor × loss × seed → the student with the best validation figure saved in ``student/`` with its card
(and pushed: :mod:`.student`) → the report (:mod:`.report`). Each finished run is appended to ``results.jsonl``
under a key that hashes everything the run depends on, so an interrupted or extended experiment skips the runs that
are done and never reuses a partial one.

The validation protocol: every strong run evaluates on the validation split during training (the curves, the best
checkpoint with ``load_best_model_at_end``, early stopping); a row with several candidates (``training_candidates``
× the loss's ``candidates``) runs each on the selection seeds and the best mean validation figure on the other
seeds; the saved student is chosen on validation too. The test split is read once per run, after training.

Longer than ~400 lines on purpose: :class:`Experiment` is the pipeline's one place (its stages delegate to
supervision, probe, settings, preflight, student and report).
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ..data.config import DataConfig
from ..data.loading import column_array
from ..losses import LOSSES
from ..metrics import METRICS, build_compute_metrics, evaluate_metric
from ..model_config import ModelConfig
from ..modeling import load_image_classifier, load_image_processor, tiny_image_processor
from ..outputs import claim_output_dir
from ..predicting import predicting
from ..security import redact_obj
from ..trainer.config import WeakToStrongConfig
from .config import ExperimentConfig, LossSpec, WeakSupervisorConfig
from .given_labels import build_run_splits
from .plan import DEFAULT_CANDIDATE, HARNESS_VERSION, RunPlan, given_training_arguments
from .provenance import SELECTION, SplitRegistry, check_figures, persist_fingerprints, run_provenance
from .report import choose_candidate
from .store import ResultStore, slug, stable_hash
from .supervision import Supervision, Supervisors

__all__ = ["Experiment", "RESULTS_FILE", "HARNESS_VERSION"]

RESULTS_FILE = "results.jsonl"


def _mean_metric(log_history: list[dict], name: str) -> float | None:
    values = [entry[name] for entry in log_history if name in entry and "eval_loss" not in entry]
    return float(np.mean(values)) if values else None


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f} %"


def _is_main_process() -> bool:
    from ..distributed import process_state

    return process_state().is_main_process


def _barrier() -> None:
    from ..distributed import process_state

    process_state().wait_for_everyone()


class Experiment(RunPlan):
    """Runs one configuration of the one schema. ``run()`` does the work; ``report()`` rebuilds the report.

    Under several processes (``torchrun``, ``accelerate launch``) every process runs the same plan (each training is
    one sharded or data-parallel ``Trainer``); only the main one logs and writes (results, the saved student, the
    report), and the others wait for it where they then read.
    """

    def __init__(self, config: ExperimentConfig, data: DataConfig, model: ModelConfig, training: WeakToStrongConfig,
                 *, log=print, verbose: bool = False, command: str = "", given=None):
        for name, value, cls in (("config", config, ExperimentConfig), ("data", data, DataConfig),
                                 ("model", model, ModelConfig), ("training", training, WeakToStrongConfig)):
            if not isinstance(value, cls):
                raise TypeError(f"Experiment's {name} must be a {cls.__name__}, got {type(value).__name__}")
        if not training.output_dir:
            raise ValueError("output_dir is required: the folder the run writes (splits, runs, results, report, "
                             "student).")
        self.config, self.data, self.model, self.training = config, data, model, training
        self.out = Path(training.output_dir)
        self._log, self.verbose, self.command = log, verbose, command
        self.given = given_training_arguments(training) if given is None else frozenset(given) & {
            f.name for f in dataclasses.fields(WeakToStrongConfig)}
        self.store = ResultStore(self.out / RESULTS_FILE)
        self.supervisors = Supervisors(self)
        self._splits = None
        self._names: list[str] | None = None
        self._strong_init_path: str | None = None
        self.setting_label = self.setting_key = None  # setting_candidates: the chosen setting and its record
        self.validate()

    def log(self, message: str) -> None:
        """A progress line, from the main process only (every process runs the same plan)."""
        if _is_main_process():
            self._log(message)

    # -- data ----------------------------------------------------------------------------------------------------

    def splits(self):
        """The four splits, persisted under ``data/`` (so ``Dataset.map`` caches really hit) and loaded back."""
        from datasets import DatasetDict, load_from_disk

        from ..distributed import process_state

        if self._splits is not None:
            return self._splits
        path = self.out / "data" / f"splits-{stable_hash(self.data_spec)}"
        state = process_state()
        with state.main_process_first():
            if state.is_main_process and not (path / "dataset_dict.json").exists():
                self.log(f"preparing the splits of {self.data.dataset} -> {path}")
                fingerprints = {}  # each split's content fingerprint, from the hashes of the disjointness check
                # a weak-labels dataset may give the strong split (given_labels.build_run_splits)
                dd = build_run_splits(self, decode_images=self.training.check_images, fingerprints=fingerprints)
                tmp = path.with_name(path.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                # an empty split (size 0: nobody trains on it) cannot be loaded back by datasets: left out
                DatasetDict({k: v for k, v in dd.items() if len(v)}).save_to_disk(str(tmp))
                persist_fingerprints(tmp, dd, fingerprints)
                tmp.rename(path)
        self._splits = load_from_disk(str(path))
        # which split each figure is computed on (provenance.py)
        self.split_ids = SplitRegistry.load(path, self._splits, hashed=self.data.check_disjoint,
                                            write=state.is_main_process)
        self._names = list(self._splits["test"].features["label"].names)
        return self._splits

    @property
    def label_names(self) -> list[str]:
        if self._names is None:
            self.splits()
        return self._names

    # -- models --------------------------------------------------------------------------------------------------

    def processor_for(self, source: str | None, input_size: int | None = None, image_size: int | None = None):
        """The image processor of a checkpoint (resized to ``input_size``), or of a tiny model (at ``image_size``,
        default the config's)."""
        from ..modeling import TINY_PREFIX

        m = self.model
        if source is None or source.startswith(TINY_PREFIX):
            return tiny_image_processor(image_size or m.image_size, m.num_channels)
        return load_image_processor(source, input_size=input_size, trust_remote_code=m.trust_remote_code)

    def strong_model(self, seed: int, *, pretrained: bool = True):
        """A fresh student for a run with ``seed`` (the same initialisation for the ceiling and every student of that
        seed) and its image processor; without ``pretrained``, ``model_name_or_path`` as it is (no offline
        pre-training: the preflight's student)."""
        m = self.model
        torch.manual_seed(seed)
        source = (self._strong_init() if pretrained else None) or m.model_name_or_path
        model = load_image_classifier(source, self.label_names, fresh_head=True, seed=seed,
                                      revision=m.model_revision, allow_pickle=m.allow_pickle,
                                      trust_remote_code=m.trust_remote_code, image_size=m.image_size,
                                      num_channels=m.num_channels)
        processor_source = m.image_processor_name_or_path or (None if m.is_tiny and source == m.model_name_or_path
                                                              else source)
        return model, self.processor_for(processor_source, m.input_size)

    def _strong_init(self) -> str | None:
        """Offline pre-training of the tiny student (``pretrain_dataset``), done once."""
        from .supervision import pretrain_student

        if not self.model.pretrain_dataset:
            return None
        if self._strong_init_path is None:
            self._strong_init_path = pretrain_student(self)
        return self._strong_init_path

    # -- training one model ----------------------------------------------------------------------------------------

    def fit(self, model, processor, train, args: WeakToStrongConfig, *, eval_dataset=None, augmentation=None,
            calibration_dataset=None, strong: bool = False, weak=None, resume_from_checkpoint=None,
            build_only: bool = False):
        """Train one model (a weak supervisor, a ceiling or a student) as every run is trained. ``strong``: a
        ceiling or a student (the config's mixup / CutMix, LoRA with ``use_peft``); ``weak``: ``(model, processor or
        None)`` of an online supervisor; ``build_only``: the trainer, not trained (the preflight's)."""
        from ..trainer.augment import AugmentingCollator
        from ..trainer.fit import fit

        c = self.config
        weak_model, weak_processor = weak if weak is not None else (None, None)
        collator = AugmentingCollator(image_processor=processor, weak_image_processor=weak_processor,
                                      train_transform=augmentation, weak_logits_columns=args.weak_logits_columns,
                                      mixup_alpha=c.mixup_alpha if strong else 0.0,
                                      cutmix_alpha=c.cutmix_alpha if strong else 0.0)
        callbacks = None
        if eval_dataset is not None and c.early_stopping_patience:
            from transformers import EarlyStoppingCallback

            callbacks = [EarlyStoppingCallback(early_stopping_patience=c.early_stopping_patience)]
        return fit(model, args, train, eval_dataset=eval_dataset, processor=processor, collator=collator,
                   weak_model=weak_model, weak_processor=weak_processor, calibration_dataset=calibration_dataset,
                   compute_metrics=build_compute_metrics(c.metrics),
                   quiet=args.disable_tqdm, callbacks=callbacks, logs_root=self.out / "logs",
                   peft_config=self.model.get_peft_config() if strong else None,
                   resume_from_checkpoint=resume_from_checkpoint, train=not build_only)

    def augmentation(self, processor, candidate: dict | None = None):
        from ..trainer.augment import TrainAugmentation

        spec = self.augmentation_spec(candidate)
        if not spec:
            return None
        return TrainAugmentation.from_spec(processor, spec)

    def _strong_run(self, key: str, kind: str, train, *, seed: int, loss: str, spec: LossSpec | None, run_dir: Path,
                    run_name: str, extra: dict, supervision: Supervision | None = None,
                    candidate: dict | None = None, output=None) -> tuple[dict, object]:
        from .student import resume_point

        splits = self.splits()
        model, processor = self.strong_model(seed)
        start = time.time()
        knobs, calibration = self.supervisors.student_args(supervision, spec)
        pushes = output.trainer_pushes() if output is not None and spec is not None else {}
        validation_ds, test_ds, full_model = splits["validation"], splits["test"], None
        if supervision is not None and self.config.selection_protocol == "weak_labels":
            validation_ds = self.supervisors.weak_labelled_validation(supervision)  # no ground truth to choose by
        if self.config.cache_features:  # the student's head on the frozen backbone's cached features
            from .probe import as_features

            shared = supervision is None or supervision.rows_of_strong_split
            f = as_features(self, model, processor, train=train, validation=validation_ds, calibration=calibration,
                            rows_of_strong_split=shared)
            full_model, model, train, calibration = model, f["model"], f["train"], f["calibration"]
            validation_ds, test_ds, knobs = f["validation"], f["test"], {**knobs, "student_mode": "full"}
        args = self.run_args(loss, seed=seed, run_dir=run_dir, run_name=run_name,
                             overrides={**self.row_arguments(spec, candidate), **knobs}, with_eval=True)
        if pushes:
            args = dataclasses.replace(args, **pushes)
        trainer = self.fit(model, None if full_model is not None else processor, train, args,
                           eval_dataset=validation_ds if self.evaluates else None,
                           augmentation=None if full_model is not None else self.augmentation(processor, candidate),
                           calibration_dataset=calibration, strong=True,
                           weak=self.supervisors.online_weak(supervision, processor),
                           resume_from_checkpoint=resume_point(self, run_dir, student=spec is not None))
        if full_model is not None:
            from ..data.features import put_head_back

            trainer.full_model = put_head_back(full_model, trainer.model)  # what is saved: the whole model
        validation = self._validation_figures(trainer, validation_ds)
        misfit = self._misfit(trainer, train) if spec is not None else None
        # the test split, read once, after training (and after the best checkpoint was loaded back)
        with predicting(trainer.model):
            logits = np.asarray(trainer.predict(test_ds).predictions)
        pred = logits.argmax(-1)
        history = trainer.state.log_history
        combiner = trainer.weak_combiner
        record = {
            "key": key, "kind": kind, "seed": seed, **extra, "candidate": (candidate or DEFAULT_CANDIDATE)["label"],
            **validation,
            "test_accuracy": evaluate_metric("accuracy", pred, column_array(splits["test"], "label"))["accuracy"],
            **{f"test_{m}": METRICS[m](logits, column_array(splits["test"], "label"))
               for m in self.config.metrics if m != "accuracy"},
            "best_checkpoint_step": _step_of(trainer.state.best_model_checkpoint),
            "steps": trainer.state.global_step,
            "mean_a": _mean_metric(history, "a"),
            "mean_student_selected": _mean_metric(history, "student_selected"),  # conf_select
            "weak_weights": None if combiner is None else combiner.weights().detach().cpu().tolist(),
            "test_predictions": pred.tolist(),
            "train_misfit": misfit,  # disagreement with the supervisor on its own training split (no ground truth)
            "train_seconds": round(time.time() - start, 2),
            "log_history": history,
        }
        # the split each figure was computed on, stamped from the datasets really used (provenance.py)
        record["provenance"] = {**validation.pop("provenance"), **run_provenance(self, trainer, test_ds, record)}
        return record, (trainer, processor)

    @staticmethod
    def _misfit(trainer, train) -> float | None:
        """The student's disagreement with its supervisor's labels on the split it trained on: readable without
        ground truth (Charikar et al. 2024: the gain over a supervisor is at least this misfit for a convex strong
        class)."""
        from ..data.weak_labels import weak_logits_array
        from ..stats import misfit

        if "weak_logits" not in train.column_names:
            return None  # several supervisors combined, or online: no one labelling to compare with
        student = np.asarray(trainer.predict(train).predictions).argmax(-1)
        return misfit(student, weak_logits_array(train).argmax(-1))

    def _validation_figures(self, trainer, validation) -> dict:
        """Accuracy and cross-entropy of the final model on the validation split (what candidates and the saved
        student are chosen by), and their ``provenance``: the split they were computed on."""
        with predicting(trainer.model):
            logits = torch.as_tensor(np.asarray(trainer.predict(validation).predictions), dtype=torch.float32)
        labels = torch.as_tensor(column_array(validation, "label"), dtype=torch.long)
        return {"validation_accuracy": evaluate_metric("accuracy", logits.numpy(), labels.numpy())["accuracy"],
                "validation_loss": float(torch.nn.functional.cross_entropy(logits, labels)),
                "provenance": self.split_ids.stamp(validation, SELECTION, "validation_accuracy", "validation_loss")}

    # -- the whole run -------------------------------------------------------------------------------------------

    def claim_output_dir(self) -> None:
        config = redact_obj({"runs": self.config.to_dict(), "data": dataclasses.asdict(self.data),
                             "model": dataclasses.asdict(self.model),
                             "training": {k: self.training.to_dict()[k] for k in sorted(self.given)}})
        if _is_main_process():
            claim_output_dir(self.out, config, overwrite=self.training.overwrite_output_dir, command=self.command)

    def run(self) -> dict[str, dict]:
        """Every planned run that is not done yet, in order: supervisors, ceilings, students (each row: its
        candidates on the selection seeds, then the chosen one on the other seeds); then the saved student."""
        from .student import StudentOutput

        finished = self._finished_resume()
        if finished is not None:  # a finished run resumed: it says so, and nothing is trained or rewritten
            return finished
        output = StudentOutput(self)
        output.prepare()  # the Hub repo and a checkpoint to resume from, before any compute
        self.claim_output_dir()
        self.splits()  # the data checks and the disjointness check, before any training
        for spec in self.config.losses:  # e.g. OpenAI's binary aux_conf on ten classes: refused before training
            LOSSES[spec.name].check_classes(len(self.label_names))
        done = self.store.load()
        from .preflight import preflight

        preflight(self, done)  # reruns, and every model on one batch of the run's own data, before anything trains
        progress = _Progress(self.log, len(self.planned_keys()))
        gc.collect()
        gc.freeze()  # what lives now (libraries, the splits) is never garbage: each run's collection skips it
        if self.config.setting_candidates:  # the student's setting, chosen by the ceiling on validation
            from .settings import choose_setting

            self.adopt(*choose_setting(self, done, progress, output))
            progress.total = progress.count + len(self.planned_keys())  # every run of the setting is counted
        for w in self.config.weak_supervisors:
            self._run_weak(w, done, progress)
        if self.config.ceiling:
            self._run_row(None, None, done, progress, output)
        for w in self.config.weak_supervisors:
            for spec in self.config.losses:
                self._run_row(w, spec, done, progress, output)
        output.finish(self.results())  # the main process; the others then read what it wrote
        _barrier()
        return done

    def _finished_resume(self) -> dict | None:
        """With ``resume_from_checkpoint``, when ``results.jsonl`` holds every planned run: says the run is finished
        and returns the records (nothing trains, and neither its config, its student nor its card is rewritten);
        else ``None``."""
        from ..checkpoints import resume_target

        if resume_target(self.training.resume_from_checkpoint, hub=bool(self.training.push_to_hub)) is None:
            return None
        done = self.store.load()
        keys = self.planned_keys()
        if not keys or any(key not in done for key in keys):
            return None
        self.log(f"the run in {self.out} is finished (results.jsonl records all {len(keys)} of its runs): resuming "
                 "it from its checkpoints trains nothing and changes nothing.")
        return done

    def _record(self, done: dict, record: dict) -> None:
        """Append a finished run to the results (the main process), which every process then reads alike."""
        if _is_main_process():
            self.store.append(record)
        _barrier()
        done[record["key"]] = record

    def _run_weak(self, w: WeakSupervisorConfig, done: dict, progress) -> None:
        if self.weak_key(w) in done:
            return progress(f"weak {w.name}: done before, skipped")
        record = self.supervisors.of(w).record
        self._record(done, record)
        progress(f"weak {w.name}: test accuracy {_pct(record['test_accuracy'])}, supervision accuracy on the "
                 f"strong split {_pct(record['supervision_accuracy'])}")

    def _run_row(self, w, spec, done: dict, progress, output) -> None:
        """One row of the report: every candidate on the selection seeds, then the one chosen on the validation
        split on the other seeds."""
        candidates = self.candidates(spec)
        selection, others = self.seed_order()
        if len(candidates) == 1:
            selection, others = list(self.config.seeds), []
        for seed in selection:
            for candidate in candidates:
                self._run_one(w, spec, seed, candidate, done, progress, output)
        if not others:
            return
        keys = {c["label"]: {s: self._key(w, spec, s, c) for s in selection} for c in candidates}
        by_label = {label: [done[k] for k in by_seed.values()] for label, by_seed in keys.items()}
        check_figures(self, [r for records in by_label.values() for r in records], "the choice of a candidate")
        chosen = choose_candidate(by_label, self.config.selection_metric)
        candidate = next(c for c in candidates if c["label"] == chosen)
        what = "ceiling" if spec is None else f"{w.name} / {spec.label}"
        self.log(f"{what}: candidate {chosen!r} chosen on the validation split (seeds {selection})")
        for seed in others:
            self._run_one(w, spec, seed, candidate, done, progress, output)

    def _run_one(self, w, spec, seed: int, candidate: dict, done: dict, progress, output) -> None:
        key = self._key(w, spec, seed, candidate)
        tag = "" if candidate["label"] == "default" else f" [{candidate['label']}]"
        what = (f"ceiling seed {seed}" if spec is None else f"{w.name} / {spec.label} seed {seed}") + tag
        if key in done:
            return progress(f"{what}: done before, skipped")
        named = "" if candidate["label"] == "default" else f"-{slug(candidate['label'])}"  # one log folder per run
        run_dir = self.run_dir(w, spec, seed, candidate)
        if spec is None:
            record, (trainer, processor) = self._strong_run(
                key, "ceiling", self.splits()["strong_train"], seed=seed, loss="ground_truth", spec=None,
                run_dir=run_dir, run_name=f"ceiling{named}-seed{seed}", extra={}, candidate=candidate)
        else:
            sup = self.supervisors.of(w)
            train = sup.train_dataset
            if not self.needs_labels(spec) and "label" in train.column_names:
                train = train.remove_columns("label")  # the strong split is seen only through weak labels
            record, (trainer, processor) = self._strong_run(
                key, "w2s", train, seed=seed, loss=spec.name, spec=spec, run_dir=run_dir,
                run_name=f"student-{slug(spec.label)}{named}-{slug(w.name)}-seed{seed}",
                extra={"weak": w.name, "loss": spec.label, "loss_name": spec.name, "knobs": spec.knobs},
                supervision=sup, candidate=candidate, output=output)
            output.consider(record, trainer, processor, w, spec)
        if self.config.save_students:
            from .student import save_model

            save_model(trainer, run_dir / "model", processor)
        self._record(done, record)
        progress(f"{what}: validation {_pct(record['validation_accuracy'])}, test "
                 f"{_pct(record['test_accuracy'])} ({record['train_seconds']} s)")

    # -- results and report --------------------------------------------------------------------------------------

    def adopt(self, other, setting_key: str) -> None:
        """Continue in the setting ``other`` was built with (``setting_candidates``: the one chosen on
        validation)."""
        self.config, self.model, self.training, self.given = other.config, other.model, other.training, other.given
        self.setting_label, self.setting_key = other.setting_label, setting_key

    def results(self) -> list[dict]:
        """The stored records of this config's runs (records of other configs in the same file are left out)."""
        done = self.store.load()
        roles = self.keys_by_role()
        keys = list(roles["weak"].values()) + ([self.setting_key] if self.setting_key else [])
        for row in [roles["ceiling"], *roles["w2s"].values()]:
            keys += [k for by_seed in row.values() for k in by_seed.values()]
        return [done[k] for k in dict.fromkeys(keys) if k in done]

    def report(self) -> str:
        if self.config.setting_candidates and self.setting_key is None:  # rebuilt later: the recorded choice
            from .settings import recorded_setting

            found = recorded_setting(self, self.store.load())
            if found is not None:
                self.adopt(*found)
        """The report's markdown, written with its plots under ``report/`` (by the main process)."""
        from .report import write_report

        text = write_report(self, self.results(), self.out / "report", write=_is_main_process())
        _barrier()
        return text


def _step_of(checkpoint: str | None) -> int | None:
    """The step of a ``checkpoint-N`` directory (the best checkpoint), or ``None``."""
    if not checkpoint:
        return None
    tail = Path(checkpoint).name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


class _Progress:
    """``[i/total] message`` lines through the experiment's log."""

    def __init__(self, log, total: int):
        self.log, self.total, self.count = log, total, 0

    def __call__(self, message: str) -> None:
        self.count += 1
        self.log(f"[{self.count}/{self.total}] {message}")
