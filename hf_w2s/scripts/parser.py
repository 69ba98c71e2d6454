"""The one command-line parser of the ``hf-w2s`` commands: ``HfArgumentParser`` plus ``--config FILE.yaml``.

Like TRL's ``TrlParser``: the YAML file's keys are the option names and give their values; flags on the command line
override them. The file's values go through the same conversion as flags (a word where a number is expected is an
error that names the option); an unknown key or flag is an error that names it, and a key of an earlier hf_w2s
release names its replacement (:data:`RENAMED`). Every error is a ``ValueError`` (the ``hf-w2s`` dispatcher prints it
as one line). ``--help`` lists ``--config`` first, then each options class as a group.

Options classes may share a field (``image_column`` is the data's and the trainer's): one option sets both. Fields
marked ``metadata={"yaml": True}`` hold structure (a mapping, a list of mappings): in a file they are written as YAML,
on the command line each value is read as YAML (``--losses weak_hard "{name: kd, kd_temperature: 2}"``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from contextvars import ContextVar
from typing import get_type_hints

from transformers import HfArgumentParser

from ..yaml_config import read_yaml, yaml_load

__all__ = ["W2SParser", "options_given", "RENAMED"]

_GIVEN: ContextVar[frozenset | None] = ContextVar("hf_w2s_options_given", default=None)

#: options of hf_w2s 0.2 and what replaced them in the one schema of 0.3 (an old key is an error naming this)
RENAMED = {
    "dataset_name": "dataset", "dataset_config_name": "dataset_config", "dataset_split": "train_split",
    "dataset_train_split": "train_split (the pool split_sizes are drawn from)",
    "dataset_test_split": "test_split", "dataset_validation_split": "validation_split",
    "dataset_dir": "data_dir", "validation_size": "split_sizes (its third size is the validation split)",
    "max_train_samples": "split_sizes", "max_eval_samples": "split_sizes",
    "weak_model_name_or_path": "weak_supervisors: [{model: ...}]",
    "weak_image_processor_name_or_path": "weak_supervisors: [{image_processor: ...}]",
    "weak_labels_dataset": "weak_supervisors: [{weak_labels: ...}]",
    "weak_supervision": "weak_supervisors: [{online: true|false}]",
    "weak_train_split": "weak_supervisors: [{train_split: ...}]",
    "weak_shots_per_class": "weak_supervisors: [{shots_per_class: ...}]",
    "weak_num_train_epochs": "weak_supervisors: [{num_train_epochs: ...}]",
    "weak_learning_rate": "weak_supervisors: [{learning_rate: ...}]",
    "weak_augment": "weak_supervisors: [{augment: true}]",
    "label_noise_rate": "weak_supervisors: [{source: noisy_labels, label_noise_rate: ...}]",
    "label_noise_kind": "weak_supervisors: [{label_noise_kind: ...}]",
    "label_noise_transition": "weak_supervisors: [{label_noise_transition: ...}]",
    "label_noise_seed": "weak_supervisors: [{seed: ...}]",
    "label_noise_confidence": "weak_supervisors: [{label_noise_confidence: ...}]",
    "augment": "augmentation (kornia classes: {RandomResizedCrop: {...}, RandomHorizontalFlip: {...}})",
    "crop_scale_min": "augmentation: {RandomResizedCrop: {scale: [min, 1.0]}}",
    "hflip": "augmentation: {RandomHorizontalFlip: {p: 0.5}}",
    "randaugment_n": "augmentation: {RandAugment: {n: ..., m: ...}}",
    "randaugment_m": "augmentation: {RandAugment: {n: ..., m: ...}}",
    "random_erasing": "augmentation: {RandomErasing: {p: ...}}",
    "compute_ceiling": "ceiling", "w2s_loss": "losses (a list; --losses adapt_conf)", "seed": "seeds (a list)",
    "strong_model": "model_name_or_path / input_size (top-level keys)",
    "training": "top-level keys (num_train_epochs, learning_rate, ...: TrainingArguments' own names)",
    "weak_accuracy": "nothing: the weak accuracy is measured", "ceiling_accuracy": "ceiling: true",
    "student_mode=lora": "use_peft", "overwrite": "overwrite_output_dir",
}


def options_given() -> frozenset[str] | None:
    """While :meth:`W2SParser.parse` builds its dataclasses (their ``__post_init__``): the options that the command
    line or its ``--config`` file set, whatever their values (a flag equal to its default included); ``None`` when a
    dataclass is built in Python."""
    return _GIVEN.get()


def _group_title(dtype, titles: dict | None = None) -> str:
    if titles and dtype in titles:
        return titles[dtype]
    doc = (dtype.__doc__ or dtype.__name__).strip().splitlines()[0].rstrip(".")
    return getattr(dtype, "_argument_group_name", None) or doc


class _YamlValues(argparse.Action):
    """A structured option: each word read as YAML; a list option takes several words (or one YAML list)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if self.nargs == "+":
            values = [yaml_load(v) for v in values]
            if len(values) == 1 and isinstance(values[0], list):
                values = values[0]
        else:
            values = yaml_load(values)
        setattr(namespace, self.dest, values)


class W2SParser(HfArgumentParser):
    """``HfArgumentParser`` over ``dataclass_types`` with ``--config FILE.yaml`` (see the module doc); ``titles``
    names the help's group of an options class (default: its ``_argument_group_name``, else its doc's first line)."""

    def __init__(self, dataclass_types, *, prog: str, description: str,
                 config_help: str = "YAML file whose keys are any of the options below; flags given on the command "
                                    "line override them.", titles: dict | None = None, **kwargs):
        self._pending: list = []
        self.last_given: frozenset[str] = frozenset()
        self._given_as_values: set[str] = set()  # options of a config set as values, not words (see _config_argv)
        kwargs.setdefault("usage", f"{prog} [-h] [--config FILE.yaml] [options]")
        super().__init__(dataclass_types, prog=prog, description=description,
                         formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
        self.add_argument("--config", metavar="FILE.yaml", default=None, help=config_help)
        seen: set[str] = set()
        for dtype in self._pending:
            hints = get_type_hints(dtype)
            fields_ = [f for f in dataclasses.fields(dtype) if f.init and f.name not in seen]
            seen.update(f.name for f in fields_)
            group = self.add_argument_group(_group_title(dtype, titles))
            for f in fields_:
                f.type = hints[f.name]
                if f.metadata.get("yaml"):
                    group.add_argument(f"--{f.name}", action=_YamlValues, nargs="+" if f.metadata.get("list") else None,
                                       default=f.default_factory() if f.default_factory is not dataclasses.MISSING
                                       else f.default, help=f.metadata.get("help"), metavar="YAML")
                else:
                    self._parse_dataclass_field(group, f)

    def _add_dataclass_arguments(self, dtype) -> None:
        self._pending.append(dtype)  # added in __init__, grouped, shared fields once

    def error(self, message: str):
        if "unrecognized arguments" in message:
            for word in message.split(":", 1)[-1].split():
                old = word.lstrip("-").split("=")[0].replace("-", "_")
                if word.startswith("--") and old in RENAMED:
                    raise ValueError(f"--{old} is gone in hf_w2s 0.3: use {RENAMED[old]} (see {self.prog} --help)")
        raise ValueError(f"{message} (see {self.prog} --help)")

    def _actions_by_dest(self) -> dict:
        actions = {}
        for a in self._actions:  # the option that takes a value (not its --no_X twin) stands for the key
            if a.option_strings and (a.dest not in actions or actions[a.dest].nargs == 0):
                actions[a.dest] = a
        return actions

    def _config_argv(self, values: dict, path: str) -> list[str]:
        """A config's options (a YAML file's, or a mapping given in Python) as command-line words, so that they are
        converted and checked like flags."""
        actions = self._actions_by_dest()
        for key in values:
            name = key.replace("-", "_")
            if name in RENAMED and name not in actions:
                raise ValueError(f"{path}: the key {key!r} is gone in hf_w2s 0.3: use {RENAMED[name]}")
        unknown = sorted(k for k in values if k.replace("-", "_") not in actions or k == "config")
        if unknown:
            raise ValueError(f"unknown keys in {path}: {unknown} (see {self.prog} --help)")
        argv = []
        for key, value in values.items():
            action = actions[key.replace("-", "_")]
            flag = action.option_strings[0]
            if value is None:
                continue
            if isinstance(action, _YamlValues):
                argv += [flag, json.dumps(value)]  # JSON is YAML: read back as the same structure
            elif isinstance(value, dict) or (isinstance(value, (list, tuple)) and (
                    not value or action.nargs not in ("+", "*"))):
                # taken as it is: a mapping (e.g. fsdp_config; a string would be a path), a list where the option
                # takes one word (e.g. report_to: [tensorboard, trackio]), an empty list (no words; refused where a
                # list may not be empty, e.g. seeds)
                self.set_defaults(**{action.dest: list(value) if isinstance(value, (list, tuple)) else value})
                self._given_as_values.add(action.dest)
            elif isinstance(value, (list, tuple)) and action.nargs in ("+", "*"):
                argv += [flag, *(_word(v) for v in value)]
            else:
                argv += [flag, _word(value)]
        return argv

    def parse(self, argv: list[str] | None = None, *, remaining: bool = False):
        """The dataclasses filled from ``--config`` and the flags (flags win); with ``remaining``, also the words
        no option took (returned last)."""
        argv = list(sys.argv[1:] if argv is None else argv)
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config", default=None)
        known, rest = pre.parse_known_args(argv)
        if known.config:
            rest = self._config_argv(read_yaml(known.config), known.config) + rest
        self.last_given = _given_by(self, rest) | self._given_as_values
        token = _GIVEN.set(self.last_given)
        try:
            namespace, left = self.parse_known_args(args=rest)
            # each options class takes its fields (a shared field goes to every class that has it)
            values = vars(namespace)
            objs = [dtype(**{f.name: values[f.name] for f in dataclasses.fields(dtype) if f.init and f.name in values})
                    for dtype in self.dataclass_types]
        finally:
            _GIVEN.reset(token)
        if left and not remaining:
            self.error(f"unrecognized arguments: {' '.join(left)}")
        return (*objs, left) if remaining else tuple(objs)

    def parse_dict(self, values: dict, argv: list[str] | None = None):
        """The dataclasses from a mapping of options (as a YAML file would give them), converted and checked as the
        command line's, then ``argv`` over them."""
        return self.parse([*self._config_argv(dict(values), "the options"), *(argv or [])])


def _given_by(parser: argparse.ArgumentParser, argv: list[str]) -> frozenset[str]:
    """The destinations ``argv`` sets: ``parser`` run with every default suppressed (restored after)."""
    saved, defaults = [(a, a.default) for a in parser._actions], dict(parser._defaults)
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        parser._defaults.clear()
        namespace, _ = argparse.ArgumentParser.parse_known_args(parser, argv)
    finally:
        for action, default in saved:
            action.default = default
        parser._defaults.update(defaults)
    return frozenset(vars(namespace))


def _word(value) -> str:
    """A YAML value as the command-line word argparse converts back (booleans as true/false, mappings as JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
