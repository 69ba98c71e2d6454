"""Loading image datasets from anywhere, and sharing weak labels on the Hub with a dataset card."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, load_dataset, load_from_disk

from .labels import label_permutation
from .weak_labels import (
    WEAK_LABEL_COLUMN,
    WeakModel,
    align_weak_labels,
    describe_weak_model,
    find_label_column,
    names_of,
    weak_label_accuracy,
    weights_hash,
)

CARD_TEMPLATE = "weak_labels.md"
CARD_TAGS = ["hf_w2s", "weak-to-strong", "weak-labels"]


class WeakLabelsPushError(RuntimeError):
    """A push of weak labels failed; ``local_dir`` holds a ``save_to_disk`` copy of the labelled dataset."""

    def __init__(self, message: str, local_dir: str):
        super().__init__(message)
        self.local_dir = local_dir


# -- loading ---------------------------------------------------------------------------------------------------------


def is_saved_dataset(path) -> bool:
    """Whether ``path`` is a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    path = Path(path)
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def load_image_dataset(source, *, split: str = "train", revision: str | None = None, token=None) -> Dataset:
    """One split of a dataset given as a ``Dataset``/``DatasetDict``, a ``save_to_disk`` directory, a local folder
    (an ``imagefolder`` of class sub-folders, or data files) or a Hub dataset id.

    A single ``Dataset`` (in memory or saved with ``save_to_disk``) has no splits and is returned whole."""
    if isinstance(source, Dataset):
        return source
    if not isinstance(source, (str, os.PathLike, DatasetDict)):
        raise TypeError(f"expected a Dataset, a DatasetDict, a path or a Hub id, got {type(source).__name__}")
    if isinstance(source, DatasetDict):
        dataset = source
    elif is_saved_dataset(source):
        dataset = load_from_disk(str(source))
    elif Path(source).exists():
        if not Path(source).is_dir():
            raise ValueError(f"{str(source)!r} is a file; give a folder of images or a save_to_disk directory")
        return load_dataset(str(source), split=split)  # infers imagefolder from image files
    else:
        return load_dataset(str(source), split=split, revision=revision, token=token)
    if isinstance(dataset, DatasetDict):
        if split not in dataset:
            raise ValueError(f"split {split!r} not found in {str(source)!r}; splits: {list(dataset)}")
        dataset = dataset[split]
    return dataset


def resolve_train_dataset(train_dataset, model, logits_column: str = "weak_logits"):
    """For ``WeakToStrongTrainer``: load a weak-label dataset given by Hub id or path (its ``train`` split), and
    match its labels to the student's ``id2label`` by name (see ``align_to_model``)."""
    if isinstance(train_dataset, (str, os.PathLike)):
        train_dataset = load_image_dataset(train_dataset, split="train")
    return align_to_model(train_dataset, model, logits_column)


def resolve_eval_dataset(eval_dataset, model, split: str = "test", logits_column: str = "weak_logits"):
    """For ``WeakToStrongTrainer``: ``eval_dataset`` (or each value of a dict of them) given by Hub id or path loads
    its ``split``; its labels are matched to the student's by name (see ``align_to_model``)."""
    if isinstance(eval_dataset, dict):
        return {name: resolve_eval_dataset(ds, model, split, logits_column) for name, ds in eval_dataset.items()}
    if isinstance(eval_dataset, (str, os.PathLike)):
        eval_dataset = load_image_dataset(eval_dataset, split=split)
    return align_to_model(eval_dataset, model, logits_column)


def align_to_model(dataset, model, logits_column: str = "weak_logits"):
    """Reorder a dataset's weak logits and its ground-truth ``ClassLabel`` ids to the model's ``id2label`` order, by
    name. Names that do not match raise a ``ValueError`` listing them; a model with generic names (``LABEL_0``, ...)
    or a dataset without class names is left as is."""
    names = names_of(model) if getattr(getattr(model, "config", None), "id2label", None) else None
    if not isinstance(dataset, Dataset) or names is None or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return dataset
    dataset = align_weak_labels(dataset, names, logits_column=logits_column)
    column = find_label_column(dataset)
    feature = dataset.features.get(column) if column else None
    if isinstance(feature, ClassLabel) and label_permutation(
        feature.names, names, source=f"dataset's {column!r} column", target="student"
    ) is not None:
        dataset = dataset.align_labels_with_mapping({n: i for i, n in enumerate(names)}, column)
    return dataset


# -- the dataset card -------------------------------------------------------------------------------------------------


def card_template_path(name: str = CARD_TEMPLATE) -> str:
    """Path of a Jinja template in ``model_cards/`` (the source tree first, then the installed package data)."""
    local = Path(__file__).resolve().parent.parent / "model_cards" / name
    if local.is_file():
        return str(local)
    from importlib.resources import files

    return str(files("hf_w2s.model_cards") / name)


def weak_labels_card(
    dataset: Dataset,
    repo_id: str,
    *,
    weak_model=None,
    weak_model_revision: str | None = None,
    source_dataset: str | None = None,
    source_split: str | None = None,
    label_column: str | None = None,
    logits_column: str = "weak_logits",
    command: str | None = None,
):
    """The ``DatasetCard`` of a weak-label dataset, rendered from ``model_cards/weak_labels.md``.

    Its YAML header carries ``weak_model``, ``weak_model_revision``, ``weak_model_sha256``, ``label_names``,
    ``weak_accuracy``, ``source_datasets``, tags and the task category.

    Args:
        weak_model: a :class:`~hf_w2s.WeakModel` from ``load_weak_model`` (its Hub id, commit and a sha256 of its
            weights are recorded), an in-memory model (its ``_name_or_path`` and weights hash), or a Hub id string
            (with ``weak_model_revision``).
        source_dataset, source_split: where the images came from.
        command: the exact command that reproduces the labels (the ``hf-w2s label`` CLI passes its own). By default
            it is built when the weak model has a Hub revision and ``source_dataset`` is given.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    from . import __version__

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
    data = {
        "tags": CARD_TAGS,
        "task_categories": ["image-classification"],
        "weak_model": weak_model,
        "weak_model_revision": weak_model_revision,
        "weak_model_sha256": sha,
        "label_names": names,
        "weak_accuracy": None if accuracy is None else round(accuracy, 6),
    }
    if source_dataset:
        data["source_datasets"] = [source_dataset]
    data = {k: v for k, v in data.items() if v is not None}
    card_data = DatasetCardData(**data)
    return DatasetCard.from_template(
        card_data,
        template_path=card_template_path(),
        repo_id=repo_id,
        weak_model_on_hub=weak_model_revision is not None,
        weak_model_sha256=sha,
        weak_accuracy=accuracy,
        label_column=label_column,
        logits_column=logits_column,
        source_dataset=source_dataset,
        source_split=source_split,
        num_examples=len(dataset),
        command=command,
        id2label={i: n for i, n in enumerate(names)},
        label2id={n: i for i, n in enumerate(names)},
        hf_w2s_version=__version__,
    )


def reproduce_command(
    dataset: Dataset, repo_id: str, *, weak_model: str | None, weak_model_revision: str | None,
    source_dataset: str | None, source_split: str | None, logits_column: str = "weak_logits",
) -> str | None:
    """The ``hf-w2s label`` command that remakes these labels from public sources, or ``None`` if it cannot."""
    from datasets import Image

    from .label_cli import LabelConfig

    if not (weak_model and weak_model_revision and source_dataset):
        return None
    images = [c for c, f in dataset.features.items() if isinstance(f, Image)]
    names = list(dataset.features[WEAK_LABEL_COLUMN].names)
    gt = dataset.features.get(find_label_column(dataset) or "")
    config = LabelConfig(
        weak_model=weak_model,
        revision=weak_model_revision,
        dataset=source_dataset,
        split=source_split or "train",
        output="weak-labels",
        push_to_hub=repo_id,
        image_column=images[0] if len(images) == 1 else "image",
        logits_column=logits_column,
        label_names=None if isinstance(gt, ClassLabel) and list(gt.names) == names else names,
    )
    return config.to_command()


# -- pushing ----------------------------------------------------------------------------------------------------------


def _keep_local_copy(dataset: Dataset, local_dir: str | None) -> str | None:
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


def push_weak_labels(
    dataset: Dataset,
    repo_id: str,
    *,
    local_dir: str | None = None,
    split: str = "train",
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    **card_kwargs,
):
    """Push a weak-label dataset with ``Dataset.push_to_hub`` and a dataset card from ``model_cards/``.

    Args:
        local_dir: a ``save_to_disk`` copy is written there before pushing (an existing copy of this very dataset is
            reused; anything else there is never overwritten). Without it, a copy is saved to a new temporary
            directory only if the push fails.
        card_kwargs: what the card records — ``weak_model``, ``weak_model_revision``, ``source_dataset``,
            ``source_split``, ``label_column``, ``logits_column``, ``command`` (see :func:`weak_labels_card`).

    The card is rendered before anything is uploaded (bad arguments fail early); after the data push it keeps the
    metadata ``Dataset.push_to_hub`` wrote (``configs``, ``dataset_info``). Returns the ``CommitInfo`` of the card
    commit. Raises :class:`WeakLabelsPushError` naming the step that failed and the directory holding the local copy.
    """
    from huggingface_hub import DatasetCard

    logits_column = card_kwargs.get("logits_column", "weak_logits")
    if logits_column not in dataset.column_names:
        raise ValueError(f"the dataset has no {logits_column!r} column: label it with hf_w2s.label_dataset first")
    card = weak_labels_card(dataset, repo_id, **card_kwargs)
    kept = _keep_local_copy(dataset, local_dir)
    step = "pushing the data"
    try:
        dataset.push_to_hub(
            repo_id, split=split, private=private, token=token,
            commit_message=commit_message or "Upload weak labels (hf_w2s)",
        )
        step = "pushing the dataset card"
        for key, value in DatasetCard.load(repo_id, repo_type="dataset", token=token).data.to_dict().items():
            if card.data.get(key) is None:
                card.data[key] = value
        return card.push_to_hub(repo_id, repo_type="dataset", token=token, commit_message="Weak-label dataset card")
    except Exception as err:
        if kept is None:
            kept = tempfile.mkdtemp(prefix="hf_w2s-weak-labels-")
            dataset.save_to_disk(kept)
        raise WeakLabelsPushError(
            f"push of weak labels to {repo_id!r} failed while {step}: {type(err).__name__}: {err}. The labelled "
            f"dataset is kept at {kept!r} (datasets.load_from_disk); push it again from there.",
            kept,
        ) from err
