"""Where a run writes, and what it never overwrites: the one output-folder policy.

* :func:`check_output_path`: an output path is a folder, or can be created as one, and is not empty text (checked
  when options are read).
* :func:`check_outside_inputs`: a command never writes into, or deletes from, a folder that holds one of its inputs
  (a dataset, a weak model, a student checkpoint, weak labels: another run's output), by resolved-path containment,
  before anything runs (``hf-w2s train`` / ``experiment`` / ``demo`` when the options are checked, ``hf-w2s label``).
* :func:`claim_output_dir`: the folder of a whole run (``hf-w2s train``, ``experiment``, ``demo``) is new, empty, or
  one that an earlier run of hf_w2s claimed (it holds :data:`RUN_CONFIG`) for the same data (and, for ``hf-w2s
  train``, the same run); anything else is the user's or another run's and refused unless ``overwrite``. The run's
  configuration is written there (redacted).
* :func:`check_output_dir` / :func:`write_run_file`: the folder of one training (``WeakToStrongTrainer``) holds that
  run's identity (:data:`RUN_FILE`); another run's files, or the checkpoints of this run interrupted
  (:func:`unfinished_checkpoints`), are refused unless resuming or ``overwrite_output_dir``.
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

__all__ = ["RUN_CONFIG", "RUN_FILE", "check_output_path", "check_outside_inputs", "claim_output_dir", "run_identity",
           "check_output_dir", "write_run_file", "unfinished_checkpoints", "finished_at", "INPUTS_RULE"]

#: the configuration a whole run writes into its output folder; its presence marks the folder as hf_w2s's
RUN_CONFIG = "w2s_config.yaml"


def _is_checkpoint(name: str) -> bool:
    from transformers.trainer_utils import _re_checkpoint

    return _re_checkpoint.search(name) is not None


def claim_output_dir(path, config: dict, *, overwrite: bool = False, option: str = "output_dir",
                     command: str = "") -> Path:
    """Make ``path`` the folder of a whole run and write ``config`` (already redacted) to it as :data:`RUN_CONFIG`.

    Refused (``FileExistsError``, before any compute) when it is a file, a non-empty folder that no hf_w2s run
    claimed, or the folder of another run that produced something (:func:`_another_run`: other data; for ``hf-w2s
    train``, an experiment's folder or another configuration), unless ``overwrite``; an earlier run of the same data
    is reused (its finished runs are kept; an experiment may extend its runs there)."""
    import yaml

    out = Path(path)
    check_output_path(out, option)
    if out.is_dir() and any(out.iterdir()) and not (out / RUN_CONFIG).exists() and not overwrite:
        raise FileExistsError(f"{option} {str(out)!r} is not empty and holds no {RUN_CONFIG}: it is not the folder of "
                              "an hf_w2s run, and nothing in it will be overwritten. Choose another "
                              f"{option} (or pass overwrite_output_dir true to write into it anyway).")
    config = {"command": _command_kind(command), **config}
    if (out / RUN_CONFIG).is_file() and not overwrite and _holds_results(out):
        try:
            old = yaml.safe_load((out / RUN_CONFIG).read_text()) or {}
        except (OSError, yaml.YAMLError):
            old = {}
        why = _another_run(old, json.loads(json.dumps(config, default=str)))
        if why:
            raise FileExistsError(f"{option} {str(out)!r} holds the output of another hf_w2s run ({why}); a run never "
                                  f"writes into another run's output. Choose another {option} (or pass "
                                  "overwrite_output_dir true to write into it anyway).")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / RUN_CONFIG) as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return out


def _holds_results(out: Path) -> bool:
    """Whether a claimed folder holds what a run produced (a finished run's record, or a saved student); a run that
    stopped before it trained anything (a bad option, a preflight) left nothing to protect."""
    results = out / "results.jsonl"
    return (results.is_file() and results.stat().st_size > 0) or (out / "student").exists()


def _command_kind(command: str) -> str:
    """``train``, ``experiment`` or ``demo`` for an ``hf-w2s`` command line, ``python`` otherwise."""
    words = str(command or "").split()
    return words[1] if len(words) > 1 and words[0] == "hf-w2s" else "python"


#: options of a run that do not change what it trains (compared when a folder is claimed again)
_NOT_THE_RUNS = frozenset({"plots", "title", "label_batch_size", "save_students"})


def _first_difference(old, new, prefix: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            found = _first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if old == new else f"{prefix.rstrip('.')}: {old!r} -> {new!r}"


def _another_run(old: dict, new: dict) -> str | None:
    """Why a folder claimed by the run of ``old`` (its :data:`RUN_CONFIG`) is another run's output for ``new``, or
    ``None``: other data (its splits and results are of other examples), or, for ``hf-w2s train`` (one student), the
    folder of an experiment or demo, or of another configuration (its student would be replaced)."""
    diff = _first_difference(old.get("data"), new.get("data"), "data.")
    if diff:
        return f"other data: {diff}"
    before, now = old.get("command"), new.get("command")
    if now != "train":
        return None  # an experiment may extend the runs of its folder
    if before in ("experiment", "demo"):
        return f"the folder of an hf-w2s {before}, whose saved student would be replaced"
    if before != "train":
        return None

    def runs(cfg: dict) -> dict:
        training = {k: v for k, v in (cfg.get("training") or {}).items() if not _NOT_THE_RUN.match(k)}
        kept = {k: v for k, v in (cfg.get("runs") or {}).items() if k not in _NOT_THE_RUNS}
        return {"runs": kept, "model": cfg.get("model"), "training": training}

    diff = _first_difference(runs(old), runs(new))
    return f"the student of another configuration, which would be replaced: {diff}" if diff else None


#: the rule every command keeps, quoted in its refusals
INPUTS_RULE = "a run never writes into, or deletes from, a folder that holds one of its inputs"


def _resolved(path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path)))).resolve()


def check_outside_inputs(output, inputs, option: str = "output_dir", *, own=None) -> None:
    """Refuse an ``output`` folder that is, contains or lies inside one of ``inputs`` — ``(what, path)`` pairs (a
    dataset, a weak model, a student checkpoint, weak labels: a Hub id or any path that does not exist is not a
    local input) — by resolved-path containment (symbolic links followed), before anything runs; an input inside the
    folder of another hf_w2s run (an experiment's saved student, ...) makes that whole folder an input. ``own``:
    inputs that are this run's own files inside ``output`` (a checkpoint it resumes from)."""
    if output is None or str(output).strip() == "":
        return
    out = _resolved(output)
    own = [_resolved(p) for p in (own or []) if p]
    for what, path in inputs:
        if not path or not isinstance(path, (str, os.PathLike)) or not os.path.exists(os.path.expanduser(str(path))):
            continue
        src = _resolved(path)
        if src in own:
            continue
        if src == out:
            relation, fix = "is", f"Choose another {option}"
        elif out in src.parents:
            relation, fix = "contains", f"Choose an {option} outside it"
        elif src in out.parents:
            relation, fix = "is inside", f"Choose an {option} outside it"
        else:
            root = _run_folder(src)  # an input inside another run's output: that whole folder is an input
            if root is None or root not in out.parents:
                continue
            raise ValueError(f"{option} {str(output)!r} is inside the output of the hf_w2s run {str(root)!r}, which "
                             f"holds the {what} {str(path)!r}: {INPUTS_RULE}. Choose an {option} outside it.")
        raise ValueError(f"{option} {str(output)!r} {relation} the {what} {str(path)!r}: {INPUTS_RULE}. {fix}.")


def _run_folder(path: Path) -> Path | None:
    """The folder of the whole hf_w2s run (it holds :data:`RUN_CONFIG`) that ``path`` is or lies in, or ``None``."""
    for folder in (path, *path.parents):
        if (folder / RUN_CONFIG).is_file():
            return folder
    return None


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


def unfinished_checkpoints(output_dir) -> list[str]:
    """The ``checkpoint-N`` folders of a training in ``output_dir`` that did not finish: none of them complete and at
    its ``max_steps`` (``trainer_state.json``), i.e. an interrupted run; ``[]`` when there are none or it finished."""
    from .checkpoints import last_complete_checkpoint

    if not os.path.isdir(output_dir):
        return []
    found = sorted((n for n in os.listdir(output_dir) if _is_checkpoint(n)), key=lambda n: int(n.rsplit("-", 1)[-1]))
    if not found:
        return []
    last = last_complete_checkpoint(output_dir, warn=False)
    if last is not None:
        try:
            with open(os.path.join(last, "trainer_state.json")) as f:
                state = json.load(f)
            if state.get("max_steps") and state.get("global_step", 0) >= state["max_steps"]:
                return []
        except (OSError, ValueError):
            pass
    return found


def finished_at(checkpoint, args) -> str | None:
    """``"step N of N"`` when the run a checkpoint folder belongs to had finished there for ``args`` (its
    ``max_steps``, else the steps and epochs its ``trainer_state.json`` planned), else ``None``."""
    try:
        with open(os.path.join(str(checkpoint), "trainer_state.json")) as f:
            state = json.load(f)
    except (OSError, ValueError, TypeError):
        return None
    step, planned = state.get("global_step", 0), state.get("max_steps") or 0
    if args.max_steps > 0:
        planned = args.max_steps
    elif (state.get("num_train_epochs") or 0) < args.num_train_epochs:
        return None
    return f"step {step} of {planned}" if planned and step >= planned else None


def check_output_dir(output_dir: str, identity: dict, *, resuming: bool, overwrite: bool, remove: bool = True) -> None:
    """Refuse an ``output_dir`` that holds another run, or this run interrupted, unless resuming or told to overwrite.

    * same run (same :func:`run_identity` fingerprint) that finished, or an empty / unrelated directory: fine;
    * resuming (``resume_from_checkpoint``): fine, with a warning listing what changed if the run differs;
    * another run (different fingerprint, or run files without an ``w2s_run.json``), or the same run interrupted
      (:func:`unfinished_checkpoints`: a rerun from step 0 would overwrite its checkpoints): ``ValueError`` unless
      ``overwrite`` — then its ``checkpoint-*`` folders are removed (by the process with ``remove``, the main one)
      so that a later resume cannot pick them up.
    """
    marker, found = _existing_run(output_dir)
    if not found:
        return
    same = bool(marker) and marker.get("fingerprint") == identity["fingerprint"]
    unfinished = unfinished_checkpoints(output_dir) if same else []
    if same and not unfinished:
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
    if unfinished:
        raise ValueError(
            f"output_dir {output_dir} holds this run, interrupted: {', '.join(unfinished[:8])} (not at its max_steps). "
            "Starting again from step 0 would overwrite them; pass resume_from_checkpoint=True to continue it, or "
            "overwrite_output_dir=True to start it again."
        )
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
    a folder (not a file), and is not empty text (which would be the working directory). Checked when the options
    are read, before any compute."""
    if path is not None and str(path).strip() == "":
        raise ValueError(f"{option} is empty text ({str(path)!r}): it would write into the working directory; name a "
                         f"folder for {option}.")
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
