"""The preflight: one stage every command passes after its options are read and before anything trains or labels, so
that a run proves it can finish before it spends any compute. ``hf-w2s train`` / ``experiment`` / ``demo``:
:func:`check_options` (when the options are checked) and :func:`preflight` (from ``Experiment.run``, once the splits
exist); ``hf-w2s label``: :func:`check_labelling`.

* :func:`check_options` — where the run writes (``output_dir`` is not, does not hold and is not inside one of its
  inputs: :func:`hf_w2s.outputs.check_outside_inputs`), and options the chosen path would ignore (label noise that
  supervises no student, fp16 / bf16 where the device cannot run them);
* :func:`check_reruns` — an ``output_dir`` holding a run of this configuration that did not finish (checkpoints, no
  record in ``results.jsonl``) is refused with the two ways out, ``resume_from_checkpoint true`` or
  ``overwrite_output_dir true``;
* :func:`check_models` — every model the run will use is built (each weak supervisor, the ceiling's and every loss
  row's and candidate's student, by the trainer's own construction: LoRA targets, trainable blocks and student mode
  applied), one real batch of the run's own data goes through each with its own processor and augmentation, each
  student takes one forward and backward step of its row's loss, and one evaluation step runs with the run's
  metrics (``metric_for_best_model`` must name one of them). The student is built once and copied for each check;
  checks that would be identical (the same loss, knobs, training arguments, augmentation and kind of supervision)
  run once; with ``cache_features`` each check is what that run trains — the student's head on a batch of features,
  the backbone's forward computed once for all of them (through the run's own ``cache_features``, in memory).

Nothing is written: the trainers work in a temporary folder that is removed, reporting is off, the random state is
restored. ``benchmarks/preflight.py`` measures the cost against the smallest shipped config's run (``--cached``: a
cached-feature EfficientNet-Lite0 sweep's).

Longer than ~400 lines on purpose: everything that runs before training is in this one file, so what a run
proves before it spends compute can be read at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["check_options", "run_inputs", "preflight", "check_reruns", "check_models", "check_labelling",
           "PREFLIGHT_ROWS"]

#: rows of each split a preflight step reads (and its batch size, at most)
PREFLIGHT_ROWS = 4


# -- when the options are checked -----------------------------------------------------------------------------------


def run_inputs(exp) -> list[tuple[str, str]]:
    """``(what, path)`` of everything a run reads that may be a local folder."""
    d, m = exp.data, exp.model
    inputs = [("dataset", d.dataset), ("dataset's data_dir", d.data_dir), ("student model", m.model_name_or_path),
              ("student's image processor", m.image_processor_name_or_path), ("pretrain_dataset", m.pretrain_dataset),
              ("checkpoint to resume from", exp.training.resume_from_checkpoint)]
    for w in exp.config.weak_supervisors:
        inputs += [(f"weak supervisor {w.name!r}'s model", w.model),
                   (f"weak supervisor {w.name!r}'s image processor", w.image_processor),
                   (f"weak supervisor {w.name!r}'s weak labels", w.weak_labels)]
    return [(what, str(path)) for what, path in inputs if path and str(path).lower() not in ("true", "false")]


def check_options(exp) -> None:
    """Before anything is loaded: the output folder holds none of the run's inputs (a checkpoint of its own to
    resume from excepted), label noise supervises a student, the device can run the precision asked for."""
    from ..losses import LOSSES
    from ..outputs import check_outside_inputs
    from ..trainer.checks import check_precision

    resume = exp.training.resume_from_checkpoint
    own = [resume] if resume and Path(str(resume)).resolve().is_relative_to(exp.out.resolve()) else []
    check_outside_inputs(exp.out, run_inputs(exp), "output_dir", own=own)
    for w in exp.config.weak_supervisors:
        if w.source != "noisy_labels":
            continue
        ignored = [spec.label for spec in exp.config.losses if not LOSSES[spec.name].uses_weak]
        if ignored:
            raise ValueError(f"weak supervisor {w.name!r} is label noise at rate {w.label_noise_rate}, but loss "
                             f"{ignored[0]!r} learns from the strong split's true labels, never from weak labels: "
                             "the noise would not be applied (and the card would say it was). Use a weak loss "
                             "(weak_hard, kd, ...) for it; the ceiling (ceiling: true) is the ground-truth run.")
    check_precision(exp.training)


# -- once the splits exist ----------------------------------------------------------------------------------------


def preflight(exp, done: dict) -> None:
    """The stage ``Experiment.run`` passes before anything trains: :func:`check_reruns`, then
    :func:`check_models` (unless every planned run is done)."""
    check_reruns(exp, done)
    if any(key not in done for key in exp.planned_keys()):
        check_models(exp, done)
        if exp.config.setting_candidates and not getattr(exp, "setting_key", None):
            from .settings import with_setting

            for candidate in exp.config.setting_candidates:  # every setting the ceiling may choose
                check_models(with_setting(exp, candidate), done)


def check_reruns(exp, done: dict) -> None:
    """A planned run with no record in ``results.jsonl`` whose folder holds checkpoints did not finish: refused
    unless ``resume_from_checkpoint`` (it continues) or ``overwrite_output_dir`` (its checkpoints are removed and it
    starts again from step 0)."""
    import shutil

    from ..checkpoints import resume_target
    from ..distributed import process_state

    if resume_target(exp.training.resume_from_checkpoint, hub=bool(exp.training.push_to_hub)) is not None:
        return
    unfinished = []
    for w, spec, seed, candidate in _planned_runs(exp):
        if exp._key(w, spec, seed, candidate) in done:
            continue
        run_dir = exp.run_dir(w, spec, seed, candidate)
        found = sorted(p.name for p in run_dir.glob("checkpoint-*")) if run_dir.is_dir() else []
        if found:
            unfinished.append((run_dir, found))
    if not unfinished:
        return
    if exp.training.overwrite_output_dir:
        if process_state().is_main_process:
            for run_dir, found in unfinished:
                exp.log(f"overwrite_output_dir: starting {run_dir} again from step 0 (removing {', '.join(found)})")
                for name in found:
                    shutil.rmtree(run_dir / name)
        process_state().wait_for_everyone()
        return
    run_dir, found = unfinished[0]
    more = f" (and {len(unfinished) - 1} other run(s))" if len(unfinished) > 1 else ""
    raise ValueError(f"output_dir {str(exp.out)!r} holds a run of this configuration that did not finish: "
                     f"{run_dir.relative_to(exp.out)} has {', '.join(found[:4])} but results.jsonl has no record of "
                     f"it{more}. Pass resume_from_checkpoint true to continue it from its last complete checkpoint, "
                     "or overwrite_output_dir true to start it again from step 0.")


def _planned_runs(exp):
    """``(weak supervisor or None, loss spec or None, seed, candidate)`` of every strong run the config plans."""
    c = exp.config
    rows = ([(None, None)] if c.ceiling else []) + [(w, spec) for w in c.weak_supervisors for spec in c.losses]
    for w, spec in rows:
        for candidate in exp.candidates(spec):
            for seed in c.seeds:
                yield w, spec, seed, candidate


@contextlib.contextmanager
def _isolated():
    """The random state of the process restored afterwards (a preflight changes nothing a run would see), and the
    notes of the data checks kept for the run itself (a preflight's few rows lack most classes)."""
    import logging

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    notes = [logging.getLogger(name) for name in ("hf_w2s.data.checks", "hf_w2s.trainer.checks")]
    levels = [logger.level for logger in notes]
    for logger in notes:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(notes, levels):
            logger.setLevel(level)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _head(ds, n: int = PREFLIGHT_ROWS):
    if ds is None:
        return None
    if not len(ds):
        raise ValueError("it is empty")
    return ds.select(range(min(n, len(ds))))


def _preflight_args(args, folder: Path):
    """A run's training arguments for one step in ``folder``: small batches, no workers, no reporting."""
    k = max(1, min(args.per_device_train_batch_size, PREFLIGHT_ROWS))
    return dataclasses.replace(args, output_dir=str(folder), report_to="none", per_device_train_batch_size=k,
                               per_device_eval_batch_size=k, gradient_accumulation_steps=1, dataloader_num_workers=0,
                               dataloader_drop_last=False, dataloader_persistent_workers=False,
                               push_to_hub=False, resume_from_checkpoint=None, disable_tqdm=True)


def _failed(what: str, err: BaseException, hint: str) -> ValueError:
    """The refusal of a preflight step: hf_w2s's own message (it names the option) after ``what``; any other
    failure (a library's, on the run's data) said with what failed, before anything trained, and what to check."""
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    ours = bool(frames) and frames[-1].filename.startswith(str(Path(__file__).resolve().parent.parent))
    if ours and isinstance(err, (ValueError, TypeError)):
        return ValueError(f"{what}: {err}")
    reason = " ".join(f"{type(err).__name__}: {err}".split())
    return ValueError(f"{what} fails on one batch of this run's own data, before anything trained ({reason}); {hint}")


def one_step(trainer, eval_rows=None) -> dict:
    """One forward and backward of ``trainer``'s model on the first batch of its training data (gradients dropped
    afterwards, no optimizer step), and with ``eval_rows`` one evaluation step with its metrics, which must hold
    ``metric_for_best_model``; returns those metrics."""
    model = trainer.model
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    loss = trainer.compute_loss(model, batch)
    if not torch.isfinite(loss.detach()).all():
        raise ValueError(f"the loss of one batch is {loss.item()} (not finite): check the learning setting and "
                         "the data (weak logits, labels)")
    loss.backward()
    if trainable and all(p.grad is None for p in trainable):
        raise ValueError("the loss does not reach any trainable parameter (no gradient): nothing would train")
    model.zero_grad(set_to_none=True)
    if eval_rows is None:
        return {}
    metrics = trainer.evaluation_loop(trainer.get_eval_dataloader(eval_rows), "preflight",
                                      metric_key_prefix="eval").metrics
    wanted = trainer.args.metric_for_best_model
    if wanted and trainer.args.load_best_model_at_end:
        key = wanted if wanted.startswith("eval_") else f"eval_{wanted}"
        if key not in metrics:
            from ..trainer.checks import best_metric_error

            raise best_metric_error(wanted, [k for k in metrics if isinstance(metrics[k], (int, float))])
    return metrics


def check_models(exp, done: dict | None = None) -> None:
    """Every weak supervisor and every strong run's student on one batch of the run's own data (see the module
    doc); a supervisor ``done`` before (its record in ``done``) gives its students its real labels, computed or read
    from the cache now as the run would next. Nothing is written and the random state is restored."""
    done = done or {}
    splits = exp.splits()
    with _isolated(), tempfile.TemporaryDirectory(prefix="hf_w2s-preflight-") as tmp:
        supervision = {w.name: _check_weak(exp, w, splits, Path(tmp), done) for w in exp.config.weak_supervisors}
        c = exp.config
        first = c.weak_supervisors[0] if c.weak_supervisors else None
        rows = [(None, None, cand) for cand in exp.candidates(None)] if c.ceiling else []
        rows += [(first, spec, cand) for spec in c.losses for cand in exp.candidates(spec)]
        if c.losses:  # every other kind of supervision once, with the first loss
            seen = {_kind(first)}
            for w in c.weak_supervisors[1:]:
                if _kind(w) not in seen:
                    seen.add(_kind(w))
                    rows.append((w, c.losses[0], exp.candidates(c.losses[0])[0]))
        student, checked = _Student(exp, splits), set()
        for w, spec, candidate in rows:
            key = _check_key(exp, w, spec, candidate)
            if key not in checked:  # the same check for another row: done once
                checked.add(key)
                _check_student(exp, w, spec, candidate, supervision, splits, Path(tmp), student)


def _check_key(exp, w, spec, candidate) -> str:
    """What a strong run's check depends on: its loss and knobs, its training arguments and augmentation, and the
    kind of supervision its student meets (two rows alike in these are the same check)."""
    from .store import stable_hash

    return stable_hash({"loss": None if spec is None else [spec.name, spec.knobs],
                        "arguments": exp.row_arguments(spec, candidate),
                        "augmentation": exp.augmentation_spec(candidate),
                        "supervision": None if spec is None else list(_kind(w))})


class _Student:
    """The preflight's student, built once (each check trains a copy: the trainer applies LoRA, the student mode
    and the trainable blocks to its own), and with ``cache_features`` the features of the preflight's rows, computed
    once per set of rows by the run's own :func:`~hf_w2s.data.features.cache_features` on an in-memory copy (nothing
    is written)."""

    def __init__(self, exp, splits):
        self.exp, self.splits = exp, splits
        self._built = None
        self._features: dict = {}  # by the fingerprints of the rows (and of the rows whose features they get)

    def built(self):
        if self._built is None:
            self._built = self.exp.strong_model(self.exp.config.seeds[0], pretrained=False)
        return self._built

    def fresh(self):
        """``(a copy of the student, its processor)``."""
        import copy

        model, processor = self.built()
        try:
            return copy.deepcopy(model), processor
        except Exception:  # noqa: BLE001 - a model that cannot be copied is built again
            return self.exp.strong_model(self.exp.config.seeds[0], pretrained=False)

    def featured(self, ds, source=None):
        """``ds`` (a few rows) with the features of ``source``'s images (the same rows; default ``ds``) as
        ``pixel_values``, its images dropped: what a cached-feature run trains and evaluates on."""
        from datasets import Dataset, Features, concatenate_datasets

        from ..data.features import FEATURE_COLUMN, cache_features
        from .probe import features_as_pixels

        if ds is None:
            return None
        source = ds if source is None else source
        if len(source) != len(ds):
            raise RuntimeError(f"the training rows ({len(ds)}) are not the strong split's ({len(source)})")
        key = (ds._fingerprint, source._fingerprint)
        if key in self._features:
            return self._features[key]
        if source._fingerprint not in self._features:
            # the rows of every check met so far in one pass of the backbone: these, the strong and validation splits'
            todo = {}
            for part in (source, _head(self.splits.get("strong_train")), _head(self.splits.get("validation"))):
                if part is not None and part._fingerprint not in self._features:
                    todo.setdefault(part._fingerprint, part)
            model, processor = self.built()
            # in memory: cache_features writes no cache file
            images = concatenate_datasets([r.select_columns(["image"]).flatten_indices(keep_in_memory=True)
                                           for r in todo.values()])
            feats = cache_features(images, model, processor, batch_size=max(1, len(images)), desc=None)
            column, start = feats.with_format(None)[FEATURE_COLUMN], 0
            features = Features({FEATURE_COLUMN: feats.features[FEATURE_COLUMN]})
            for fingerprint, r in todo.items():
                self._features[fingerprint] = Dataset.from_dict({FEATURE_COLUMN: column[start:start + len(r)]},
                                                                features=features)
                start += len(r)
        # as the run reads them; its rows flattened in memory (nothing is written)
        out = features_as_pixels(ds.flatten_indices(keep_in_memory=True), self._features[source._fingerprint])
        self._features[key] = out
        return out


def _kind(w) -> tuple:
    """What a student meets of its supervisor: the columns (by source and, combined, their number), or the online
    model and its processor."""
    if w.online:
        return ("online", w.model, w.image_processor, w.image_size)
    return (w.source, len(w.combine or ()))


def _check_weak(exp, w, splits, tmp: Path, done: dict) -> dict:
    """The supervisor ``w`` built and run on one batch: a trained one one step on its ground truth, a model one
    forward on the strong split (one done before: its supervision as the run reads it); returns what its students
    get (``rows`` with weak columns, or ``online``)."""
    from ..data.images import pixel_values_from_images
    from ..predicting import predicting
    from .supervision import Supervision

    what = f"preflight, weak supervisor {w.name!r}"
    hint = f"check its model {w.model!r}, image_processor and image_size against the data."
    sup = exp.supervisors
    if exp.weak_key(w) in done and w.source != "combine":  # it ran: its saved model and cached labels
        built = sup.of(w)
        if built.weak_model is not None:
            return {"online": built}
        return {"rows": _head(built.train_dataset), "shared": built.rows_of_strong_split}
    try:
        strong = _head(splits["strong_train"]) if "strong_train" in splits else None
        if w.source == "weak_labels":
            from .given_labels import weak_labels_supervision

            return {"rows": _head(weak_labels_supervision(exp, w)), "shared": False}
        if w.source == "noisy_labels":
            return {"rows": sup._noisy(w, strong)}
        if w.source == "combine":
            return {"combine": list(w.combine)}
        model, processor = sup._load(w.model, w, fresh_head=w.trains)
        if w.trains:
            train = _head(sup._weak_train_data(w))
            trainer = exp.fit(model, processor, train, _preflight_args(exp.weak_args(w, tmp / "weak"), tmp / "weak"),
                              augmentation=exp.augmentation(processor) if w.augment else None, build_only=True)
            one_step(trainer)
            model = trainer.model
        images = [strong[i]["image"] for i in range(len(strong))]
        pixels = pixel_values_from_images(images, processor).to(next(model.parameters()).device)
        with predicting(model):
            logits = model(pixel_values=pixels).logits.float().cpu()
        if logits.shape[-1] != len(exp.label_names):
            raise ValueError(f"it gives {logits.shape[-1]} logits per image for {len(exp.label_names)} classes")
    except Exception as err:  # noqa: BLE001 - every failure is said with what failed and what to check
        raise _failed(what, err, hint) from err
    if w.online:
        return {"online": Supervision(w.name, "", strong, {}, weak_model=model, weak_processor=processor)}
    from datasets import List, Value

    return {"rows": strong.add_column("weak_logits", logits.numpy().tolist(),
                                      feature=List(Value("float32"), length=logits.shape[-1]))}


def _combined_rows(exp, w, supervision) -> tuple:
    """A combined supervisor's stand-in: its members' weak logits side by side, and the knobs its students get."""
    from ..data.multi_weak import default_columns

    members = [supervision[n]["rows"] for n in w.combine]
    columns = default_columns(len(members))
    rows = members[0].remove_columns([c for c in ("weak_logits", "weak_label", "weak_confidence", "noisy_label")
                                      if c in members[0].column_names])
    for column, m in zip(columns, members):
        rows = rows.add_column(column, m["weak_logits"], feature=m.features["weak_logits"])
    k = len(members)
    knobs = {"weak_logits_columns": columns, "weak_combination": w.combination, **w.combine_knobs}
    if w.combination == "accuracy":
        knobs["weak_accuracies"] = [0.5] * k
    if w.calibrate:
        knobs["weak_temperatures"] = [1.0] * k
    return rows, knobs


def _check_student(exp, w, spec, candidate, supervision, splits, tmp: Path, student: _Student) -> None:
    """One strong run's student (``spec`` None: the ceiling) built as the run builds it, one step of its loss and one
    evaluation step, on the first rows of its own training data (``cache_features``: its head on their features, as
    the run trains it)."""
    from .supervision import Supervision

    row = "the ceiling" if spec is None else f"loss {spec.label!r}" + (f" with weak supervisor {w.name!r}"
                                                                       if len(exp.config.weak_supervisors) > 1 else "")
    if candidate["label"] != "default":
        row += f", candidate {candidate['label']!r}"
    what = f"preflight, the student of {row}"
    hint = ("check model_name_or_path, image_processor_name_or_path, input_size and image_size (and the weak "
            "supervisor's model and processor) against the data.")
    try:
        online, knobs, shared = None, {}, True
        if spec is None:
            train = _head(splits["strong_train"])
        else:
            given = supervision[w.name]
            if "combine" in given:
                train, knobs = _combined_rows(exp, w, supervision)
                shared = all(supervision[n].get("shared", True) for n in w.combine)
            elif "online" in given:
                online, train = given["online"], _head(given["online"].train_dataset)
            else:
                train, shared = given["rows"], given.get("shared", True)
            if not exp.needs_labels(spec) and "label" in train.column_names:
                train = train.remove_columns("label")
        stand_in = Supervision(w.name if w else "", "", train, {}, run_knobs=knobs) if spec is not None else None
        run_knobs, calibration = exp.supervisors.student_args(stand_in, spec) if spec is not None else ({}, None)
        folder = tmp / "strong"
        validation = _head(splits["validation"])
        if exp.config.cache_features:  # the run trains the student's head on the frozen backbone's features
            from ..data.features import FeatureHead

            model, _ = student.built()
            strong = _head(splits.get("strong_train")) if shared else None
            train, validation = student.featured(train, strong), student.featured(validation)
            calibration, run_knobs = student.featured(_head(calibration)), {**run_knobs, "student_mode": "full"}
            model, processor, augmentation = FeatureHead(model), None, None
        else:
            model, processor = student.fresh()
            augmentation, calibration = exp.augmentation(processor, candidate), _head(calibration)
        args = exp.run_args(spec.name if spec else "ground_truth", seed=exp.config.seeds[0], run_dir=folder,
                            overrides={**exp.row_arguments(spec, candidate), **run_knobs}, with_eval=True)
        weak = exp.supervisors.online_weak(online, processor) if online is not None else None
        trainer = exp.fit(model, processor, train, _preflight_args(args, folder),
                          eval_dataset=validation if exp.evaluates else None, augmentation=augmentation,
                          calibration_dataset=calibration, strong=True, weak=weak, build_only=True)
        one_step(trainer, validation)
    except Exception as err:  # noqa: BLE001 - every failure is said with what failed and what to check
        raise _failed(what, err, hint) from err


# -- hf-w2s label --------------------------------------------------------------------------------------------------


def check_labelling(weak, dataset, *, image_column: str = "image", label_names=None) -> None:
    """``hf-w2s label``'s preflight: the weak model (a :class:`hf_w2s.data.weak_labels.WeakModel`) on the first
    rows of the dataset (a stream's first rows too) with its own processor, before anything is labelled or
    written: finite logits, one per class."""
    from ..data.images import pixel_values_from_images
    from ..data.loading import is_streaming
    from ..predicting import predicting

    what = f"preflight, the weak model {weak.name!r}"
    if image_column not in (dataset.features or {}):
        return  # label_dataset names the columns there are
    try:
        rows = list(dataset.take(2)) if is_streaming(dataset) else [dataset[i] for i in range(min(2, len(dataset)))]
        if not rows:
            raise ValueError("the dataset is empty: there is nothing to label")
        images = [r[image_column] for r in rows]
        pixels = pixel_values_from_images(images, weak.image_processor).to(next(weak.model.parameters()).device)
        with _isolated(), predicting(weak.model):
            logits = weak.model(pixel_values=pixels).logits.float()
        if not torch.isfinite(logits).all():
            raise ValueError("it produced non-finite logits (NaN/inf) on the first images: a diverged or corrupt "
                             "model; nothing was labelled or written")
    except Exception as err:  # noqa: BLE001
        raise _failed(what, err, "check --weak_model (an image classifier and its image processor) against the "
                                 "images of --dataset.") from err
