"""The one schema of ``hf-w2s train``, ``experiment`` and ``demo``: four options classes, read by one parser from a
YAML file, a mapping or the command line, checked together before anything is loaded.

* :class:`~hf_w2s.ExperimentConfig` — the runs (weak supervisors, losses, seeds, ceiling, candidates, augmentation);
* :class:`~hf_w2s.DataConfig` — the dataset and its four splits;
* :class:`~hf_w2s.ModelConfig` — the strong student (and LoRA);
* :class:`~hf_w2s.WeakToStrongConfig` — the training arguments of every strong run (``TrainingArguments``' names).

:func:`load_config` returns them (and a command's own options); :func:`build_experiment` makes the
:class:`~hf_w2s.Experiment`.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Config", "make_parser", "load_config", "build_experiment"]


class Config(NamedTuple):
    experiment: object
    data: object
    model: object
    training: object
    script: object = None
    #: the options the file, the mapping or the command line set
    given: frozenset = frozenset()


def config_classes():
    from ..data.config import DataConfig
    from ..experiment.config import ExperimentConfig
    from ..model_config import ModelConfig
    from ..trainer.config import WeakToStrongConfig

    return ExperimentConfig, DataConfig, ModelConfig, WeakToStrongConfig


def make_parser(prog: str = "hf-w2s experiment", description: str = "", script_args=None, defaults: dict | None = None):
    """The one parser over the schema (the command's own options class first, if any); ``defaults`` replace the
    schema's defaults (the demo's setting)."""
    from .parser import W2SParser

    classes = ([script_args] if script_args is not None else []) + list(config_classes())
    titles = {classes[-1]: "the training arguments of every strong run (WeakToStrongConfig)"}
    parser = W2SParser(classes, prog=prog, description=description, titles=titles)
    if defaults:
        parser.set_defaults(**defaults)
    return parser


def _check_runner_set(given) -> None:
    from ..experiment.config import RUN_SET

    for name in sorted(set(given or ()) & set(RUN_SET) - {"output_dir", "image_column", "push_to_hub"}):
        raise ValueError(f"{name} is set by the runner for each run: use {RUN_SET[name]}.")


def load_config(config=None, *, values: dict | None = None, argv=None, script_args=None, prog: str = "hf-w2s",
                defaults: dict | None = None) -> Config:
    """The options of a run from a YAML file (``config``), a mapping (``values``: the file's keys) and command-line
    words (``argv``, which win), read and checked as ``hf-w2s`` reads them."""
    parser = make_parser(prog, script_args=script_args, defaults=defaults)
    words = list(argv or [])
    if config is not None:
        words = ["--config", str(config), *words]
    parsed = parser.parse_dict(values, words) if values is not None else parser.parse(words)
    given = parser.last_given | set(defaults or ())  # a command's own defaults are settings it gives
    _check_runner_set(parser.last_given)
    if script_args is None:
        return Config(*parsed, given=given)
    script, *rest = parsed
    return Config(*rest, script=script, given=given)


def build_experiment(config=None, *, values: dict | None = None, argv=None, **kwargs):
    """An :class:`~hf_w2s.Experiment` from a config file / mapping / words (:func:`load_config`); ``kwargs`` go to
    ``Experiment`` (``log``, ``verbose``, ``command``)."""
    from ..experiment.runner import Experiment

    cfg = load_config(config, values=values, argv=argv)
    return Experiment(cfg.experiment, cfg.data, cfg.model, cfg.training, given=cfg.given, **kwargs)
