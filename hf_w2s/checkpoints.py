"""Which Trainer checkpoint a run resumes from: the last *complete* one.

The one scan of ``checkpoint-N`` folders, on transformers' own rule (``trainer_utils.get_last_checkpoint`` and its
``checkpoint-N`` pattern): the newest is taken when it is complete, older ones are tried after it (a save cut short
by a crash or a full disk leaves a folder that looks like a checkpoint). Complete means what the Trainer writes last,
``trainer_state.json``, parses, and the weights open (``safetensors.safe_open`` refuses a truncated file).
"""

from __future__ import annotations

import json
import logging
import os

logger = logging.getLogger(__name__)

__all__ = ["checkpoint_problem", "weights_problem", "last_complete_checkpoint", "checkpoint_to_resume",
           "resume_target"]

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin",
                 "pytorch_model.bin.index.json", "adapter_model.bin")
_TRUE, _FALSE = {"true", "yes", "1"}, {"", "false", "no", "0", "none", "null"}


def _opens(path: str) -> bool:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, "pt") as f:
            f.keys()
    except (SafetensorError, OSError):
        return False
    return True


def weights_problem(folder) -> str | None:
    """Why the safetensors weights of a saved model folder cannot be read (a truncated download or save), or
    ``None``: each ``*.safetensors`` file's header must open (``safetensors.safe_open``; the tensors are not read)."""
    folder = str(folder)
    bad = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors") and not _opens(os.path.join(folder, n)))
    return f"its {bad[0]} is cut short or corrupt (safetensors cannot read it)" if bad else None


def checkpoint_problem(path: str) -> str | None:
    """Why the checkpoint folder ``path`` is not complete, or ``None`` when it is."""
    state = os.path.join(path, "trainer_state.json")
    if not os.path.isfile(state):
        return "it has no trainer_state.json (written last: the save did not finish)"
    try:
        with open(state) as f:
            json.load(f)
    except (OSError, ValueError):
        return "its trainer_state.json is cut short"
    names = os.listdir(path)
    weights = [n for n in _WEIGHT_FILES if n in names]
    sharded = [n for n in names if n.startswith(("pytorch_model_fsdp", "global_step"))]
    if not weights and not sharded:
        return "it holds no model weights"
    bad = [n for n in weights if n.endswith(".safetensors") and not _opens(os.path.join(path, n))]
    return f"its {bad[0]} is cut short" if bad else None


def last_complete_checkpoint(output_dir, warn: bool = True) -> str | None:
    """The newest complete checkpoint folder of ``output_dir`` (incomplete newer ones skipped, with a warning if
    ``warn``), or ``None``."""
    from transformers.trainer_utils import _re_checkpoint, get_last_checkpoint

    output_dir = str(output_dir)
    if not os.path.isdir(output_dir):
        return None
    newest = get_last_checkpoint(output_dir)
    if newest is None:
        return None
    steps = sorted((int(m.group(1)) for m in map(_re_checkpoint.search, os.listdir(output_dir)) if m), reverse=True)
    for path in [newest, *(os.path.join(output_dir, f"checkpoint-{s}") for s in steps)]:
        if not os.path.isdir(path):
            continue
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if warn:
            logger.warning("not resuming from %s: %s; trying the checkpoint before it", path, problem)
    return None


def resume_target(value, hub: bool = False):
    """``resume_from_checkpoint`` as ``Trainer.train`` takes it: ``None``, ``True`` (the last complete checkpoint of
    ``output_dir``; the command line's ``true``) or the path of a checkpoint folder, which must exist. With ``hub``
    (a run that pushes), ``last-checkpoint`` names the checkpoint the Trainer pushed (``hub_strategy`` checkpoint),
    fetched before any compute."""
    if value is None or value is False:
        return None
    if value is True:
        return True
    text = str(value).strip()
    if text.lower() in _FALSE:
        return None
    if text.lower() in _TRUE:
        return True
    if hub and text == "last-checkpoint" and not os.path.isdir(text):
        return text
    if not os.path.isdir(text):
        raise ValueError(f"resume_from_checkpoint {text!r} is not a folder; give a checkpoint folder "
                         "(output_dir/checkpoint-N), or true to resume from the last complete checkpoint in "
                         "output_dir.")
    return text


def checkpoint_to_resume(value, output_dir, warn: bool = True):
    """``resume_from_checkpoint`` resolved as training will use it: ``None``, a checkpoint folder that exists, or for
    ``True`` the last complete checkpoint of ``output_dir``; a ``ValueError`` when there is none."""
    target = resume_target(value)
    if target is not True:
        return target
    last = last_complete_checkpoint(output_dir, warn=warn)
    if last is None:
        raise ValueError(f"resume_from_checkpoint=True but output_dir {output_dir} holds no complete checkpoint-N "
                         "folder; start the run without resume_from_checkpoint.")
    return last
