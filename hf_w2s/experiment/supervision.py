"""The weak supervisors of an experiment: each one's labels of the strong split, built once.

A supervisor is trained on ground truth (``source: train``), loaded (``model``), given as a weak-label dataset
(``weak_labels``), made of label noise (``noisy_labels``), or a combination of others (``combine``). Its labels of
the strong and test splits come from :func:`hf_w2s.label_dataset` (cached by ``datasets`` and reused by every loss
and seed); its calibration on held-out ground truth feeds ``conf_select`` and combined supervisors.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from ..calibration import fit_temperature
from ..data.loading import column_array, load_image_dataset
from ..data.multi_weak import default_columns, merge_weak_label_datasets
from ..data.noise import add_noisy_labels, corrupt_labels
from ..data.splits import canonical_columns, check_disjoint, random_subset, shots_per_class
from ..data.weak_labels import label_dataset, weak_logits_array
from ..metrics import accuracy
from ..modeling import load_image_classifier
from .config import LossSpec, WeakSupervisorConfig
from .provenance import CALIBRATION, REPORT, WEAK_LABELS, registry
from .store import non_default, stable_hash

__all__ = ["Supervision", "Supervisors", "pretrain_student"]


@dataclasses.dataclass
class Supervision:
    """A weak supervisor's labels of the strong split, and what is known of its test behaviour."""

    name: str
    key: str
    train_dataset: Dataset  # the strong split with weak_logits / weak_label / weak_confidence
    record: dict  # the result line of the supervisor (accuracy, test predictions)
    run_knobs: dict = dataclasses.field(default_factory=dict)  # WeakToStrongConfig knobs of its students
    weak_model: object = None  # online supervision: the weak model run on every training batch
    weak_processor: object = None
    #: its training set is the strong split's rows (in order) with columns added; a weak-labels dataset is not
    rows_of_strong_split: bool = True
    #: selection_protocol weak_labels: its logits (or, for label noise, one-hot noisy labels) on the validation split
    validation_logits: np.ndarray | None = None


class Supervisors:
    """Builds each weak supervisor of ``experiment`` (an :class:`~hf_w2s.experiment.runner.Experiment`) once."""

    def __init__(self, experiment):
        self.exp = experiment
        self._built: dict[str, Supervision] = {}

    @property
    def names(self) -> list[str]:
        return self.exp.label_names

    def config_of(self, name: str) -> WeakSupervisorConfig:
        return next(w for w in self.exp.config.weak_supervisors if w.name == name)

    def of(self, w: WeakSupervisorConfig) -> Supervision:
        """The supervision of ``w``, computed once per supervisor."""
        if w.name not in self._built:
            self._built[w.name] = self.build(w)
        return self._built[w.name]

    def build(self, w: WeakSupervisorConfig) -> Supervision:
        """The supervision of ``w`` (computed now; :meth:`of` keeps it)."""
        return self._combined(w) if w.source == "combine" else self._single(w)

    # -- one supervisor ---------------------------------------------------------------------------------------

    def _single(self, w: WeakSupervisorConfig) -> Supervision:
        splits = self.exp.splits()
        key = self.exp.weak_key(w)
        model, processor, n_train = self._weak_model(w)
        test_pred = None
        if model is not None:
            test_pred = self._logits(splits["test"], model, processor, f"{w.name}, test").argmax(-1)
        if w.source in ("train", "model"):
            train = self._label(splits["strong_train"], model, processor, f"{w.name}, strong split")
        elif w.source == "noisy_labels":
            train = self._noisy(w, splits["strong_train"])
        else:
            train = self._given_weak_labels(w)
        sup_acc = float("nan")
        if "label" in train.column_names:
            sup_acc = accuracy(column_array(train, "weak_label"), column_array(train, "label"))
        online = {}
        if w.online:  # its labels of the clean strong split are measured above, but never trained on
            train = splits["strong_train"]
            online = {"weak_model": model, "weak_processor": processor}
        record = {
            "key": key, "kind": "weak", "weak": w.name, "source": w.source,
            "test_accuracy": None if test_pred is None else accuracy(test_pred, column_array(splits["test"], "label")),
            "supervision_accuracy": sup_acc,
            "test_predictions": None if test_pred is None else test_pred.tolist(),
            "num_train_examples": n_train,
            **self._calibration(w, model, processor, train),
        }
        stamp = registry(self.exp).stamp  # the split each figure was computed on (provenance.py)
        record["provenance"] = {
            **(stamp(splits["test"], REPORT, "test_accuracy", "test_predictions") if test_pred is not None else {}),
            **(stamp(splits["strong_train"], REPORT, "supervision_accuracy") if w.source != "weak_labels" else {}),
            **record.get("provenance", {})}
        sup = Supervision(w.name, key, train, record, **online, rows_of_strong_split=w.source != "weak_labels")
        if self.exp.config.selection_protocol == "weak_labels":  # the only labels a no-ground-truth user has
            sup.validation_logits = self._validation_logits(w, model, processor)
        return sup

    def _validation_logits(self, w: WeakSupervisorConfig, model, processor) -> np.ndarray:
        """What the supervisor says of the validation split: its logits, or for label noise the validation split's
        labels corrupted by the same noise (one-hot)."""
        validation = self.exp.splits()["validation"]
        if model is not None:
            return self._logits(validation, model, processor, f"{w.name}, validation")
        noisy = corrupt_labels(column_array(validation, "label"), len(self.names), w.label_noise_rate,
                               w.label_noise_kind, w.seed + 1, transition=w.label_noise_transition)
        return np.eye(len(self.names), dtype=np.float32)[noisy]

    def weak_labelled_validation(self, sup: Supervision) -> Dataset:
        """The validation split with its labels replaced by what the supervisor says of it (selection_protocol
        weak_labels: candidates, checkpoints and the saved student chosen without ground truth)."""
        validation = self.exp.splits()["validation"]
        feature = validation.features["label"]
        labels = np.asarray(sup.validation_logits).argmax(-1).tolist()
        relabelled = validation.remove_columns("label").add_column("label", labels, feature=feature)
        return registry(self.exp).derived(relabelled, validation, tag=WEAK_LABELS)  # validation+weak_labels

    @staticmethod
    def online_weak(sup: Supervision | None, student_processor):
        """``(weak model, its processor or None)`` for an online supervisor, else ``None``. The processor is passed
        only when it differs from the student's: then the weak model sees its own view of the clean image (mixed
        like the student's, not augmented); otherwise it sees exactly the student's augmented, mixed batch."""
        if sup is None or sup.weak_model is None:
            return None
        same = sup.weak_processor.to_json_string() == student_processor.to_json_string()
        return sup.weak_model, None if same else sup.weak_processor

    def calibration_split(self, w: WeakSupervisorConfig) -> tuple[Dataset, Dataset]:
        """``(held out, rest)`` of the supervisor's ground-truth split: ``calibration_size`` seeded examples."""
        ds = self.exp.splits()[w.train_split]
        if w.calibration_size >= len(ds):
            raise ValueError(f"weak supervisor {w.name!r}: calibration_size {w.calibration_size} leaves nothing of "
                             f"its {len(ds)}-example {w.train_split} split to train on.")
        order = np.random.default_rng(w.seed).permutation(len(ds))
        return ds.select(np.sort(order[:w.calibration_size])), ds.select(np.sort(order[w.calibration_size:]))

    def _weak_train_data(self, w: WeakSupervisorConfig) -> Dataset:
        train = self.exp.splits()[w.train_split]
        if w.calibration_size:
            train = self.calibration_split(w)[1]
        if w.shots_per_class:
            train = shots_per_class(train, w.shots_per_class, w.seed)
        if w.train_size:
            train = random_subset(train, w.train_size, w.seed, strict=True)
        if w.label_noise_rate > 0:
            labels = corrupt_labels(column_array(train, "label"), len(self.names), w.label_noise_rate,
                                    w.label_noise_kind, w.seed, transition=w.label_noise_transition)
            feature = train.features["label"]
            train = train.remove_columns("label").add_column("label", labels.tolist(), feature=feature)
        return train

    def _load(self, source: str, w: WeakSupervisorConfig, **kwargs):
        m = self.exp.model
        model = load_image_classifier(source, self.names, seed=w.seed, image_size=w.image_size or m.image_size,
                                      num_channels=m.num_channels, allow_pickle=m.allow_pickle,
                                      trust_remote_code=m.trust_remote_code, **kwargs)
        resize = w.image_size if source == w.model else None  # a saved supervisor's processor has its size already
        return model, self.exp.processor_for(w.image_processor or source, input_size=resize, image_size=w.image_size)

    def model_dir(self, name: str) -> Path | None:
        """Where a supervisor the runner trained is saved (``weak/<key>/model``), or ``None``."""
        w = self.config_of(name)
        return self.exp.out / "weak" / self.exp.weak_key(w) / "model" if w.trains else None

    def _train_weak(self, w: WeakSupervisorConfig, path: Path):
        from ..distributed import process_state

        train = self._weak_train_data(w)
        model, processor = self._load(w.model, w, fresh_head=True)
        self.exp.log(f"training weak supervisor {w.name!r} on {len(train)} ground-truth examples")
        augmentation = self.exp.augmentation(processor) if w.augment else None
        trainer = self.exp.fit(model, processor, train, self.exp.weak_args(w, path / "run"), augmentation=augmentation)
        state = process_state()
        tmp = path / "model.tmp"
        trainer.save_model(str(tmp))  # every process (a sharded model is gathered), the main one writes
        if state.is_main_process:
            processor.save_pretrained(tmp)
            (tmp / "w2s_info.json").write_text(json.dumps({"num_train": len(train)}))
            tmp.rename(path / "model")
        state.wait_for_everyone()
        # every process loads the saved model back whole, and labels with it as every later run will (the same
        # identity, so the label cache hits)
        model, processor = self._load(str(path / "model"), w)
        return model, processor, len(train)

    def _weak_model(self, w: WeakSupervisorConfig):
        """The weak model (trained once and saved under ``weak/``, or loaded), its processor and #train examples."""
        if w.source == "train":
            path = self.model_dir(w.name).parent  # by content, not name: a renamed one is reused
            if (path / "model" / "config.json").exists():
                info = json.loads((path / "model" / "w2s_info.json").read_text())
                return (*self._load(str(path / "model"), w), info["num_train"])
            path.mkdir(parents=True, exist_ok=True)
            return self._train_weak(w, path)
        if w.model:
            return (*self._load(w.model, w, fresh_head=False), None)  # the names must match
        return None, None, None

    def _label(self, ds: Dataset, model, processor, what: str) -> Dataset:
        """``ds`` with the weak model's logits, in the experiment's label order (matched by name); logits that are
        not finite (a supervisor whose fine-tuning diverged) stop the run before any student trains on them."""
        from ..data.weak_labels import NonFiniteLogitsError

        try:
            return label_dataset(ds, model, processor, batch_size=self.exp.config.label_batch_size,
                                 label_names=self.names, desc=f"weak labels ({what})")
        except NonFiniteLogitsError as err:
            from ..data.identity import rows_text

            raise ValueError(f"weak supervisor {what.split(',')[0]!r}: its logits are NaN or infinite on "
                             f"{len(err.rows)} of the {len(ds)} examples it labels ({what.split(', ')[-1]}; "
                             f"{rows_text(err.rows)}): its fine-tuning diverged or its weights are broken (lower its "
                             "learning_rate). No student was trained on them.") from err

    def _logits(self, ds: Dataset, model, processor, what: str) -> np.ndarray:
        return weak_logits_array(self._label(ds, model, processor, what))

    def _noisy(self, w: WeakSupervisorConfig, ds: Dataset) -> Dataset:
        """The strong split's ground truth corrupted by label noise, as weak logits whose softmax puts
        ``label_noise_confidence`` on the noisy label."""
        return add_noisy_labels(ds, w.label_noise_rate, w.label_noise_kind, w.seed, num_classes=len(self.names),
                                confidence=w.label_noise_confidence, transition=w.label_noise_transition)

    def _given_weak_labels(self, w: WeakSupervisorConfig) -> Dataset:
        """A weak-labels dataset's logits, joined to the strong split's images by identity (.given_labels)."""
        from .given_labels import weak_labels_supervision

        return weak_labels_supervision(self.exp, w)

    def _calibration(self, w: WeakSupervisorConfig, model, processor, train: Dataset) -> dict:
        """The supervisor's temperature (``fit_temperature``) and accuracy on ground truth it did not train on
        where possible: its ``calibration_size`` held-out examples, else the weak_train split (its own training data
        when it trained there: biased), else, for label noise, the strong split's true labels (the noise rate taken
        as known). Used by conf_select (weak_calibration_temperature) and combined supervisors."""
        splits = self.exp.splits()
        if model is not None:
            if w.source == "train" and w.calibration_size:
                ds, basis = self.calibration_split(w)[0], f"{w.calibration_size} held-out {w.train_split} examples"
            elif "weak_train" in splits:
                ds, basis = splits["weak_train"], "the weak_train split"
            else:
                return {}
            logits = self._logits(ds, model, processor, f"{w.name}, calibration")
            labels = column_array(ds, "label")
        elif w.source == "noisy_labels" and "label" in train.column_names:
            logits, labels = weak_logits_array(train), column_array(train, "label")
            basis = "the strong split's true labels (the noise rate taken as known)"
            ds = splits["strong_train"]  # train: its rows with the noisy labels added
        else:
            return {}
        return {
            "calibration_temperature": fit_temperature(torch.from_numpy(logits), torch.from_numpy(labels)),
            "calibration_accuracy": accuracy(logits, labels),
            "calibration_basis": basis,
            "provenance": registry(self.exp).stamp(ds, CALIBRATION, "calibration_temperature", "calibration_accuracy"),
        }

    # -- several supervisors combined -------------------------------------------------------------------------

    def _combined(self, w: WeakSupervisorConfig) -> Supervision:
        """Several supervisors' labels of the strong split as ``weak_logits_0..K-1`` (hf_w2s.data.multi_weak)."""
        members = [self.of(self.config_of(n)) for n in w.combine]
        columns = default_columns(len(members))
        train = merge_weak_label_datasets([m.train_dataset for m in members], columns=columns)
        knobs = {"weak_logits_columns": columns, "weak_combination": w.combination, **w.combine_knobs}
        for knob, field_name, needed in (("weak_accuracies", "calibration_accuracy", w.combination == "accuracy"),
                                         ("weak_temperatures", "calibration_temperature", w.calibrate)):
            if needed:
                values = [m.record.get(field_name) for m in members]
                if any(v is None for v in values):
                    raise ValueError(f"weak supervisor {w.name!r}: {knob} needs every combined supervisor's "
                                     f"{field_name} (ground truth they did not train on), missing for "
                                     f"{[m.name for m, v in zip(members, values) if v is None]}")
                knobs[knob] = values
        accs = [m.record["test_accuracy"] for m in members if m.record.get("test_accuracy") is not None]
        record = {
            "key": self.exp.weak_key(w), "kind": "weak", "weak": w.name, "source": "combine",
            "members": list(w.combine),
            # the report's weak accuracy (and PGR) for a combination is that of its best member
            "test_accuracy": max(accs) if accs else None, "supervision_accuracy": float("nan"),
            "test_predictions": None, "num_train_examples": None,
            "knobs": {k: v for k, v in knobs.items() if k != "weak_logits_columns"},
            # its members' figures, each stamped where it was computed
            "provenance": next(({"test_accuracy": m.record["provenance"]["test_accuracy"]} for m in members
                                if "test_accuracy" in m.record.get("provenance", {})), {}),
        }
        sup = Supervision(w.name, record["key"], train, record, run_knobs=knobs)
        if self.exp.config.selection_protocol == "weak_labels":  # the members' mean probabilities
            probs = [np.exp(m.validation_logits - m.validation_logits.max(-1, keepdims=True)) for m in members]
            sup.validation_logits = np.log(np.mean([p / p.sum(-1, keepdims=True) for p in probs], 0))
        return sup

    def student_args(self, sup: Supervision | None, spec: LossSpec) -> tuple[dict, Dataset | None]:
        """Knobs a student run takes from its supervisor, and conf_select's calibration set (the weak ground truth,
        which the student never trains on)."""
        if sup is None:
            return {}, None
        knobs = dict(sup.run_knobs)
        calibration = None
        if spec.name == "conf_select":
            if "weak_calibration_temperature" not in spec.knobs and sup.record.get("calibration_temperature"):
                knobs["weak_calibration_temperature"] = sup.record["calibration_temperature"]
            calibration = self.exp.splits().get("weak_train")
        return knobs, calibration


def pretrain_student(exp) -> str:
    """The tiny student pre-trained once on ``pretrain_dataset``'s ground truth (an offline stand-in for a pretrained
    checkpoint), saved under ``strong_init/<key>/model``; returns that path."""
    from ..distributed import process_state
    from ..modeling import tiny_image_processor

    m = exp.model
    key = stable_hash({"pretrain": non_default(m), "image_size": m.image_size, "num_channels": m.num_channels})
    path = exp.out / "strong_init" / key
    if not (path / "model" / "config.json").exists():
        data = canonical_columns(load_image_dataset(m.pretrain_dataset), image_column="image", label_column="label",
                                 select=True, where=m.pretrain_dataset)
        data = random_subset(data, m.pretrain_size, 0, strict=True)
        # another dataset: it must not hold an image of this run's validation or test split
        splits = exp.splits()
        check_disjoint({"pretrain": data, "validation": splits["validation"], "test": splits["test"]}, "image",
                       where=f"pretrain_dataset {m.pretrain_dataset}")
        names = list(data.features["label"].names)
        model = load_image_classifier(m.model_name_or_path, names, seed=0, image_size=m.image_size,
                                      num_channels=m.num_channels)
        processor = tiny_image_processor(m.image_size, m.num_channels)
        exp.log(f"pre-training the strong model on {m.pretrain_dataset} ({len(data)} examples)")
        args = exp.run_args("ground_truth", seed=0, run_dir=path / "run", with_eval=False,
                            run_name="strong-pretraining",
                            overrides={"num_train_epochs": m.pretrain_num_train_epochs, "gt_loss_weight": 0.0,
                                       "learning_rate": m.pretrain_learning_rate, "student_mode": "full",
                                       "per_device_train_batch_size": m.pretrain_batch_size, "max_steps": -1})
        trainer = exp.fit(model, processor, data, args)
        trainer.save_model(str(path / "model.tmp"))
        if process_state().is_main_process:
            processor.save_pretrained(path / "model.tmp")
            (path / "model.tmp").rename(path / "model")
        process_state().wait_for_everyone()
    return str(path / "model")
