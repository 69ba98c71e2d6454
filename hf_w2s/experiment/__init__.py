"""The one runner: an experiment of weak supervisors × losses × seeds (``hf-w2s train`` is one row, one seed), its
results, the saved student and the report."""

from .config import ExperimentConfig, LossSpec, WeakSupervisorConfig
from .runner import Experiment
from .store import ResultStore

__all__ = ["Experiment", "ExperimentConfig", "LossSpec", "ResultStore", "WeakSupervisorConfig"]
