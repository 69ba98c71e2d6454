"""The data side: one dataset loader, packaged offline data, seeded splits, weak labels as ``datasets`` columns,
label noise, several supervisors' labels of the same rows, and weak labels joined to their images by content."""

from .batch_columns import map_batches_to_columns
from .identity import check_identity, join_weak_labels
from .loading import PACKAGED_PREFIX, column_array, load_image_dataset, open_dataset
from .multi_weak import label_dataset_multi, merge_weak_label_datasets
from .noise import add_noisy_labels, corrupt_labels, noisy_weak_logits
from .packaged import PACKAGED_DATASETS, load_packaged
from .splits import check_disjoint, random_subset, shots_per_class, w2s_splits
from .weak_labels import WeakModel, label_dataset, load_weak_model, weak_label_accuracy, weak_logits_array

__all__ = [
    "PACKAGED_DATASETS",
    "PACKAGED_PREFIX",
    "WeakModel",
    "add_noisy_labels",
    "check_disjoint",
    "check_identity",
    "column_array",
    "corrupt_labels",
    "label_dataset",
    "join_weak_labels",
    "label_dataset_multi",
    "load_image_dataset",
    "load_packaged",
    "load_weak_model",
    "map_batches_to_columns",
    "merge_weak_label_datasets",
    "noisy_weak_logits",
    "open_dataset",
    "random_subset",
    "shots_per_class",
    "w2s_splits",
    "weak_label_accuracy",
    "weak_logits_array",
]
