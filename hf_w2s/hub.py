"""The Hub edge of hf_w2s: model and dataset cards, and pushing students and weak labels.

* :func:`render_student_card` / :func:`weak_labels_card` render the Jinja templates in ``model_cards/`` (one lookup:
  :func:`template_path`) into ``huggingface_hub`` cards; every card is redacted (no token survives in it).
* :func:`push_student` uploads a saved student folder; :func:`push_weak_labels` pushes a labelled dataset with its
  card (a local copy is kept if anything fails); :func:`resolve_repo_id` checks the login and names the repo before
  any compute. Every Hub call runs under :func:`hf_w2s.security.redacted`: logs and errors carry no token.

One module of ~500 lines, on purpose: everything hf_w2s sends to the Hub or shows there (the cards' metadata, the
pushes, the checkpoint fetched to resume) is here, so that what a user can publish is read in one place.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path

from .losses import LOSSES
from .metrics import performance_gap_recovered
from .security import redact, redacted

CARD_TEMPLATE = "weak_labels.md"
STUDENT_TEMPLATE = "student.md"
CARD_TAGS = ["hf_w2s", "weak-to-strong", "weak-labels"]
#: what a student push leaves out, as Trainer's pushes do (checkpoints, "_*"), plus pickled arguments anywhere; the
#: logs (runs/) and the fine-tuned weak supervisor (weak_model/) go with the model. A checkpoint fetched from the Hub to
#: resume (last-checkpoint/) is pushed by the Trainer's own hub_strategy, not here.
PUSH_IGNORE = ["checkpoint-*", "last-checkpoint/*", "_*", "*training_args.bin"]
#: hub_strategy values under which the Trainer pushes checkpoints, and the folder the Hub repo keeps them in
HUB_CHECKPOINT_FOLDERS = {"checkpoint": "last-checkpoint", "all_checkpoints": "checkpoint-*"}
#: metrics measured against the weak supervisor: their card entries name it
WEAK_METRICS = ("agreement", "pgr")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class WeakLabelsPushError(RuntimeError):
    """A push of weak labels failed; ``local_dir`` holds a ``save_to_disk`` copy of the labelled dataset."""

    def __init__(self, message: str, local_dir: str):
        super().__init__(message)
        self.local_dir = local_dir


def template_path(name: str = STUDENT_TEMPLATE) -> str:
    """Path of a card template: the installed package data ``hf_w2s.model_cards`` first, then a source checkout's
    ``model_cards/``."""
    try:
        from importlib.resources import files

        candidate = files("hf_w2s.model_cards") / name
        if candidate.is_file():
            return str(candidate)
    except ModuleNotFoundError:
        pass
    candidate = Path(__file__).resolve().parent.parent / "model_cards" / name
    if not candidate.is_file():
        raise FileNotFoundError(f"card template {name!r} not found (looked in hf_w2s.model_cards and {candidate})")
    return str(candidate)


def _clean(card):
    """The card with every token redacted (a command line or an error that carried one)."""
    text = str(card)
    return card if redact(text) == text else type(card)(redact(text))


def command_line(words: list[str], options: dict) -> str:
    """``words`` plus ``--name value`` for each option that is set (``True`` → a bare flag; lists → several
    values; ``None``/``False`` left out), shell-quoted and redacted."""
    args = list(words)
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return redact(shlex.join(args))


# -- the student's model card ---------------------------------------------------------------------------------


def is_hub_id(name: str | None) -> bool:
    """``namespace/name`` that is not a local path: safe to put in card metadata as a Hub reference."""
    return bool(name) and bool(_HUB_ID.match(name)) and not os.path.exists(name)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def lora_load_snippet(repo_id: str, base_model: str | None, base_class: str = "AutoModelForImageClassification",
                      base_subfolder: str | None = None) -> str:
    """Python that loads the LoRA adapter on top of its base model."""
    if base_subfolder:
        base_line = f'base = {base_class}.from_pretrained("{repo_id}", subfolder="{base_subfolder}")'
    else:
        base_line = (f'base = {base_class}.from_pretrained(\n    "{base_model}", id2label=config.id2label, '
                     "label2id=config.label2id, ignore_mismatched_sizes=True)")
    return "\n".join([
        "from peft import PeftModel",
        f"from transformers import AutoConfig, {base_class}",
        "",
        f'config = AutoConfig.from_pretrained("{repo_id}")  # the student\'s label names',
        base_line,
        f'model = PeftModel.from_pretrained(base, "{repo_id}", subfolder="adapter")',
    ])


def _eval_results(scores: dict, dataset: str, config: str | None, split: str, revision: str | None = None,
                  weak_args: dict | None = None, provenance: dict | None = None) -> list:
    """``model-index`` entries (``EvalResult``) of the scores that are known (a NaN PGR is left out). The dataset's
    config, split and revision go where the card spec puts them, and which examples of the split (``provenance``:
    the run's split, its content fingerprint and the figures' role) in the dataset's ``args``; the metrics measured
    against the weak supervisor (agreement, PGR) carry it in their ``args`` (the arguments of the metric's
    computation)."""
    from huggingface_hub import EvalResult

    examples = None if not provenance else {f"w2s_{k}": v for k, v in provenance.items() if v is not None}
    common = dict(task_type="image-classification", task_name="Image Classification", dataset_type=dataset,
                  dataset_name=dataset, dataset_config=config, dataset_split=split, dataset_revision=revision,
                  dataset_args=examples)
    names = {"accuracy": "Accuracy", "pgr": "Performance gap recovered", "agreement": "Agreement with the weak "
             "supervisor"}
    return [EvalResult(metric_type=name, metric_name=names.get(name, name), metric_value=value,
                       metric_args=weak_args if name in WEAK_METRICS else None, **common)
            for name, value in scores.items() if value is not None and not (isinstance(value, float) and
                                                                          math.isnan(value))]


def render_student_card(  # long: one keyword argument per field of the card's template
    *,
    model_name: str,
    repo_id: str,
    architecture: str,
    label_names: list[str],
    loss: str,
    knobs: dict,
    hyperparameters: dict,
    base_model: str,
    weak_supervisor: str,
    dataset: str,
    train_split: str,
    eval_split: str,
    eval_split_desc: str | None = None,
    eval_dataset: str | None = None,
    dataset_config: str | None = None,
    dataset_revision: str | None = None,
    accuracy: float | None = None,
    agreement: float | None = None,
    weak_accuracy: float | None = None,
    ceiling_accuracy: float | None = None,
    extra_metrics: dict[str, float] | None = None,
    gt_loss_weight: float = 0.0,
    augmentation_desc: str = "none",
    noise_desc: str | None = None,
    lora: dict | None = None,
    command: str = "",
    max_train_samples: int | None = None,
    base_model_desc: str | None = None,
    weak_desc: str | None = None,
    dataset_desc: str | None = None,
    eval_provenance: dict | None = None,
):
    """Render the student's card: YAML metadata (``model-index`` with accuracy, agreement with the weak supervisor,
    and PGR when the weak and ceiling accuracies are known; the evaluation dataset's config, split and revision) plus
    the body of ``model_cards/student.md``. ``eval_split`` is the dataset's split the evaluation examples come from
    (``model-index``); ``eval_split_desc`` what the card's text says of them (default: the split);
    ``eval_provenance``: which examples of it (``{"split", "fingerprint", "role"}`` of the run's test figures,
    :mod:`hf_w2s.experiment.provenance`), in ``model-index`` as the dataset's ``args``. Returns a
    ``huggingface_hub.ModelCard``."""
    from huggingface_hub import ModelCard, ModelCardData

    from . import __version__

    eval_dataset = eval_dataset or dataset
    pgr = None
    if accuracy is not None and weak_accuracy is not None and ceiling_accuracy is not None:
        pgr = performance_gap_recovered(weak_accuracy, accuracy, ceiling_accuracy)
    scores = {"accuracy": accuracy, **(extra_metrics or {}), "agreement": agreement, "pgr": pgr}
    weak_args = {"weak_supervisor": weak_supervisor, "weak_accuracy": weak_accuracy,
                 "ceiling_accuracy": ceiling_accuracy}
    hub_datasets = [d for d in dict.fromkeys([dataset, eval_dataset]) if is_hub_id(d)]
    tags = ["image-classification", "weak-to-strong", "hf_w2s", loss.replace("_", "-")] + (["lora"] if lora else [])
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model if is_hub_id(base_model) else None,
        datasets=hub_datasets or None,
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=tags,
        metrics=["accuracy"],
        eval_results=_eval_results(scores, eval_dataset, dataset_config, eval_split, dataset_revision,
                                   {k: v for k, v in weak_args.items() if v is not None}, eval_provenance) or None,
    )
    results = [{"name": f"student {name}", "value": _fmt(value)} for name, value in scores.items()
               if value is not None and name not in WEAK_METRICS]
    if agreement is not None:
        results.append({"name": "agreement with the weak supervisor", "value": _fmt(agreement)})
    for name, value in (("weak supervisor accuracy", weak_accuracy),
                        ("ceiling accuracy (student trained on ground truth)", ceiling_accuracy), ("PGR", pgr)):
        if value is not None:
            results.append({"name": name, "value": _fmt(value)})
    preview = ", ".join(label_names[:20]) + (f", … ({len(label_names) - 20} more)" if len(label_names) > 20 else "")
    return _clean(ModelCard.from_template(
        card_data,
        template_path=template_path(STUDENT_TEMPLATE),
        model_name=model_name,
        repo_id=repo_id,
        architecture=architecture,
        num_labels=len(label_names),
        label_preview=preview,
        loss=loss,
        loss_description=LOSSES[loss].description if loss in LOSSES else "a custom loss.",
        knobs={k: _fmt(v) for k, v in knobs.items()},
        hyperparameters={k: _fmt(v) for k, v in hyperparameters.items()},
        gt_loss_weight=gt_loss_weight,
        base_model_desc=base_model_desc or f"`{base_model}`",
        weak_desc=weak_desc or f"`{weak_supervisor}`",
        dataset_desc=dataset_desc or f"`{dataset}`",
        eval_desc=f"`{eval_dataset}`",
        train_split=train_split,
        eval_split=eval_split_desc or eval_split,
        max_train_samples=max_train_samples,
        augmentation_desc=augmentation_desc,
        noise_desc=noise_desc,
        results=results,
        pgr_note="PGR = (student − weak) / (ceiling − weak): 0 means no better than the supervisor, 1 means the "
        "ground-truth ceiling." if pgr is not None else None,
        lora=lora,
        command=command,
        hf_w2s_version=__version__,
    ))


# -- weak labels: the dataset card and the push --------------------------------------------------------------------


def weak_labels_card(  # long: one keyword argument per field of the card, and its docstring
    dataset,
    repo_id: str,
    *,
    weak_model=None,
    weak_model_revision: str | None = None,
    source_dataset: str | None = None,
    source_split: str | None = None,
    source_revision: str | None = None,
    label_column: str | None = None,
    logits_column: str = "weak_logits",
    command: str | None = None,
    shards: list[dict] | None = None,
):
    """The ``DatasetCard`` of a weak-label dataset, rendered from ``model_cards/weak_labels.md``.

    Its YAML header carries ``weak_model``, ``weak_model_revision``, ``weak_model_sha256``, ``label_names``,
    ``weak_accuracy``, ``weak_logits_storage`` (``float32``, ``float16`` or ``topK``), ``source_datasets``,
    ``source_revision``, tags and the task category.

    Args:
        weak_model: a :class:`~hf_w2s.WeakModel` from ``load_weak_model`` (its Hub id, commit and a sha256 of its
            weights are recorded), an in-memory model (its ``_name_or_path`` and weights hash), or a Hub id string
            (with ``weak_model_revision``).
        source_dataset, source_split, source_revision: where the images came from (a stream's revision: the Hub
            commit it read).
        shards: the Parquet files of the data, ``[{"file": "data/...", "rows": n}, ...]``, named in the card.
        command: the exact command that reproduces the labels (the ``hf-w2s label`` CLI passes its own). By default
            it is built when the weak model has a Hub revision and ``source_dataset`` is given.
    """
    from datasets import ClassLabel
    from huggingface_hub import DatasetCard, DatasetCardData

    from . import __version__
    from .data.logit_storage import LogitStorage, storage_of
    from .data.weak_labels import (
        WEAK_LABEL_COLUMN,
        WeakModel,
        describe_weak_model,
        find_label_column,
        weak_label_accuracy,
        weights_hash,
    )

    sha = None
    if weak_model is not None and not isinstance(weak_model, str):
        info = describe_weak_model(weak_model)
        sha = weights_hash(weak_model.model if isinstance(weak_model, WeakModel) else weak_model)
        weak_model, weak_model_revision = info["name"], weak_model_revision or info["revision"]
    feature = dataset.features.get(WEAK_LABEL_COLUMN)
    if not isinstance(feature, ClassLabel):
        raise ValueError(
            f"the dataset has no {WEAK_LABEL_COLUMN!r} ClassLabel column: label it with hf_w2s.label_dataset first"
        )
    names = list(feature.names)
    label_column = find_label_column(dataset, label_column)
    accuracy = weak_label_accuracy(dataset, label_column)
    if command is None:
        command = reproduce_command(
            dataset, repo_id, weak_model=weak_model, weak_model_revision=weak_model_revision,
            source_dataset=source_dataset, source_split=source_split, logits_column=logits_column,
        )
    storage = storage_of(dataset.features.get(logits_column)) or LogitStorage("float32")
    data = {"tags": CARD_TAGS, "task_categories": ["image-classification"], "weak_model": weak_model,
            "weak_model_revision": weak_model_revision, "weak_model_sha256": sha, "label_names": names,
            "weak_accuracy": None if accuracy is None else round(accuracy, 6),
            "weak_logits_storage": storage.name, "source_datasets": [source_dataset] if source_dataset else None,
            "source_revision": source_revision}
    card_data = DatasetCardData(**{k: v for k, v in data.items() if v is not None})
    return _clean(DatasetCard.from_template(
        card_data,
        template_path=template_path(CARD_TEMPLATE),
        repo_id=repo_id,
        weak_model_on_hub=weak_model_revision is not None,
        weak_model_sha256=sha,
        weak_accuracy=accuracy,
        label_column=label_column,
        logits_column=logits_column,
        source_dataset=source_dataset,
        source_split=source_split,
        source_revision=source_revision,
        storage_desc=storage.describe(),
        shards=shards or [],
        num_examples=len(dataset),
        command=command,
        id2label={i: n for i, n in enumerate(names)},
        label2id={n: i for i, n in enumerate(names)},
        hf_w2s_version=__version__,
    ))


def reproduce_command(
    dataset, repo_id: str, *, weak_model: str | None, weak_model_revision: str | None,
    source_dataset: str | None, source_split: str | None, logits_column: str = "weak_logits",
) -> str | None:
    """The ``hf-w2s label`` command that remakes these labels from public sources, or ``None`` if it cannot."""
    from datasets import ClassLabel, Image

    from .data.weak_labels import WEAK_LABEL_COLUMN, find_label_column

    if not (weak_model and weak_model_revision and source_dataset):
        return None
    images = [c for c, f in dataset.features.items() if isinstance(f, Image)]
    names = list(dataset.features[WEAK_LABEL_COLUMN].names)
    gt = dataset.features.get(find_label_column(dataset) or "")
    image_column = images[0] if len(images) == 1 else "image"
    return command_line(["hf-w2s", "label"], {
        "weak_model": weak_model, "dataset": source_dataset, "output": "weak-labels",
        "split": source_split, "push_to_hub": repo_id, "revision": weak_model_revision,
        "image_column": None if image_column == "image" else image_column,
        "label_names": None if isinstance(gt, ClassLabel) and list(gt.names) == names else names,
        "logits_column": None if logits_column == "weak_logits" else logits_column,
    })


def _keep_local_copy(dataset, local_dir: str | None) -> str | None:
    """Save the dataset to ``local_dir`` unless it already holds exactly this dataset; refuse to overwrite."""
    if local_dir is None:
        return None
    path = Path(local_dir)
    if path.exists() and any(path.iterdir()):
        state = path / "state.json"
        if state.is_file() and json.loads(state.read_text()).get("_fingerprint") == dataset._fingerprint:
            return str(path)  # save_to_disk records the fingerprint (load_from_disk gives a new one)
        raise ValueError(f"local_dir {str(path)!r} exists and holds something else; refusing to overwrite it")
    dataset.save_to_disk(str(path))
    return str(path)


def _shard_files(dataset, split: str, max_shard_size, shards_dir):
    """``(path in repo, rows, write(local path) or None)`` per shard: the Parquet files already in ``shards_dir``
    (a streaming labelling's output: pushed as they are), else the dataset's contiguous shards of about
    ``max_shard_size`` bytes (written when their commit comes)."""
    from .data.parquet_shards import parquet_rows, plan_shards, shard_path, write_parquet
    from .data.stream_shards import shard_files

    if shards_dir is not None:
        files = shard_files(shards_dir, split)
        if not files:
            raise ValueError(f"shards_dir {str(shards_dir)!r} holds no Parquet shards data/{split}-*.parquet")
        return [(f"data/{Path(f).name}", parquet_rows(f), None, f) for f in files]
    plan = plan_shards(dataset, max_shard_size)
    return [(shard_path(split, i, len(plan)), len(rows), lambda path, rows=rows: write_parquet(dataset.select(rows),
                                                                                               path), None)
            for i, rows in enumerate(plan)]


def _upload_shards(api, repo_id: str, shards: list, per_commit: int, message: str) -> int:
    """Commit the shards in groups of ``per_commit`` (one ``create_commit`` each); returns the bytes uploaded.

    Resumable as ``huggingface_hub`` makes any commit: a file already in the repo with the same content is dropped
    from its commit (``preupload`` reports its sha256), and a blob the server already holds (uploaded before a
    commit failed) is not sent again (the LFS batch API asks for no upload); a group with nothing new makes no
    commit."""
    import tempfile

    from huggingface_hub import CommitOperationAdd

    sent = 0
    for first in range(0, len(shards), per_commit):
        group = shards[first:first + per_commit]
        with tempfile.TemporaryDirectory(prefix="hf_w2s-shards-") as staging:
            additions = []
            for path_in_repo, _, write, local in group:
                if local is None:
                    local = str(Path(staging) / Path(path_in_repo).name)
                    write(local)
                sent += Path(local).stat().st_size
                additions.append(CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=local))
            last = first + len(group)
            api.create_commit(repo_id, operations=additions, repo_type="dataset",
                              commit_message=f"{message} (shards {first + 1}-{last} of {len(shards)})")
    return sent


def card_data_files(card, dataset, split: str, uploaded: int) -> None:
    """What ``Dataset.push_to_hub`` writes into a dataset card, so that ``load_dataset(repo)`` reads the shards with
    their features: the ``configs`` (``data/SPLIT-*``) and the ``dataset_info``."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs

    size = dataset._estimate_nbytes() or 0
    splits = SplitDict()
    splits.add(SplitInfo(name=split, num_bytes=size, num_examples=len(dataset)))
    info = DatasetInfo(features=dataset.features, splits=splits, download_size=uploaded, dataset_size=size)
    DatasetInfosDict({"default": info}).to_dataset_card_data(card.data)
    MetadataConfigs({"default": {"data_files": [{"split": split, "path": f"data/{split}-*"}]}}).to_dataset_card_data(
        card.data)


def _stale_shards(api, repo_id: str, split: str, keep: set[str]) -> list:
    """Deletions of the repo's ``data/SPLIT-*`` files that the new shards do not replace (an earlier push)."""
    from huggingface_hub import CommitOperationDelete
    from huggingface_hub.errors import EntryNotFoundError
    from huggingface_hub.hf_api import RepoFile

    try:
        entries = list(api.list_repo_tree(repo_id, path_in_repo="data", repo_type="dataset"))
    except EntryNotFoundError:
        return []
    return [CommitOperationDelete(path_in_repo=e.path) for e in entries if isinstance(e, RepoFile)
            and fnmatch.fnmatch(e.path, f"data/{split}-*") and e.path not in keep]


def push_weak_labels(  # long: the docstring is a third of it
    dataset,
    repo_id: str,
    *,
    local_dir: str | None = None,
    split: str = "train",
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    max_shard_size: int | str = "500MB",
    shards_per_commit: int = 50,
    shards_dir: str | os.PathLike | None = None,
    **card_kwargs,
):
    """Push a weak-label dataset as Parquet shards of bounded size, with a dataset card from ``model_cards/``.

    Args:
        local_dir: a ``save_to_disk`` copy is written there before pushing (an existing copy of this very dataset is
            reused; anything else there is never overwritten). Without it, a copy is saved to a new temporary
            directory only if the push fails.
        max_shard_size: the size of each Parquet shard (``data/SPLIT-INDEX-of-COUNT.parquet``), as
            ``Dataset.push_to_hub`` splits a dataset.
        shards_per_commit: the shards go up in several commits of this many shards (then the card, in a commit of
            its own). A push that failed is resumed by calling it again: the shards already committed are not
            uploaded again, nor those whose upload finished before their commit failed.
        shards_dir: a folder with this dataset's Parquet shards in ``data/`` (the ``output_dir`` of a streaming
            :func:`~hf_w2s.label_dataset`): they are pushed as they are, and are the local copy.
        card_kwargs: what the card records — ``weak_model``, ``weak_model_revision``, ``source_dataset``,
            ``source_split``, ``source_revision``, ``label_column``, ``logits_column``, ``command`` (see
            :func:`weak_labels_card`).

    The card is rendered before anything is uploaded (bad arguments fail early). Earlier ``data/SPLIT-*`` files that
    the new shards do not replace are deleted with the card's commit. Returns the ``CommitInfo`` of the card commit.
    Raises :class:`WeakLabelsPushError` naming the step that failed and the directory holding the local copy.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    logits_column = card_kwargs.get("logits_column", "weak_logits")
    if logits_column not in dataset.column_names:
        raise ValueError(f"the dataset has no {logits_column!r} column: label it with hf_w2s.label_dataset first")
    if not isinstance(shards_per_commit, int) or shards_per_commit < 1:
        raise ValueError(f"shards_per_commit must be an integer >= 1, got {shards_per_commit!r}")
    shards = _shard_files(dataset, split, max_shard_size, shards_dir)
    card = weak_labels_card(dataset, repo_id, shards=[{"file": s[0], "rows": s[1]} for s in shards], **card_kwargs)
    kept = str(shards_dir) if shards_dir is not None else _keep_local_copy(dataset, local_dir)
    step = "pushing the data"
    try:
        with redacted([token]):
            api = HfApi(token=token)
            repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
            uploaded = _upload_shards(api, repo_id, shards, shards_per_commit,
                                      commit_message or "Upload weak labels (hf_w2s)")
            step = "pushing the dataset card"
            card_data_files(card, dataset, split, uploaded)
            stale = _stale_shards(api, repo_id, split, {s[0] for s in shards})
            readme = CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(_clean(card)).encode())
            return api.create_commit(repo_id, operations=[readme, *stale], repo_type="dataset",
                                     commit_message="Weak-label dataset card")
    except Exception as err:
        if kept is None:
            kept = tempfile.mkdtemp(prefix="hf_w2s-weak-labels-")
            dataset.save_to_disk(kept)
        how = "its Parquet shards: datasets.load_dataset" if shards_dir is not None else "datasets.load_from_disk"
        raise WeakLabelsPushError(
            redact(f"push of weak labels to {repo_id!r} failed while {step}: {type(err).__name__}: {err}. The "
                   f"labelled dataset is kept at {kept!r} ({how}); push it again from there: the shards already on "
                   "the Hub are not uploaded again."),
            kept,
        ) from None


# -- pushing a student ---------------------------------------------------------------------------------------------


def resolve_repo_id(hub_model_id: str | None, output_dir: str, token: str | None = None,
                    private: bool | None = None, revision: str | None = None) -> str:
    """The repo a student will be pushed to, made ready before any compute (as ``Trainer`` does when
    ``push_to_hub`` is set): ``namespace/name`` as given, or the logged-in user's namespace for a bare name
    (``hub_model_id`` or the output folder's name); the login is checked with ``whoami`` and the repo is created
    (or found) now, so a bad token, no network or a namespace you cannot write to is a ``ValueError`` that says so
    before training."""
    from huggingface_hub import HfApi

    repo_id = hub_model_id or os.path.basename(os.path.abspath(output_dir))
    api = HfApi(token=token)
    with redacted([token]):
        try:
            user = api.whoami()["name"]
            repo_id = repo_id if "/" in repo_id else f"{user}/{repo_id}"
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
            if revision:  # hub_revision: every push of the run (the Trainer's too) commits to this branch
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            return repo_id
        except Exception as err:  # no token, a wrong token, no network, no rights: say so before training
            raise ValueError(redact(f"push_to_hub to {repo_id!r} is not possible ({type(err).__name__}: "
                                    f"{' '.join(str(err).split())[:300]}); check the login (hf auth login / "
                                    "HF_TOKEN / hub_token), the network and the repo's namespace.")) from None


def push_student(output_dir: str, repo_id: str, *, token: str | None = None, private: bool | None = None,
                 revision: str | None = None, commit_message: str = "Upload weak-to-strong student (hf_w2s)") -> str:
    """Upload the saved student folder (model, processor, card, adapter, logs) to ``repo_id``; returns the repo id.
    A failure is a ``RuntimeError`` that says where the local copy is (never with the token in it)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        with redacted([token]):
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision:
                api.create_branch(url.repo_id, branch=revision, exist_ok=True)
            api.upload_folder(repo_id=url.repo_id, folder_path=output_dir, ignore_patterns=PUSH_IGNORE,
                              commit_message=commit_message, revision=revision)
    except Exception as err:  # the network, the token, the server: keep the local copy and say where it is
        raise RuntimeError(redact(f"pushing to {repo_id!r} failed ({type(err).__name__}: {err}); the trained "
                                  f"student is saved in {os.path.abspath(output_dir)}")) from None
    return url.repo_id


def hub_checkpoint(repo_id: str, output_dir: str, strategy: str, *, revision: str | None = None,
                   token: str | None = None) -> str | None:
    """Fetch the last checkpoint the Trainer pushed to ``repo_id`` under ``hub_strategy`` ``strategy`` into
    ``output_dir/checkpoint-N`` (N: its step) and return that path, or ``None`` when the repo holds none
    (``last-checkpoint/`` for ``checkpoint``, the highest ``checkpoint-N/`` for ``all_checkpoints``): resuming from
    the Hub, as the Trainer's ``hub_strategy`` documentation intends. Named ``checkpoint-N`` locally, it is what the
    Trainer's own pushes leave out; as ``output_dir/last-checkpoint`` the Trainer's next push of ``output_dir`` would
    upload it again over the checkpoint the resumed run pushed."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.hf_api import RepoFolder

    pattern = HUB_CHECKPOINT_FOLDERS.get(strategy)
    if pattern is None:
        raise ValueError(f"hub_strategy={strategy} pushes no checkpoints, so there is none to resume from on the "
                         f"Hub; use hub_strategy {' or '.join(HUB_CHECKPOINT_FOLDERS)}.")
    with redacted([token]):
        folders = [f.path for f in HfApi(token=token).list_repo_tree(repo_id, revision=revision)
                   if isinstance(f, RepoFolder) and fnmatch.fnmatch(f.path, pattern)]
        steps = {f: int(f.rsplit("-", 1)[1]) if f[-1].isdigit() else 0 for f in folders}
        if not steps:
            return None
        folder = max(steps, key=steps.get)
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="_fetch-", dir=output_dir) as tmp:  # "_*": never pushed
            snapshot_download(repo_id, revision=revision, token=token, allow_patterns=[f"{folder}/*"], local_dir=tmp)
            fetched = os.path.join(tmp, folder)
            with open(os.path.join(fetched, "trainer_state.json")) as f:
                path = os.path.join(output_dir, f"checkpoint-{json.load(f)['global_step']}")
            if os.path.isdir(path):  # an incomplete local copy (a complete one is resumed without the Hub)
                shutil.rmtree(path)
            os.replace(fetched, path)
    _localise_best_checkpoint(path)
    return path


def _localise_best_checkpoint(path: str) -> None:
    """The pushed ``trainer_state.json`` names the best checkpoint by a path of the machine that pushed it: the
    fetched checkpoint itself when that was the best (``checkpoint-N`` of its own step), otherwise unknown here
    (``None``; the Trainer then keeps the best of the resumed run). Left as it was, the Trainer would load (or fail
    to find) another machine's folder at the end and rotate the new checkpoints away in its favour."""
    state_file = os.path.join(path, "trainer_state.json")
    if not os.path.isfile(state_file):
        return
    with open(state_file) as f:
        state = json.load(f)
    best = state.get("best_model_checkpoint")
    if best is None:
        return
    own = f"checkpoint-{state.get('global_step')}"
    state["best_model_checkpoint"] = path if os.path.basename(os.path.normpath(best)) == own else None
    with open(state_file, "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)


def dataset_commit(repo_id: str | None, revision: str | None = None, token: str | None = None) -> str | None:
    """The commit a Hub dataset id resolves to at ``revision`` (for the card's ``model-index``), or ``None`` for a
    local dataset or when the Hub cannot be asked (offline)."""
    from huggingface_hub import HfApi, constants

    if not is_hub_id(repo_id) or constants.HF_HUB_OFFLINE:
        return None
    try:
        with redacted([token]):
            return HfApi(token=token).dataset_info(repo_id, revision=revision).sha
    except Exception:  # noqa: BLE001 - the card then says no revision; training is done and must not fail here
        return None
