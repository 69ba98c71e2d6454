"""Where a run writes, and what it never overwrites: the one output-folder policy.

* :func:`check_output_path`: an output path is a folder, or can be created as one (checked when options are read).
* :func:`claim_output_dir`: the folder of a whole run (``hf-w2s train``, ``experiment``, ``demo``) is new, empty, or
  one that an earlier run of hf_w2s claimed (it holds :data:`RUN_CONFIG`); anything else is the user's and refused
  unless ``overwrite``. The run's configuration is written there (redacted).
* :func:`check_output_dir` / :func:`write_run_file`: the folder of one training (``WeakToStrongTrainer``) holds that
  run's identity (:data:`RUN_FILE`); another run's files are refused unless resuming or ``overwrite_output_dir``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from .files import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["RUN_CONFIG", "RUN_FILE", "check_output_path", "claim_output_dir", "run_identity", "check_output_dir",
           "write_run_file"]

#: the configuration a whole run writes into its output folder; its presence marks the folder as hf_w2s's
RUN_CONFIG = "w2s_config.yaml"


def _is_checkpoint(name: str) -> bool:
    from transformers.trainer_utils import _re_checkpoint

    return _re_checkpoint.search(name) is not None


def claim_output_dir(path, config: dict, *, overwrite: bool = False, option: str = "output_dir") -> Path:
    """Make ``path`` the folder of a whole run and write ``config`` (already redacted) to it as :data:`RUN_CONFIG`.

    Refused (``FileExistsError``, before any compute) when it is a file, or a non-empty folder that no hf_w2s run
    claimed, unless ``overwrite``; an earlier run's folder is reused (its finished runs are kept)."""
    import yaml

    out = Path(path)
    check_output_path(out, option)
    if out.is_dir() and any(out.iterdir()) and not (out / RUN_CONFIG).exists() and not overwrite:
        raise FileExistsError(f"{option} {str(out)!r} is not empty and holds no {RUN_CONFIG}: it is not the folder of "
                              "an hf_w2s run, and nothing in it will be overwritten. Choose another "
                              f"{option} (or pass overwrite_output_dir true to write into it anyway).")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / RUN_CONFIG) as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return out


RUN_FILE = "w2s_run.json"
#: what a run leaves that another run would overwrite (w2s_run.json alone only names a run that saved nothing)
_RUN_ARTEFACTS = ("trainer_state.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                  "adapter_model.safetensors", "config.json", "training_args.bin")
#: TrainingArguments that do not change what is trained (where it goes, how it is logged, saved or pushed)
_NOT_THE_RUN = re.compile(
    r"^(output_dir|logging_dir|run_name|overwrite_output_dir|resume_from_checkpoint|report_to|push_to_hub|hub_.*|"
    r"check_images|"
    r"logging_.*|save_.*|disable_tqdm|dataloader_.*|.*_token|project|trackio_.*|eval_.*|per_device_eval_batch_size|"
    r"do_train|do_eval|do_predict|include_.*|log_.*|skip_memory_metrics|ddp_.*)$"
)


def run_identity(args, model) -> dict:
    """What makes a run *this* run: the training arguments that affect the result and the student's config."""
    config = {k: v for k, v in sorted(args.to_dict().items()) if not _NOT_THE_RUN.match(k)}
    model_config = model.config.to_dict() if hasattr(model, "config") else {}
    model_config = {k: v for k, v in sorted(model_config.items()) if k not in ("transformers_version", "dtype")}
    # through JSON, as it is stored: int keys of id2label become strings, tuples become lists
    identity = json.loads(json.dumps({"config": config, "model": model_config}, sort_keys=True, default=str))
    blob = json.dumps(identity, sort_keys=True)
    return {"fingerprint": hashlib.sha256(blob.encode()).hexdigest()[:16], **identity}


def _existing_run(output_dir: str) -> tuple[dict | None, list[str]]:
    if not os.path.isdir(output_dir):
        return None, []
    names = sorted(os.listdir(output_dir))
    found = [n for n in names if n in _RUN_ARTEFACTS or _is_checkpoint(n)]
    marker = None
    if RUN_FILE in names:
        try:
            with open(os.path.join(output_dir, RUN_FILE)) as f:
                marker = json.load(f)
        except (OSError, ValueError):
            marker = {}
    return marker, found


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for section in ("config", "model"):
        a, b = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return out


def check_output_dir(output_dir: str, identity: dict, *, resuming: bool, overwrite: bool, remove: bool = True) -> None:
    """Refuse an ``output_dir`` that holds another run, unless resuming or told to overwrite.

    * same run (same :func:`run_identity` fingerprint) or an empty / unrelated directory: fine;
    * resuming (``resume_from_checkpoint``): fine, with a warning listing what changed if the run differs;
    * another run (different fingerprint, or run files without an ``w2s_run.json``): ``ValueError`` unless
      ``overwrite`` — then its ``checkpoint-*`` folders are removed (by the process with ``remove``, the main one)
      so that a later resume cannot pick them up.
    """
    marker, found = _existing_run(output_dir)
    if not found:
        return
    same = bool(marker) and marker.get("fingerprint") == identity["fingerprint"]
    if same:
        return
    diff = _differences(marker, identity) if marker else []
    if resuming:
        if diff:
            logger.warning("resuming a run in %s with changed settings: %s", output_dir, "; ".join(diff[:10]))
        return
    if overwrite:
        stale = [n for n in found if _is_checkpoint(n)]
        if not remove:
            return
        logger.warning("overwrite_output_dir: replacing the run in %s (removing %s)", output_dir, stale or "nothing")
        for name in stale:
            shutil.rmtree(os.path.join(output_dir, name))
        return
    what = f"a different run ({'; '.join(diff[:5])}{'; ...' if len(diff) > 5 else ''})" if diff else (
        "the files of another run")
    raise ValueError(
        f"output_dir {output_dir} already holds {what}: {', '.join(found[:8])}. Refusing to overwrite it; pass "
        "resume_from_checkpoint=True to continue that run, overwrite_output_dir=True to replace it, or choose "
        "another output_dir."
    )


def write_run_file(output_dir: str, identity: dict) -> None:
    with atomic_write(os.path.join(output_dir, RUN_FILE)) as f:
        json.dump(identity, f, indent=2, sort_keys=True, default=str)


def check_output_path(path, option: str = "output_dir") -> None:
    """``path`` can hold a run: it is a folder, or it does not exist yet and the nearest existing folder above it is
    a folder (not a file). Checked when the options are read, before any compute."""
    if not path:
        return
    full = probe = os.path.abspath(os.path.expanduser(str(path)))
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent
    if not os.path.isdir(probe):
        where = "" if probe == full else f" cannot be created: {probe!r}"
        raise ValueError(f"{option} {str(path)!r}{where} is a file, not a folder; choose a folder for {option}.")
