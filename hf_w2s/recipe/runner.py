"""One recipe run (``hf-w2s train``): train a weak-to-strong student, evaluate it, save it with its card, push it.

Steps: load the data → (fine-tune the weak supervisor on ground truth) → build the supervision (a weak-label
dataset, a weak model online or cached, or noisy labels) → train the student with
:class:`~hf_w2s.WeakToStrongTrainer` → evaluate (student, weak, optional ceiling, PGR) → save the student (plus a
LoRA adapter and the merged model) with its model card → optionally push it to the Hub with that card.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

from ..data.loading import PACKAGED_PREFIX, column_array, open_dataset, select_split
from ..data.splits import canonical_columns, random_subset, shots_per_class, w2s_splits
from ..losses import LOSSES
from ..metrics import accuracy, build_compute_metrics, evaluate_metric
from ..modeling import TINY_PREFIX, load_image_classifier, load_image_processor, loader_class_name
from ..security import redact_obj
from ..trainer.student_modes import FULL_TRAINING, is_peft_model
from .config import RecipeArguments

__all__ = ["StudentRecipe", "run_recipe", "RESULTS_FILE"]

RESULTS_FILE = "w2s_results.json"


def _value(option) -> str:
    """An enum option (``hub_strategy``) as its string."""
    return str(getattr(option, "value", option))


def _slug(name: str) -> str:
    """A model id or path as a run-name part: ``microsoft/resnet-18`` -> ``resnet-18``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(name.rstrip("/")))


def _same_processor(a, b) -> bool:
    return a is b or a.to_json_string() == b.to_json_string()


class StudentRecipe:
    """One ``hf-w2s train`` run, in the order it happens: :meth:`run` calls each step."""

    def __init__(self, script_args: RecipeArguments, training_args, command: str = ""):
        script_args.validate(training_args)  # the API's path too, not only hf-w2s train's
        self.sa, self.args, self.command = script_args, training_args, command
        self.output_dir = training_args.output_dir
        self.results: dict = {}
        self.weak = self.weak_processor = self.online_weak = None
        self.repo_id = self.resume_from = None

    def run(self) -> dict:
        """Train, evaluate, save, card and (optionally) push one student; returns the results (also written to
        ``output_dir/w2s_results.json``)."""
        from transformers import set_seed

        from ..hub import push_student

        self.check_output_dir()
        self.prepare_push()
        self.resume_from = self.hub_resume_checkpoint()
        set_seed(self.args.seed)
        self.load_data()
        self.prepare_validation()
        self.load_models()
        self.fit_weak_supervisor()
        self.add_supervision()
        self.train_student()
        self.evaluate_weak()
        self.save_student()
        self.train_ceiling()
        self.write_card()
        if self.repo_id:
            self.results["repo_id"] = push_student(self.output_dir, self.repo_id, token=self.args.hub_token,
                                                   private=self.args.hub_private_repo, revision=self.args.hub_revision)
        return self.results

    # -- before any compute ----------------------------------------------------------------------------------------

    def check_output_dir(self) -> None:
        out = self.output_dir
        self.check_foreign_files()
        if self.resume or self.args.overwrite_output_dir:
            return
        if os.path.isdir(out) and any(
            os.path.exists(os.path.join(out, f)) for f in ("config.json", "adapter", RESULTS_FILE)
        ):
            raise ValueError(f"output_dir {out!r} already holds a trained model; choose another output_dir or "
                             "pass --overwrite_output_dir to replace it.")

    @property
    def resume(self):
        """``resume_from_checkpoint`` as ``Trainer.train`` takes it (``--resume_from_checkpoint true``: the last
        complete checkpoint of output_dir), passed to the student's training."""
        from ..trainer.validation import resume_target

        return resume_target(self.args.resume_from_checkpoint, hub=bool(self.args.push_to_hub))

    def check_foreign_files(self) -> None:
        """The user's own files in output_dir are never silently replaced: a README.md that is not an hf_w2s card."""
        from ..trainer.validation import foreign_readme

        readme = foreign_readme(self.output_dir)
        if readme and not self.args.overwrite_output_dir:
            raise ValueError(f"output_dir {self.output_dir!r} holds a README.md that is not an hf_w2s model card "
                             f"({readme}); the run would replace it with the student's card. Move it, choose another "
                             "output_dir, or pass --overwrite_output_dir to replace it.")

    def prepare_push(self) -> None:
        """``push_to_hub``: the login, the repo and the ``hub_revision`` branch are checked (and made) now, before any
        compute. The student's Trainer pushes at its saves as ``hub_strategy`` says (``checkpoint``: the last
        checkpoint too, in ``last-checkpoint/``); the finished student, its card and the logs are pushed at the
        end (:func:`hf_w2s.hub.push_student`), to ``hub_revision`` if set."""
        from ..hub import resolve_repo_id

        if self.args.push_to_hub:
            self.repo_id = resolve_repo_id(self.args.hub_model_id, self.output_dir, self.args.hub_token,
                                           private=self.args.hub_private_repo, revision=self.args.hub_revision)
            self.args.hub_model_id = self.repo_id
        self.args.push_to_hub = bool(self.repo_id) and _value(self.args.hub_strategy) != "end"

    def hub_resume_checkpoint(self):
        """``resume_from_checkpoint`` as the Trainer takes it. Asked for as ``last-checkpoint`` (not a local folder)
        or ``true`` with no local checkpoint, while pushing with ``hub_strategy`` checkpoint / all_checkpoints, it is
        the last checkpoint the Trainer pushed: fetched from the Hub now, before any compute (or refused)."""
        from transformers.trainer_utils import get_last_checkpoint

        from ..hub import HUB_CHECKPOINT_FOLDERS, hub_checkpoint

        resume, args = self.args.resume_from_checkpoint, self.args
        if resume in ("true", "True"):
            from_hub = not (os.path.isdir(self.output_dir) and get_last_checkpoint(self.output_dir))
        else:
            from_hub = resume == "last-checkpoint" and not os.path.isdir(resume)
        if not (self.repo_id and from_hub):  # a checkpoint folder, or true: output_dir's last complete one (or refused)
            from ..trainer.validation import checkpoint_to_resume

            return checkpoint_to_resume(resume, self.output_dir)
        strategy = _value(args.hub_strategy)
        path = hub_checkpoint(self.repo_id, self.output_dir, strategy, revision=args.hub_revision,
                              token=args.hub_token) if strategy in HUB_CHECKPOINT_FOLDERS else None
        if path is None:
            raise ValueError(f"resume_from_checkpoint={resume}: {self.repo_id} holds no checkpoint pushed with "
                             f"hub_strategy checkpoint or all_checkpoints (hub_strategy is {strategy}).")
        self.results["resumed_from"] = f"{self.repo_id}/{os.path.basename(path)}"
        return path

    # -- data and models -------------------------------------------------------------------------------------------

    def _open(self, name: str):
        sa = self.sa
        data = open_dataset(name, config_name=sa.dataset_config, data_dir=sa.dataset_dir, revision=sa.dataset_revision)
        if name.startswith(PACKAGED_PREFIX) or not hasattr(data, "keys"):  # a single pool: carve the splits
            names = ("weak_train", "strong_train", "test") if len(sa.split_sizes) == 3 else (
                "weak_train", "strong_train", "validation", "test")
            data = w2s_splits(data, tuple(sa.split_sizes), seed=sa.split_seed, names=names)
        return data

    def _weak_train_without(self, held_out) -> None:
        """A weak model that trains on the student's own split (distillation) never trains on the validation rows
        carved from that split: they are removed from its training rows (matched by content)."""
        sa = self.sa
        if self.weak_train_ds is None or sa.weak_train_split != sa.dataset_train_split or sa.weak_labels_dataset:
            return
        from ..data.splits import example_hashes

        held = set(example_hashes(held_out, self.args.image_column))
        keep = [i for i, h in enumerate(example_hashes(self.weak_train_ds, self.args.image_column)) if h not in held]
        self.weak_train_ds = self.weak_train_ds.select(keep)

    def prepare_validation(self) -> None:
        """The validation split (evaluated during training, where checkpoints are chosen): a named split, or
        ``validation_size`` seeded examples carved out of the training split; then the check that training,
        weak-training, validation and test splits share no example."""
        sa = self.sa
        self.validation_ds = None
        if sa.validation_size:
            n = int(round(sa.validation_size * len(self.train_ds))) if sa.validation_size < 1 else int(
                sa.validation_size)
            if not 0 < n < len(self.train_ds):
                raise ValueError(f"validation_size {sa.validation_size} leaves no training or no validation example "
                                 f"of the {len(self.train_ds)}-example training split.")
            order = np.random.default_rng(sa.split_seed).permutation(len(self.train_ds))
            self.validation_ds = self.train_ds.select(np.sort(order[:n]))
            self.train_ds = self.train_ds.select(np.sort(order[n:]))
            where = f"{n} examples carved from {sa.dataset_train_split}"
            self._weak_train_without(self.validation_ds)
        elif sa.dataset_validation_split:
            data = self._open(sa.dataset_name or sa.weak_labels_dataset)
            self.validation_ds = canonical_columns(
                select_split(data, sa.dataset_validation_split, "dataset_validation_split"),
                label_column=sa.label_column, where="the validation split")
            self.validation_ds = self.checked(self.validation_ds, "validation", True)
            where = f"split {sa.dataset_validation_split}"
        if self.validation_ds is not None:
            if "label" not in self.validation_ds.column_names:
                raise ValueError(f"the validation split ({where}) has no label column {sa.label_column!r}: choosing "
                                 "on it needs ground truth.")
            self.results["validation"] = {"split": where, "examples": len(self.validation_ds)}
        if self.weak_train_ds is not None and sa.weak_shots_per_class:
            self.weak_train_ds = shots_per_class(self.weak_train_ds, sa.weak_shots_per_class, seed=sa.split_seed)
        if sa.check_disjoint:
            from ..data.splits import check_disjoint

            held_out = {"validation": self.validation_ds, "test": self.eval_ds}
            check_disjoint({"training": self.train_ds, **held_out}, self.args.image_column, where="hf-w2s train")
            if self.weak_train_ds is not None:
                # the weak model may share the student's training images (distillation: the same split) but never
                # a held-out one; a weak split of another name is meant to be disjoint from the student's
                shared = sa.weak_train_split == sa.dataset_train_split and not sa.weak_labels_dataset
                check_disjoint({"weak_train": self.weak_train_ds, **({} if shared else {"training": self.train_ds}),
                                **held_out}, self.args.image_column, where="hf-w2s train")

    def load_data(self) -> None:
        sa, args = self.sa, self.args
        data = self._open(sa.dataset_name) if sa.dataset_name else None
        if sa.weak_labels_dataset:
            weak_data = self._open(sa.weak_labels_dataset)
            train = select_split(weak_data, sa.dataset_train_split, f"weak_labels_dataset {sa.weak_labels_dataset!r}")
            if args.weak_logits_column not in train.column_names:
                raise ValueError(f"weak_labels_dataset {sa.weak_labels_dataset!r} has no "
                                 f"{args.weak_logits_column!r} column (columns: {train.column_names}); label it "
                                 "with hf-w2s label first.")
            data = data if data is not None else weak_data
        else:
            train = select_split(data, sa.dataset_train_split, f"dataset {sa.dataset_name!r}")
        self.eval_name = sa.dataset_name or sa.weak_labels_dataset
        test = select_split(data, sa.dataset_test_split, f"dataset {self.eval_name!r}")
        for what, ds in (("training", train), ("evaluation", test)):
            if args.image_column not in ds.column_names:
                raise ValueError(f"the {what} split has no image column {args.image_column!r} (columns: "
                                 f"{ds.column_names}); set image_column.")
        has_labels = self.check_label_columns(train, test)
        test = canonical_columns(test, label_column=sa.label_column, where="the evaluation split")
        train = canonical_columns(train, label_column=sa.label_column if has_labels else None)
        self.names = resolve_label_names(sa, train, test)
        train = self.checked(train, "training", self.train_needs_labels())
        test = self.checked(test, "evaluation", True)
        self.results["label_names"] = self.names
        self.train_ds = random_subset(train, sa.max_train_samples, sa.split_seed)
        self.eval_ds = random_subset(test, sa.max_eval_samples, sa.split_seed)
        self.labels = column_array(self.eval_ds, "label")
        self.weak_train_ds = None
        if sa.weak_train_split:
            weak_train = canonical_columns(select_split(data, sa.weak_train_split, "weak_train_split"),
                                           label_column=sa.label_column, where="the weak_train split")
            self.weak_train_ds = self.checked(weak_train, "weak_train", True)  # k shots: prepare_validation

    def check_label_columns(self, train, test) -> bool:
        """``label_column`` exists in the evaluation split, and in the training split unless that split has no
        labels at all (weak supervision only): a misspelled name is an error, never a fallback to ``label``. Returns
        whether the training split has labels."""
        from ..trainer.validation import LABEL_COLUMNS, missing_column_error

        sa = self.sa
        if sa.label_column not in test.column_names:
            raise missing_column_error("evaluation", "label", sa.label_column, test.column_names, "label_column")
        if sa.label_column in train.column_names:
            return True
        if self.train_needs_labels() or any(c in train.column_names for c in LABEL_COLUMNS):
            raise missing_column_error("training", "label", sa.label_column, train.column_names, "label_column")
        return False

    def train_needs_labels(self) -> bool:
        """Whether the training split's true labels are used: noisy labels, the ceiling, a ground-truth term."""
        sa, args = self.sa, self.args
        return sa.label_noise_rate > 0 or sa.compute_ceiling or LOSSES[args.w2s_loss].needs_labels or (
            args.gt_loss_weight > 0)

    def checked(self, dataset, what: str, needs_labels: bool):
        """The data checks of one split before any compute (labels within the class names, or class names mapped to
        ids; every image there and decodable): :func:`hf_w2s.trainer.validation.check_dataset`."""
        from ..trainer.validation import check_dataset

        return check_dataset(dataset, what=what, image_column=self.args.image_column,
                             label_column="label" if "label" in dataset.column_names else None,
                             label_names=self.names, needs_labels=needs_labels,
                             decode_images=self.args.check_images)

    def load_models(self) -> None:
        """The processors, the student and the weak model: loaded (and their label names checked) before any
        compute."""
        sa = self.sa
        self.tiny = dict(image_size=sa.image_size, num_channels=sa.num_channels)
        self.processor = load_image_processor(sa.image_processor_name_or_path or sa.model_name_or_path,
                                              revision=sa.model_revision, input_size=sa.input_size, **self.tiny)
        self.compute_metrics = build_compute_metrics(sa.metrics)
        if sa.weak_model_name_or_path:
            self.weak = load_image_classifier(sa.weak_model_name_or_path, self.names, revision=sa.model_revision,
                                              seed=self.args.seed, fresh_head=True if sa.weak_train_split else False,
                                              **self.tiny)
            self.weak_processor = load_image_processor(
                sa.weak_image_processor_name_or_path or sa.weak_model_name_or_path, revision=sa.model_revision,
                **self.tiny)
        self.student = self.new_student(save_tiny_base=True)

    def collator(self, processor, weak_processor=None, mixup_alpha: float = 0.0, augment: bool | None = None,
                 cutmix_alpha: float = 0.0):
        from ..trainer.augment import AugmentingCollator, TrainAugmentation

        sa = self.sa
        augmentation = TrainAugmentation.from_image_processor(
            processor, crop_scale=(sa.crop_scale_min, 1.0), hflip=sa.hflip, randaugment_n=sa.randaugment_n,
            randaugment_m=sa.randaugment_m, random_erasing=sa.random_erasing,
        ) if (sa.augment if augment is None else augment) else None
        return AugmentingCollator(image_processor=processor, weak_image_processor=weak_processor,
                                  image_column=self.args.image_column, weak_logits_column=self.args.weak_logits_column,
                                  train_transform=augmentation, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha)

    # -- training --------------------------------------------------------------------------------------------------

    def _fit(self, model, args, train, processor, collator, eval_dataset=None, weak_model=None, weak_processor=None,
             resume_from_checkpoint=None):
        from ..trainer.fit import fit

        # every run's TensorBoard events under output_dir/runs/<run name>: pushed with the student
        return fit(model, args, train, eval_dataset=eval_dataset, processor=processor, collator=collator,
                   weak_model=weak_model, weak_processor=weak_processor, compute_metrics=self.compute_metrics,
                   logs_root=os.path.join(self.output_dir, "runs"), resume_from_checkpoint=resume_from_checkpoint)

    def fit_weak_supervisor(self) -> None:
        """Fine-tune the weak model on the ground truth of ``weak_train_split`` (k per class for few-shot)."""
        from ..distributed import unshard_model
        from ..trainer.fit import auxiliary_args

        if self.weak is None or self.weak_train_ds is None:
            return
        sa = self.sa
        weak_args = auxiliary_args(self.args, os.path.join(self.output_dir, "weak_model"), w2s_loss="ground_truth",
                                   num_train_epochs=sa.weak_num_train_epochs, learning_rate=sa.weak_learning_rate,
                                   max_steps=-1, layer_decay=1.0, run_name=f"weak-{_slug(sa.weak_model_name_or_path)}"
                                   f"-seed{self.args.seed}", **FULL_TRAINING)
        trainer = self._fit(self.weak, weak_args, self.weak_train_ds, self.weak_processor,
                            self.collator(self.weak_processor, augment=sa.augment and sa.weak_augment))
        self.weak = unshard_model(trainer.model)  # trained with FSDP: a plain replica for labelling / online use
        trainer.save_model(weak_args.output_dir)
        self.results["weak_train_examples"] = len(self.weak_train_ds)

    def weak_logits_on(self, dataset) -> np.ndarray:
        """The weak model's logits on ``dataset``, columns in the student's label order (matched by name)."""
        from ..data.weak_labels import label_dataset, weak_logits_array

        labelled = label_dataset(dataset, self.weak, self.weak_processor, logits_column="_weak",
                                 image_column=self.args.image_column, label_names=self.names)
        return weak_logits_array(labelled, "_weak")

    def add_supervision(self) -> None:
        """Noisy labels or cached weak logits become a column of the training split; otherwise online."""
        from ..data.noise import add_noisy_labels

        sa, args = self.sa, self.args
        self.noise_desc = None
        if sa.label_noise_rate > 0:
            self.train_ds = add_noisy_labels(
                self.train_ds, sa.label_noise_rate, kind=sa.label_noise_kind, seed=sa.label_noise_seed,
                num_classes=len(self.names), transition=sa.label_noise_transition,
                confidence=sa.label_noise_confidence, logits_column=args.weak_logits_column)
            noisy, clean = column_array(self.train_ds, "noisy_label"), column_array(self.train_ds, "label")
            self.results["label_noise"] = {"kind": sa.label_noise_kind, "rate": sa.label_noise_rate,
                                           "realised": float(np.mean(noisy != clean)), "seed": sa.label_noise_seed}
            self.noise_desc = (f"ground truth with {sa.label_noise_kind} label noise at rate {sa.label_noise_rate} "
                               f"(seed {sa.label_noise_seed})")
        elif self.weak is not None and LOSSES[args.w2s_loss].uses_weak:
            if sa.weak_supervision == "cached":
                from datasets import List, Value

                logits = self.weak_logits_on(self.train_ds)
                self.train_ds = self.train_ds.add_column(args.weak_logits_column, logits.tolist(),
                                                         feature=List(Value("float32"), length=len(self.names)))
            else:
                self.online_weak = self.weak

    def new_student(self, save_tiny_base: bool = False):
        """The student (the trainer applies its ``student_mode``: LoRA, frozen parts)."""
        sa = self.sa
        model = load_image_classifier(sa.model_name_or_path, self.names, revision=sa.model_revision,
                                      seed=self.args.seed, **self.tiny)  # a fresh head unless it has these labels
        if self.args.student_mode_in_effect() == "lora" and save_tiny_base \
                and sa.model_name_or_path.startswith(TINY_PREFIX):
            # a tiny base exists nowhere else: keep its weights for the adapter's load path
            model.save_pretrained(os.path.join(self.output_dir, "base_model"))
        return model

    def train_student(self) -> None:
        from ..trainer.fit import predict

        student = self.student
        weak_proc = None
        if self.online_weak is not None and not _same_processor(self.weak_processor, self.processor):
            weak_proc = self.weak_processor
        if not self.args.run_name or self.args.run_name == self.output_dir:
            self.args.run_name = f"student-{self.args.w2s_loss}-seed{self.args.seed}"
        collator = self.collator(self.processor, weak_proc, self.sa.mixup_alpha, cutmix_alpha=self.sa.cutmix_alpha)
        # evaluation during training (and the best checkpoint) on the validation split; the test split is read
        # once, below, after training
        self.trainer = self._fit(student, self.args, self.train_ds, self.processor, collator,
                                 eval_dataset=self.validation_ds, weak_model=self.online_weak,
                                 weak_processor=weak_proc, resume_from_checkpoint=self.resume_from)
        self.args.push_to_hub = False  # the Trainer's pushes end with training; the student goes with its card
        self.student_logits, metrics = predict(self.trainer, self.eval_ds, prefix="eval")
        self.metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        self.results["metrics"] = self.metrics
        self.results["accuracy"] = metrics.get("eval_accuracy", accuracy(self.student_logits, self.labels))

    def evaluate_weak(self) -> None:
        """Weak accuracy on the evaluation split (from the weak model, or a weak_logits column there)."""
        weak_logits = None
        if self.weak is not None:
            weak_logits = self.weak_logits_on(self.eval_ds)
        elif self.args.weak_logits_column in self.eval_ds.column_names:
            weak_logits = column_array(self.eval_ds, self.args.weak_logits_column, np.float32)
        weak_acc = self.sa.weak_accuracy
        if weak_logits is not None:
            weak_acc = accuracy(weak_logits, self.labels)
            self.results["agreement"] = evaluate_metric("agreement", self.student_logits, weak_logits)["agreement"]
        self.results["weak_accuracy"] = weak_acc

    def save_student(self) -> None:
        """The plain student at ``output_dir``; for LoRA also the adapter in ``adapter/`` (merged at the root)."""
        os.makedirs(self.output_dir, exist_ok=True)
        self.lora_info = None
        if not is_peft_model(self.trainer.model):
            self.trainer.save_model(self.output_dir)
            return
        from ..lora import save_lora_student

        peft_cfg = next(iter(self.trainer.model.peft_config.values()))
        tiny_base = self.sa.model_name_or_path.startswith(TINY_PREFIX)
        save_lora_student(self.trainer.model, self.output_dir, image_processor=self.processor,
                          base_model_name_or_path=None if tiny_base else self.sa.model_name_or_path)
        self.lora_info = {"r": peft_cfg.r, "alpha": peft_cfg.lora_alpha,
                          "target_modules": sorted(peft_cfg.target_modules),
                          "modules_to_save": sorted(peft_cfg.modules_to_save)}

    def train_ceiling(self) -> None:
        """With ``compute_ceiling``: the same student trained on the ground truth (no mixup), and PGR."""
        from ..trainer.fit import auxiliary_args, predict

        ceiling = self.sa.ceiling_accuracy
        if self.sa.compute_ceiling:
            if "label" not in self.train_ds.column_names:
                raise ValueError("compute_ceiling needs ground-truth labels in the training split.")
            with tempfile.TemporaryDirectory() as tmp:
                args = auxiliary_args(self.args, tmp, w2s_loss="ground_truth", gt_loss_weight=0.0,
                                      run_name=f"ceiling-seed{self.args.seed}")
                trainer = self._fit(self.new_student(), args, self.train_ds, self.processor,
                                    self.collator(self.processor))
                logits, _ = predict(trainer, self.eval_ds)
            ceiling = accuracy(logits, self.labels)
        self.results["ceiling_accuracy"] = ceiling
        weak = self.results["weak_accuracy"]
        pgr = None
        if weak is not None and ceiling is not None:
            pgr = evaluate_metric("pgr", self.student_logits, self.labels, weak_accuracy=weak,
                                  ceiling_accuracy=ceiling)["pgr"]
            pgr = None if math.isnan(pgr) else pgr
        self.results["pgr"] = pgr

    def write_card(self) -> None:
        """``README.md`` (the model card) and ``w2s_results.json`` next to the saved student."""
        from ..hub import lora_load_snippet, render_student_card
        from ..trainer.validation import atomic_write
        from .describe import card_arguments

        sa = self.sa
        card_repo = self.repo_id or os.path.abspath(self.output_dir)
        if self.lora_info is not None:
            tiny_base = sa.model_name_or_path.startswith(TINY_PREFIX)
            self.lora_info["load_snippet"] = lora_load_snippet(
                card_repo, sa.model_name_or_path, base_class=loader_class_name(self.trainer.model),
                base_subfolder="base_model" if tiny_base else None)
        card = render_student_card(**card_arguments(self, card_repo))
        with atomic_write(os.path.join(self.output_dir, "README.md")) as f:  # whole or not at all
            f.write(str(card))
        with atomic_write(os.path.join(self.output_dir, RESULTS_FILE)) as f:
            json.dump(redact_obj(self.results), f, indent=2)


def resolve_label_names(script_args: RecipeArguments, *datasets) -> list[str]:
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


def run_recipe(script_args: RecipeArguments, training_args, command: str = "") -> dict:
    """Run one recipe (see :class:`StudentRecipe`); returns its results."""
    return StudentRecipe(script_args, training_args, command).run()
