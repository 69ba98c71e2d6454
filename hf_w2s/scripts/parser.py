"""The one command-line parser of the ``hf-w2s`` commands: ``HfArgumentParser`` plus ``--config FILE.yaml``.

Like TRL's ``TrlParser``: the YAML file's keys are the option names and give their values; flags on the command line
override them. The file's values go through the same type conversion as flags (a word where a number is expected,
or a number where a boolean is, is an error that names the option), an unknown key is an error that names it, and
every error is a ``ValueError`` (the ``hf-w2s`` dispatcher prints it as one line). ``--help`` lists ``--config`` first
and groups the options: the script's own, then the weak-to-strong ones, then ``transformers.TrainingArguments``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from contextvars import ContextVar
from typing import get_type_hints

from transformers import HfArgumentParser, TrainingArguments

from ..yaml_config import read_yaml

__all__ = ["W2SParser", "options_given"]

_GIVEN: ContextVar[frozenset | None] = ContextVar("hf_w2s_options_given", default=None)


def options_given() -> frozenset[str] | None:
    """While :meth:`W2SParser.parse` builds its dataclasses (their ``__post_init__``): the options that the command
    line or its ``--config`` file set, whatever their values (a flag equal to its default included); ``None`` when a
    dataclass is built in Python."""
    return _GIVEN.get()


def _group_title(dtype) -> str:
    doc = (dtype.__doc__ or dtype.__name__).strip().splitlines()[0].rstrip(".")
    return getattr(dtype, "_argument_group_name", None) or doc


class W2SParser(HfArgumentParser):
    """``HfArgumentParser`` over ``dataclass_types`` with ``--config FILE.yaml`` (see the module doc)."""

    def __init__(self, dataclass_types, *, prog: str, description: str,
                 config_help: str = "YAML file whose keys are any of the options below; flags given on the command "
                                    "line override it.", **kwargs):
        self._pending: list = []
        kwargs.setdefault("usage", f"{prog} [-h] [--config FILE.yaml] [options]")
        super().__init__(dataclass_types, prog=prog, description=description,
                         formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
        self.add_argument("--config", metavar="FILE.yaml", default=None, help=config_help)
        # the groups in the order --help shows them: weak-to-strong options, the script's, TrainingArguments
        groups: list[tuple[int, str, list]] = []
        for dtype in self._pending:
            hints = get_type_hints(dtype)
            fields_ = [f for f in dataclasses.fields(dtype) if f.init]
            for f in fields_:
                f.type = hints[f.name]
            if issubclass(dtype, TrainingArguments) and dtype is not TrainingArguments:
                base = {f.name for f in dataclasses.fields(TrainingArguments)}
                own = set(vars(dtype).get("__annotations__", {}))  # the class's own fields (w2s_loss, ...) first
                w2s = sorted((f for f in fields_ if f.name not in base), key=lambda f: f.name not in own)
                groups.append((0, "weak-to-strong options", w2s))
                groups.append((2, "training options (transformers.TrainingArguments)",
                               [f for f in fields_ if f.name in base]))
            else:
                groups.append((1, _group_title(dtype), fields_))
        for _, title, group_fields in sorted(groups, key=lambda g: g[0]):
            group = self.add_argument_group(title)
            for f in group_fields:
                self._parse_dataclass_field(group, f)

    def _add_dataclass_arguments(self, dtype) -> None:
        self._pending.append(dtype)  # added in __init__, grouped and ordered

    def error(self, message: str):
        raise ValueError(f"{message} (see {self.prog} --help)")

    def _config_argv(self, path: str) -> list[str]:
        """The YAML file's options as command-line words, so that they are converted and checked like flags."""
        values = read_yaml(path)
        actions = {}
        for a in self._actions:  # the option that takes a value (not its --no_X twin) stands for the key
            if a.option_strings and (a.dest not in actions or actions[a.dest].nargs == 0):
                actions[a.dest] = a
        unknown = sorted(k for k in values if k.replace("-", "_") not in actions or k == "config")
        if unknown:
            raise ValueError(f"unknown keys in {path}: {unknown} (see {self.prog} --help)")
        argv = []
        for key, value in values.items():
            action = actions[key.replace("-", "_")]
            flag = action.option_strings[0]
            if value is None:
                continue
            if isinstance(value, dict):  # e.g. fsdp_config: a mapping is taken as it is (a string would be a path)
                self.set_defaults(**{action.dest: value})
            elif isinstance(value, (list, tuple)) and action.nargs in ("+", "*"):
                argv += [flag, *(_word(v) for v in value)] if value else []
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
            rest = self._config_argv(known.config) + rest
        token = _GIVEN.set(_given_by(self, rest))
        try:
            out = self.parse_args_into_dataclasses(args=rest, return_remaining_strings=True)
        finally:
            _GIVEN.reset(token)
        # the namespace of what no dataclass took (our --config) is dropped
        objs, left = [o for o in out[:-1] if not isinstance(o, argparse.Namespace)], out[-1]
        if left and not remaining:
            raise ValueError(f"unrecognized arguments: {' '.join(left)} (see {self.prog} --help)")
        return (*objs, left) if remaining else tuple(objs)


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
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)
