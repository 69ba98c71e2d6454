"""Trackers and Hub pushes as ``Trainer`` does them, checked before any compute.

* :func:`check_report_to`: every tracker named in ``report_to`` must be installed, or the run is refused with the
  pip line (``transformers`` would only fail when the ``Trainer`` is built: after a weak supervisor has trained).
  ``tensorboard`` and ``trackio`` are extras of this package.
* :func:`check_hub_strategy`: ``hub_strategy`` pushes at every save, so a strategy that pushes checkpoints with no
  checkpoint ever saved is refused with the reason (``Trainer`` would silently push once at the end); so is a
  ``hub_revision`` that is a commit (pushes go to a branch, created when missing).
* :func:`name_run_logs`: each run's TensorBoard events go to ``<logs_root>/<run_name>``, so that one folder (pushed
  with the model) holds the weak, ceiling and student runs under their names.
"""

from __future__ import annotations

import os
import re

__all__ = ["TRACKER_EXTRAS", "check_report_to", "check_hub_strategy", "name_run_logs"]

#: trackers this package declares as extras (``pip install "hf_w2s[NAME]"``)
TRACKER_EXTRAS = ("tensorboard", "trackio")
#: transformers' report_to name -> (its is_*_available suffix, the pip requirement that provides it)
_TRACKERS = {
    "azure_ml": ("azureml", "azureml-core"), "comet_ml": ("comet", "comet_ml"), "dagshub": ("dagshub", "dagshub"),
    "dvclive": ("dvclive", "dvclive"), "mlflow": ("mlflow", "mlflow"), "neptune": ("neptune", "neptune"),
    "wandb": ("wandb", "wandb"), "codecarbon": ("codecarbon", "codecarbon"), "clearml": ("clearml", "clearml"),
    "flyte": ("flytekit", "flytekit"), "swanlab": ("swanlab", "swanlab"),
    "tensorboard": ("tensorboard", "tensorboard"), "trackio": ("trackio", "trackio"),
}
#: hub_strategy values that push checkpoints (not only the model at each save)
CHECKPOINT_STRATEGIES = ("checkpoint", "all_checkpoints")


def _value(x) -> str:
    return str(getattr(x, "value", x))


def check_report_to(report_to) -> None:
    """Refuse ``report_to`` naming a tracker that is not installed, with the pip line that installs it."""
    from transformers.integrations import integration_utils

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    missing = []
    for name in names:
        if name in ("none", "all") or name not in _TRACKERS:
            continue  # "all" takes what is installed; an unknown name is transformers' error
        suffix, requirement = _TRACKERS[name]
        if not getattr(integration_utils, f"is_{suffix}_available")():
            missing.append((name, f'"hf_w2s[{name}]"' if name in TRACKER_EXTRAS else requirement))
    if missing:
        trackers = ", ".join(name for name, _ in missing)
        pip = " ".join(req for _, req in missing)
        raise ValueError(f"report_to names {trackers}, which is not installed: pip install {pip} "
                         "(or set report_to none).")


def check_hub_strategy(args) -> None:
    """With ``push_to_hub``, a ``hub_strategy`` that pushes checkpoints needs checkpoints to be saved."""
    if not getattr(args, "push_to_hub", False):
        return
    strategy, save = _value(args.hub_strategy), _value(args.save_strategy)
    revision = args.hub_revision or ""
    if re.fullmatch(r"[0-9a-fA-F]{40}", revision):
        raise ValueError(f"hub_revision={revision} is a commit, and a push cannot go to a commit: name a branch "
                         "(created if it does not exist).")
    if strategy in CHECKPOINT_STRATEGIES and save == "no":
        raise ValueError(f"hub_strategy={strategy} pushes each saved checkpoint, but save_strategy is 'no', so "
                         "nothing would be pushed before the end: set save_strategy to epoch or steps, or "
                         "hub_strategy to end.")


def name_run_logs(trainer, logs_root: str | os.PathLike | None) -> None:
    """Send the trainer's TensorBoard events to ``logs_root/<run_name>`` (a run that has not started yet)."""
    if logs_root is None or os.getenv("TENSORBOARD_LOGGING_DIR"):  # the user's own choice wins
        return
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is None:
            callback.logging_dir = os.path.join(os.fspath(logs_root), trainer.args.run_name or "run")
