"""``hf-w2s experiment --config FILE.yaml``: a weak-to-strong sweep, its results as JSON lines, and the report.

Pipeline: data splits (persisted with ``save_to_disk``) → each weak supervisor (trained, loaded, or given as weak
labels) → weak labels of the strong and test splits (``label_dataset``, cached by ``datasets``' fingerprints and
reused by every loss and seed) → the strong ceiling on ground truth, per seed → one student per weak supervisor ×
loss × seed. Each finished run is appended to ``<output_dir>/results.jsonl`` under a key that hashes everything the
run depends on, so an interrupted or extended sweep skips the runs that are done and never reuses a partial one (a
run is written only when it has finished). The report (markdown table + PNG plots) is rebuilt from that file.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from datasets import ClassLabel, Dataset, DatasetDict, List, Value, load_dataset, load_from_disk
from transformers.trainer_callback import PrinterCallback

from .collator import WeakToStrongCollator
from .conf_select import fit_temperature
from .config import WeakToStrongConfig
from .data import PACKAGED_DATASETS, column_array, load_packaged, shots_per_class, w2s_splits
from .experiment_config import ExperimentConfig, LossSpec, WeakSupervisorConfig, config_help, load_experiment_config
from .labels import label_names as ordered_label_names
from .labels import label_permutation
from .metrics import accuracy
from .models import build_model, tiny_image_processor
from .multi_weak import default_columns, merge_weak_label_datasets
from .noise import corrupt_labels
from .trainer import WeakToStrongTrainer
from .weak_labels import label_dataset, weak_logits_array

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
#: bump when a change makes old results incomparable
HARNESS_VERSION = 1


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def non_default(obj) -> dict:
    """A dataclass's fields that differ from their defaults: run keys stay stable when a new optional field is added."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if value != default:
            out[f.name] = value
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text)[:80]


# --------------------------------------------------------------------------------------------------------------
# results: one JSON object per finished run


class ResultStore:
    """Append-only JSON lines. A line cut short by a crash is ignored on reading and never extended."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        records: dict[str, dict] = {}
        if not self.path.exists():
            return records
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a partial line from an interrupted write
            if isinstance(record, dict) and "key" in record:
                records[record["key"]] = record
        return records

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=float) + "\n"
        needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not self.path.read_bytes().endswith(
            b"\n")
        with open(self.path, "a") as f:
            f.write(("\n" if needs_newline else "") + line)
            f.flush()
            os.fsync(f.fileno())


# --------------------------------------------------------------------------------------------------------------
# data


def load_image_dataset(name: str, split: str = "train", config_name: str | None = None) -> Dataset:
    """A packaged dataset by name, a ``save_to_disk`` directory, or anything ``load_dataset`` opens."""
    if name in PACKAGED_DATASETS:
        return load_packaged(name)
    path = Path(name)
    if (path / "dataset_dict.json").exists():
        dd = load_from_disk(str(path))
        if split not in dd:
            raise ValueError(f"{name} has no split {split!r}; splits: {list(dd)}")
        return dd[split]
    if (path / "state.json").exists():
        return load_from_disk(str(path))
    return load_dataset(name, config_name, split=split)


def _canonical(ds: Dataset, image_column: str, label_column: str, where: str) -> Dataset:
    """Keep only ``image`` and ``label`` (renamed from the configured columns); the label must be a ClassLabel."""
    for col in (image_column, label_column):
        if col not in ds.column_names:
            raise ValueError(f"{where} has no column {col!r}; columns: {ds.column_names}")
    if not isinstance(ds.features[label_column], ClassLabel):
        raise ValueError(f"{where}: the label column {label_column!r} must be a ClassLabel (named classes), got "
                         f"{ds.features[label_column]}")
    ds = ds.select_columns([image_column, label_column])
    mapping = {k: v for k, v in ((image_column, "image"), (label_column, "label")) if k != v}
    return ds.rename_columns(mapping) if mapping else ds


def _random_subset(ds: Dataset, n: int, seed: int) -> Dataset:
    if n > len(ds):
        raise ValueError(f"asked for {n} examples from a split of {len(ds)}")
    idx = np.random.default_rng(seed).permutation(len(ds))[:n]
    return ds.select(np.sort(idx))


def _replace_labels(ds: Dataset, labels: np.ndarray) -> Dataset:
    feature = ds.features["label"]
    return ds.remove_columns("label").add_column("label", labels.tolist(), feature=feature)


def logits_features(num_labels: int) -> dict:
    return {
        "weak_logits": List(Value("float32"), length=num_labels),
        "weak_label": Value("int64"),
        "weak_confidence": Value("float32"),
    }


# --------------------------------------------------------------------------------------------------------------
# models and training


def _augmentation(spec: dict | None):
    if not spec:
        return None
    import kornia.augmentation as K

    layers = []
    for name, kwargs in spec.items():
        if not hasattr(K, name):
            raise ValueError(f"augmentation: kornia.augmentation has no {name!r}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in (kwargs or {}).items()}
        layers.append(getattr(K, name)(**kwargs))
    seq = torch.nn.Sequential(*layers)

    def transform(pixel_values: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return seq(pixel_values)

    return transform


def _load_classifier(path: str, names: list[str], reset_head: bool = False):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    id2label = dict(enumerate(names))
    model = AutoModelForImageClassification.from_pretrained(
        path, num_labels=len(names), id2label=id2label, label2id={n: i for i, n in id2label.items()},
        ignore_mismatched_sizes=True,
    )
    if reset_head and hasattr(model, "classifier"):
        for module in model.classifier.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return model, AutoImageProcessor.from_pretrained(path)


def _mean_metric(log_history: list[dict], name: str) -> float | None:
    values = [entry[name] for entry in log_history if name in entry and "eval_loss" not in entry]
    return float(np.mean(values)) if values else None


# --------------------------------------------------------------------------------------------------------------
# the harness


@dataclasses.dataclass
class Supervision:
    """A weak supervisor's labels of the strong split, and what is known of its test behaviour."""

    name: str
    key: str
    train_dataset: Dataset  # the strong split with weak_logits / weak_label / weak_confidence
    record: dict  # the result line of the supervisor (accuracy, test predictions)
    run_knobs: dict = dataclasses.field(default_factory=dict)  # WeakToStrongConfig knobs of its students


class Experiment:
    """Runs one :class:`ExperimentConfig`. ``run()`` does the work; ``report()`` rebuilds the report."""

    def __init__(self, config: ExperimentConfig, log=print):
        self.config = config
        self.out = Path(config.output_dir)
        self.log = log
        self.store = ResultStore(self.out / RESULTS_FILE)
        self._splits: DatasetDict | None = None
        self._names: list[str] | None = None
        self._strong_init_path: str | None = None
        self._supervisions: dict[str, Supervision] = {}
        self.validate_runs()
        self._check_output_dir()

    # -- planning ------------------------------------------------------------------------------------------------

    def run_arguments(self, spec: LossSpec | None = None) -> dict:
        args = {**DEFAULT_TRAINING, **self.config.training, **(spec.knobs if spec else {})}
        if self.config.eval_during_training and "eval_strategy" not in args:
            args["eval_strategy"] = "epoch"
        return args

    def validate_runs(self) -> None:
        """Build every run's WeakToStrongConfig once, so a bad knob fails before any compute."""
        for spec in [None, *self.config.losses]:
            try:
                self._training_config(spec.name if spec else "ground_truth", seed=0, run_dir=self.out / "_check",
                                      spec=spec)
            except (ValueError, TypeError) as err:
                what = f"loss {spec.label!r}" if spec else "training"
                raise ValueError(f"{what}: {err}") from err

    @property
    def data_spec(self) -> dict:
        c = self.config
        return {"dataset": c.dataset, "config": c.dataset_config_name, "split": c.dataset_split,
                "test_split": c.test_split, "sizes": c.split_sizes, "seed": c.split_seed,
                "image_column": c.image_column, "label_column": c.label_column}

    def strong_spec(self) -> dict:
        c = self.config
        return {"strong": non_default(c.strong_model), "image_size": c.image_size,
                "num_channels": c.num_channels, "augmentation": c.augmentation, "data": self.data_spec,
                "v": HARNESS_VERSION}

    def weak_key(self, w: WeakSupervisorConfig) -> str:
        spec = non_default(w)
        spec.pop("name", None)
        if w.source == "combine":  # the members by content, not by name
            spec["combine"] = [self.weak_key(self._supervisor_config(n)) for n in w.combine]
        return stable_hash({"weak": spec, "data": self.data_spec, "image_size": self.config.image_size,
                            "num_channels": self.config.num_channels, "v": HARNESS_VERSION})

    def ceiling_key(self, seed: int) -> str:
        return stable_hash({"kind": "ceiling", **self.strong_spec(), "training": self.run_arguments(), "seed": seed})

    def w2s_key(self, w: WeakSupervisorConfig, spec: LossSpec, seed: int) -> str:
        return stable_hash({"kind": "w2s", **self.strong_spec(), "weak": self.weak_key(w), "loss": spec.name,
                            "training": self.run_arguments(spec), "seed": seed})

    def planned_keys(self) -> list[str]:
        c = self.config
        keys = [self.weak_key(w) for w in c.weak_supervisors]
        if c.ceiling:
            keys += [self.ceiling_key(s) for s in c.seeds]
        keys += [self.w2s_key(w, spec, s) for s in c.seeds for w in c.weak_supervisors for spec in c.losses]
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
        (self.out / CONFIG_FILE).write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))

    # -- data ----------------------------------------------------------------------------------------------------

    def splits(self) -> DatasetDict:
        """The three splits, persisted under ``data/`` (so ``Dataset.map`` caches really hit) and loaded back."""
        if self._splits is not None:
            return self._splits
        c = self.config
        path = self.out / "data" / f"splits-{stable_hash(self.data_spec)}"
        if not (path / "dataset_dict.json").exists():
            self.log(f"preparing the splits of {c.dataset} -> {path}")
            source = _canonical(load_image_dataset(c.dataset, c.dataset_split, c.dataset_config_name),
                                c.image_column, c.label_column, c.dataset)
            if c.test_split:
                test = _canonical(load_image_dataset(c.dataset, c.test_split, c.dataset_config_name),
                                  c.image_column, c.label_column, f"{c.dataset}[{c.test_split}]")
                dd = w2s_splits(source, (c.split_sizes[0], c.split_sizes[1], 0), seed=c.split_seed)
                n_test = c.split_sizes[2] or len(test)
                dd["test"] = test if n_test == len(test) else _random_subset(test, n_test, c.split_seed)
            else:
                dd = w2s_splits(source, tuple(c.split_sizes), seed=c.split_seed)
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

    # -- weak supervisors ----------------------------------------------------------------------------------------

    def _supervisor_config(self, name: str) -> WeakSupervisorConfig:
        return next(w for w in self.config.weak_supervisors if w.name == name)

    def _calibration_split(self, w: WeakSupervisorConfig) -> tuple[Dataset, Dataset]:
        """``(held out, rest)`` of the supervisor's ground-truth split: ``calibration_size`` seeded examples."""
        ds = self.splits()[w.train_split]
        if w.calibration_size >= len(ds):
            raise ValueError(f"weak supervisor {w.name!r}: calibration_size {w.calibration_size} leaves nothing of "
                             f"its {len(ds)}-example {w.train_split} split to train on.")
        order = np.random.default_rng(w.seed).permutation(len(ds))
        return ds.select(np.sort(order[:w.calibration_size])), ds.select(np.sort(order[w.calibration_size:]))

    def _train_weak(self, w: WeakSupervisorConfig, path: Path):
        splits = self.splits()
        train = splits[w.train_split]
        if w.calibration_size:
            train = self._calibration_split(w)[1]
        if w.shots_per_class:
            train = shots_per_class(train, w.shots_per_class, w.seed)
        if w.train_size:
            train = _random_subset(train, w.train_size, w.seed)
        if w.label_noise_rate > 0:
            labels = corrupt_labels(column_array(train, "label"), len(self.label_names), w.label_noise_rate,
                                    w.label_noise_kind, w.seed)
            train = _replace_labels(train, labels)
        if w.pretrained:
            model, processor = _load_classifier(w.pretrained, self.label_names, reset_head=True)
        else:
            model = build_model(w.arch, self.label_names, image_size=self.config.image_size,
                                num_channels=self.config.num_channels, width=w.width, depth=w.depth, seed=w.seed)
            processor = tiny_image_processor(self.config.image_size, self.config.num_channels)
        args = {"num_train_epochs": w.epochs, "learning_rate": w.learning_rate,
                "per_device_train_batch_size": w.batch_size, "weight_decay": w.weight_decay,
                "logging_steps": 10, **w.training}
        self.log(f"training weak supervisor {w.name!r} on {len(train)} ground-truth examples")
        self._fit(model, processor, train, loss="ground_truth", seed=w.seed, run_dir=path / "run", args=args,
                  report_to="none")
        tmp = path / "model.tmp"
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "w2s_info.json").write_text(json.dumps({"num_train": len(train)}))
        tmp.rename(path / "model")
        # label with the saved model, as every later run will: the same identity, so the label cache hits
        model, processor = _load_classifier(str(path / "model"), self.label_names)
        return model, processor, len(train)

    def _weak_model(self, w: WeakSupervisorConfig):
        """The weak model (trained once and saved under ``weak/``, or loaded), its processor and #train examples."""
        if w.source == "train":
            path = self.out / "weak" / self.weak_key(w)  # by content, not name: a renamed supervisor is reused
            if (path / "model" / "config.json").exists():
                model, processor = _load_classifier(str(path / "model"), self.label_names)
                return model, processor, json.loads((path / "model" / "w2s_info.json").read_text())["num_train"]
            path.mkdir(parents=True, exist_ok=True)
            return self._train_weak(w, path)
        if w.model:
            from transformers import AutoImageProcessor, AutoModelForImageClassification

            model = AutoModelForImageClassification.from_pretrained(w.model)
            label_permutation(ordered_label_names(model.config.id2label), self.label_names)  # names must match
            return model, AutoImageProcessor.from_pretrained(w.model), None
        return None, None, None

    def _label(self, ds: Dataset, model, processor, what: str) -> Dataset:
        perm = label_permutation(ordered_label_names(model.config.id2label), self.label_names)
        kwargs = {}
        if "label_names" in inspect.signature(label_dataset).parameters:
            kwargs["label_names"], perm = self.label_names, None  # label_dataset matches the names itself
        out = label_dataset(ds, model, processor, batch_size=self.config.label_batch_size,
                            desc=f"weak labels ({what})", **kwargs)
        if perm is not None:  # a weak model with the same names in another order: reorder its logits by name
            logits = weak_logits_array(out)[:, perm]
            out = out.remove_columns(["weak_logits", "weak_label"]).add_column(
                "weak_logits", logits.tolist(), feature=logits_features(len(perm))["weak_logits"]
            ).add_column("weak_label", logits.argmax(-1).tolist())
        return out

    def supervision_of(self, w: WeakSupervisorConfig) -> Supervision:
        """:meth:`supervision`, computed once per supervisor."""
        if w.name not in self._supervisions:
            self._supervisions[w.name] = self.supervision(w)
        return self._supervisions[w.name]

    def supervision(self, w: WeakSupervisorConfig) -> Supervision:
        if w.source == "combine":
            return self._combined_supervision(w)
        splits = self.splits()
        key = self.weak_key(w)
        model, processor, n_train = self._weak_model(w)
        test_pred = None
        if model is not None:
            labelled_test = self._label(splits["test"], model, processor, f"{w.name}, test")
            test_pred = weak_logits_array(labelled_test).argmax(-1)
        if w.source in ("train", "model"):
            train = self._label(splits["strong_train"], model, processor, f"{w.name}, strong split")
        elif w.source == "noisy_labels":
            train = self._noisy_supervision(w, splits["strong_train"])
        else:
            train = self._given_weak_labels(w)
        sup_acc = float("nan")
        if "label" in train.column_names:
            sup_acc = accuracy(column_array(train, "weak_label"), column_array(train, "label"))
        record = {
            "key": key, "kind": "weak", "weak": w.name, "source": w.source,
            "test_accuracy": None if test_pred is None else accuracy(test_pred, column_array(splits["test"], "label")),
            "supervision_accuracy": sup_acc,
            "test_predictions": None if test_pred is None else test_pred.tolist(),
            "num_train_examples": n_train,
            **self._calibration(w, model, processor, train),
        }
        return Supervision(w.name, key, train, record)

    def _calibration(self, w: WeakSupervisorConfig, model, processor, train: Dataset) -> dict:
        """The supervisor's temperature (``fit_temperature``) and accuracy on ground truth it did not train on
        where possible: its ``calibration_size`` held-out examples, else the weak_train split (its own training data
        when it trained there: biased), else, for label noise, the strong split's true labels (the noise rate taken
        as known). Used by conf_select (weak_calibration_temperature) and combined supervisors."""
        if model is not None:
            if w.source == "train" and w.calibration_size:
                ds, basis = self._calibration_split(w)[0], f"{w.calibration_size} held-out {w.train_split} examples"
            elif "weak_train" in self.splits():
                ds, basis = self.splits()["weak_train"], "the weak_train split"
            else:
                return {}
            logits = weak_logits_array(self._label(ds, model, processor, f"{w.name}, calibration"))
            labels = column_array(ds, "label")
        elif w.source == "noisy_labels" and "label" in train.column_names:
            logits, labels = weak_logits_array(train), column_array(train, "label")
            basis = "the strong split's true labels (the noise rate taken as known)"
        else:
            return {}
        return {
            "calibration_temperature": fit_temperature(torch.from_numpy(logits), torch.from_numpy(labels)),
            "calibration_accuracy": accuracy(logits, labels),
            "calibration_basis": basis,
        }

    def _combined_supervision(self, w: WeakSupervisorConfig) -> Supervision:
        """Several supervisors' labels of the strong split as ``weak_logits_0..K-1`` (hf_w2s.multi_weak)."""
        members = [self.supervision_of(self._supervisor_config(n)) for n in w.combine]
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
            "key": self.weak_key(w), "kind": "weak", "weak": w.name, "source": "combine", "members": list(w.combine),
            # the report's weak accuracy (and PGR) for a combination is that of its best member
            "test_accuracy": max(accs) if accs else None, "supervision_accuracy": float("nan"),
            "test_predictions": None, "num_train_examples": None,
            "knobs": {k: v for k, v in knobs.items() if k != "weak_logits_columns"},
        }
        return Supervision(w.name, record["key"], train, record, run_knobs=knobs)

    def _student_args(self, sup: Supervision, spec: LossSpec) -> tuple[dict, Dataset | None]:
        """Knobs a student run takes from its supervisor, and conf_select's calibration set (the weak ground truth,
        which the student never trains on)."""
        knobs = dict(sup.run_knobs)
        calibration = None
        if spec.name == "conf_select":
            if "weak_calibration_temperature" not in spec.knobs and sup.record.get("calibration_temperature"):
                knobs["weak_calibration_temperature"] = sup.record["calibration_temperature"]
            calibration = self.splits().get("weak_train")
        return knobs, calibration

    def _noisy_supervision(self, w: WeakSupervisorConfig, ds: Dataset) -> Dataset:
        n = len(self.label_names)
        noisy = corrupt_labels(column_array(ds, "label"), n, w.label_noise_rate, w.label_noise_kind, w.seed)
        logits = np.zeros((len(noisy), n), dtype=np.float32)
        logits[np.arange(len(noisy)), noisy] = w.supervision_logit
        probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
        columns = {"weak_logits": logits.tolist(), "weak_label": noisy.tolist(),
                   "weak_confidence": probs.max(-1).tolist()}
        features = logits_features(n)
        for name, values in columns.items():
            ds = ds.add_column(name, values, feature=features[name])
        return ds

    def _given_weak_labels(self, w: WeakSupervisorConfig) -> Dataset:
        ds = load_image_dataset(w.weak_labels, w.weak_labels_split)
        missing = [c for c in (self.config.image_column, "weak_logits") if c not in ds.column_names]
        if missing:
            raise ValueError(f"weak-label dataset {w.weak_labels} lacks {missing}; columns: {ds.column_names}")
        width = len(ds[0]["weak_logits"]) if len(ds) else len(self.label_names)
        if width != len(self.label_names):
            raise ValueError(f"weak-label dataset {w.weak_labels}: weak_logits has {width} values per example but "
                             f"the dataset has {len(self.label_names)} classes")
        label_col = self.config.label_column
        if label_col in ds.column_names and isinstance(ds.features[label_col], ClassLabel):
            label_permutation(ds.features[label_col].names, self.label_names, source="weak-label dataset",
                              target="experiment dataset")
        keep = [c for c in (self.config.image_column, label_col, "weak_logits") if c in ds.column_names]
        ds = ds.select_columns(keep).rename_columns(
            {k: v for k, v in ((self.config.image_column, "image"), (label_col, "label")) if k != v and k in keep})
        if "weak_label" not in ds.column_names:
            ds = ds.add_column("weak_label", weak_logits_array(ds).argmax(-1).tolist())
        return ds

    # -- strong runs ---------------------------------------------------------------------------------------------

    def _training_config(self, loss: str, *, seed: int, run_dir: Path, spec: LossSpec | None = None,
                         args: dict | None = None, report_to=None, with_eval: bool = True) -> WeakToStrongConfig:
        args = dict(self.run_arguments(spec) if args is None else args)
        if not with_eval:
            args["eval_strategy"] = "no"
        return WeakToStrongConfig(
            output_dir=str(run_dir), w2s_loss=loss, seed=seed,
            report_to=self.config.report_to if report_to is None else report_to,
            save_strategy=args.pop("save_strategy", "no"), disable_tqdm=args.pop("disable_tqdm", True), **args,
        )

    def _fit(self, model, processor, train: Dataset, *, loss: str, seed: int, run_dir: Path, args: dict | None = None,
             spec: LossSpec | None = None, eval_dataset: Dataset | None = None, augmentation=None, report_to=None,
             extra_args: dict | None = None, calibration_dataset: Dataset | None = None):
        if extra_args:
            args = {**(self.run_arguments(spec) if args is None else args), **extra_args}
        training_args = self._training_config(loss, seed=seed, run_dir=run_dir, spec=spec, args=args,
                                              report_to=report_to, with_eval=eval_dataset is not None)
        collator = WeakToStrongCollator(image_processor=processor, train_transform=augmentation,
                                        weak_logits_columns=training_args.weak_logits_columns)
        trainer = WeakToStrongTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=eval_dataset,
                                      processing_class=processor, data_collator=collator,
                                      calibration_dataset=calibration_dataset)
        # one line per run instead of every log dict (they stay in log_history and go to report_to);
        # `training: {disable_tqdm: false}` brings back the progress bars and the printed logs
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        return trainer

    def _strong_init(self) -> str | None:
        """Offline pre-training of the strong model (``strong_model.pretrain_dataset``), done once."""
        s = self.config.strong_model
        if not s.pretrain_dataset:
            return None
        if self._strong_init_path is None:
            key = stable_hash({"pretrain": non_default(s), "image_size": self.config.image_size,
                               "num_channels": self.config.num_channels, "v": HARNESS_VERSION})
            path = self.out / "strong_init" / key
            if not (path / "model" / "config.json").exists():
                data = _canonical(load_image_dataset(s.pretrain_dataset), "image", "label", s.pretrain_dataset)
                if s.pretrain_size:
                    data = _random_subset(data, s.pretrain_size, 0)
                names = list(data.features["label"].names)
                model = build_model(s.arch, names, image_size=self.config.image_size,
                                    num_channels=self.config.num_channels, width=s.width, depth=s.depth, seed=0)
                processor = tiny_image_processor(self.config.image_size, self.config.num_channels)
                self.log(f"pre-training the strong model on {s.pretrain_dataset} ({len(data)} examples)")
                args = {"num_train_epochs": s.pretrain_epochs, "learning_rate": s.pretrain_learning_rate,
                        "per_device_train_batch_size": s.pretrain_batch_size, "logging_steps": 10}
                self._fit(model, processor, data, loss="ground_truth", seed=0, run_dir=path / "run", args=args,
                          report_to="none")
                model.save_pretrained(path / "model.tmp")
                processor.save_pretrained(path / "model.tmp")
                (path / "model.tmp").rename(path / "model")
            self._strong_init_path = str(path / "model")
        return self._strong_init_path

    def strong_model(self, seed: int):
        s = self.config.strong_model
        torch.manual_seed(seed)
        if s.model:
            return _load_classifier(s.model, self.label_names, reset_head=True)
        init = self._strong_init()
        if init is not None:
            return _load_classifier(init, self.label_names, reset_head=True)
        model = build_model(s.arch, self.label_names, image_size=self.config.image_size,
                            num_channels=self.config.num_channels, width=s.width, depth=s.depth, seed=seed)
        return model, tiny_image_processor(self.config.image_size, self.config.num_channels)

    def _strong_run(self, key: str, kind: str, train: Dataset, *, seed: int, loss: str, spec: LossSpec | None,
                    run_dir: Path, extra: dict, supervision: Supervision | None = None) -> dict:
        splits = self.splits()
        model, processor = self.strong_model(seed)
        start = time.time()
        extra_args, calibration = self._student_args(supervision, spec) if supervision else ({}, None)
        trainer = self._fit(model, processor, train, loss=loss, seed=seed, run_dir=run_dir, spec=spec,
                            eval_dataset=splits["test"] if self.config.eval_during_training else None,
                            augmentation=_augmentation(self.config.augmentation), extra_args=extra_args,
                            calibration_dataset=calibration)
        prediction = trainer.predict(splits["test"])
        pred = np.asarray(prediction.predictions).argmax(-1)
        if self.config.save_students:
            trainer.save_model(str(run_dir / "model"))
        history = trainer.state.log_history
        combiner = trainer.weak_combiner
        return {
            "key": key, "kind": kind, "seed": seed, **extra,
            "test_accuracy": accuracy(pred, column_array(splits["test"], "label")),
            "mean_a": _mean_metric(history, "a"),
            "mean_student_selected": _mean_metric(history, "student_selected"),  # conf_select
            "weak_weights": None if combiner is None else combiner.weights().detach().cpu().tolist(),
            "test_predictions": pred.tolist(),
            "train_seconds": round(time.time() - start, 2),
            "log_history": history,
        }

    # -- the sweep -----------------------------------------------------------------------------------------------

    def run(self) -> dict[str, dict]:
        c = self.config
        self._claim_output_dir()
        done = self.store.load()
        total = len(self.planned_keys())
        count = 0

        def progress(message: str) -> None:
            nonlocal count
            count += 1
            self.log(f"[{count}/{total}] {message}")

        ensure_supervision = self.supervision_of

        for w in c.weak_supervisors:
            key = self.weak_key(w)
            if key in done:
                progress(f"weak {w.name}: done before, skipped")
                continue
            sup = ensure_supervision(w)
            self.store.append(sup.record)
            done[key] = sup.record
            acc = sup.record["test_accuracy"]
            progress(f"weak {w.name}: test accuracy {_pct(acc)}, supervision accuracy on the strong split "
                     f"{_pct(sup.record['supervision_accuracy'])}")
        if c.ceiling:
            for seed in c.seeds:
                key = self.ceiling_key(seed)
                if key in done:
                    progress(f"ceiling seed {seed}: done before, skipped")
                    continue
                record = self._strong_run(key, "ceiling", self.splits()["strong_train"], seed=seed,
                                          loss="ground_truth", spec=None,
                                          run_dir=self.out / "runs" / "ceiling" / f"seed{seed}", extra={})
                self.store.append(record)
                done[key] = record
                progress(f"ceiling seed {seed}: test accuracy {_pct(record['test_accuracy'])} "
                         f"({record['train_seconds']} s)")
        for seed in c.seeds:
            for w in c.weak_supervisors:
                for spec in c.losses:
                    key = self.w2s_key(w, spec, seed)
                    what = f"{w.name} / {spec.label} seed {seed}"
                    if key in done:
                        progress(f"{what}: done before, skipped")
                        continue
                    sup = ensure_supervision(w)
                    train = sup.train_dataset
                    if not spec.needs_labels and "label" in train.column_names:
                        train = train.remove_columns("label")  # the strong split is seen only through weak labels
                    record = self._strong_run(
                        key, "w2s", train, seed=seed, loss=spec.name, spec=spec,
                        run_dir=self.out / "runs" / _slug(w.name) / _slug(spec.label) / f"seed{seed}",
                        extra={"weak": w.name, "loss": spec.label, "loss_name": spec.name, "knobs": spec.knobs},
                        supervision=sup,
                    )
                    self.store.append(record)
                    done[key] = record
                    progress(f"{what}: test accuracy {_pct(record['test_accuracy'])} ({record['train_seconds']} s)")
        return done

    def results(self) -> list[dict]:
        """The stored records of this config's runs (records of other configs in the same file are left out)."""
        done = self.store.load()
        return [done[k] for k in self.planned_keys() if k in done]

    def report(self) -> str:
        from .report import write_report

        return write_report(self.config, self.results(), self.out / "report", key_of=self._keys_by_role())

    def _keys_by_role(self) -> dict:
        c = self.config
        return {
            "weak": {w.name: self.weak_key(w) for w in c.weak_supervisors},
            "ceiling": {s: self.ceiling_key(s) for s in c.seeds} if c.ceiling else {},
            "w2s": {(w.name, spec.label, s): self.w2s_key(w, spec, s)
                    for s in c.seeds for w in c.weak_supervisors for spec in c.losses},
        }


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f} %"


# --------------------------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hf-w2s experiment", add_help=False,
        description="Run a weak-to-strong sweep from a YAML config and write the report (table + plots). Any config "
                    "key can be overridden: --key value (YAML value), --section.key value for nested mappings.",
    )
    p.add_argument("--config", help="YAML experiment config (see recipes/experiments/)")
    p.add_argument("--report_only", "--report-only", action="store_true",
                   help="only rebuild the report from results.jsonl")
    p.add_argument("--dry_run", "--dry-run", action="store_true", help="validate the config and list the runs")
    p.add_argument("-h", "--help", action="store_true", help="show this help and every config key")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.help:
        print(parser.format_help() + config_help())
        return 0
    try:
        config = load_experiment_config(args.config, overrides)
        experiment = Experiment(config)
    except (ValueError, OSError) as err:
        print(f"hf-w2s experiment: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        c = config
        print(f"{len(c.weak_supervisors)} weak supervisor(s), {len(c.losses)} loss(es) x {len(c.seeds)} seed(s)"
              f" + {len(c.seeds) if c.ceiling else 0} ceiling run(s): "
              f"{len(experiment.planned_keys())} results in {c.output_dir}")
        for spec in c.losses:
            print(f"  {spec.label}: {spec.name} {spec.knobs}")
        return 0
    if not args.report_only:
        experiment.run()
    print(experiment.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
