"""The experiment harness: a weak-to-strong sweep (weak supervisors × losses × seeds), its results and report."""

from .config import ExperimentConfig, load_experiment_config
from .runner import Experiment
from .store import ResultStore

__all__ = ["Experiment", "ExperimentConfig", "ResultStore", "load_experiment_config"]
