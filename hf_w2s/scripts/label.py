"""``hf-w2s label``: label an image dataset with a weak model, save it (cached), optionally push it to the Hub.

    hf-w2s label --weak-model ID_OR_PATH --dataset ID_OR_PATH [--split train] --output DIR [--push-to-hub REPO_ID]

Options may also come from ``--config file.yaml`` (keys are the option names); flags on the command line win.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROG = "hf-w2s label"


@dataclass
class LabelConfig:
    """Options of ``hf-w2s label``."""

    _argument_group_name = "labelling options"

    weak_model: str = field(
        metadata={"help": "The weak supervisor: a Hub id or a local directory of an AutoModelForImageClassification "
                  "with its image processor."}
    )
    dataset: str = field(
        metadata={"help": "The images to label: a Hub dataset id, a local imagefolder (class sub-folders), or a "
                  "save_to_disk directory."}
    )
    output: str = field(metadata={"help": "Directory for the labelled dataset (save_to_disk). Must not exist or be "
                                          "empty unless --overwrite."})
    split: str | None = field(
        default=None,
        metadata={"help": "Split to label (default: 'train', or all of a dataset without splits, such as a "
                  "save_to_disk directory of one Dataset). A split the dataset does not have is an error."},
    )
    push_to_hub: str | None = field(
        default=None, metadata={"help": "Also push the labelled split to this Hub dataset repo, with a dataset card."}
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision of the weak model."})
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub revision of the dataset."})
    image_column: str = field(default="image", metadata={"help": "Name of the image column."})
    label_column: str | None = field(
        default=None, metadata={"help": "Ground-truth column for the weak accuracy (default: label/labels if any)."}
    )
    label_names: list[str] | None = field(
        default=None,
        metadata={"help": "Label order for the weak logits (default: the dataset's ClassLabel names, else the weak "
                  "model's id2label). Matched to the weak model by name."},
    )
    logits_column: str = field(default="weak_logits", metadata={"help": "Name of the weak-logits column."})
    batch_size: int = field(default=64, metadata={"help": "Images per forward pass of the weak model."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    overwrite: bool = field(default=False, metadata={"help": "Replace a non-empty --output directory."})
    allow_pickle: bool = field(
        default=False,
        metadata={"help": "Also load pickled weights (pytorch_model.bin), which can run code when loaded; by default "
                  "only safetensors weights are loaded."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run Python code shipped with the weak model's checkpoint (auto_map)."})

    RANGES = {"batch_size": (1, None, True)}

    def __post_init__(self):
        from ..data.loading import check_source_name
        from ..options import check_ranges

        check_ranges(self)
        check_source_name(self.weak_model, "model", "--weak_model")
        check_source_name(self.dataset, "dataset", "--dataset")

    def to_command(self) -> str:
        """The ``hf-w2s label`` command line that reproduces these options (non-default ones only)."""
        from ..hub import command_line

        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                   if f.default is dataclasses.MISSING or getattr(self, f.name) != f.default}
        return command_line(["hf-w2s", "label"], options)


def parse_args(argv: list[str]) -> LabelConfig:
    """:class:`LabelConfig` from ``argv`` (``--config file.yaml`` supplies options; flags override it)."""
    from .parser import W2SParser

    parser = W2SParser(LabelConfig, prog=PROG, description="Label an image dataset with a weak model; save it "
                       "(cached by datasets) and optionally push it to the Hub with a dataset card.")
    (config,) = parser.parse(argv)
    return config


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_output(config: LabelConfig) -> Path:
    """``--output`` is a folder that is new, empty, or replaced with ``--overwrite``; it never holds the source
    dataset (``--overwrite`` would delete it) and is never inside it (nothing is written into the source's folder)."""
    from ..outputs import check_output_path

    output = Path(config.output)
    check_output_path(output, "--output")
    if output.exists() and any(output.iterdir()) and not config.overwrite:
        raise ValueError(f"--output {str(output)!r} exists and is not empty; pass --overwrite to replace it")
    source = Path(config.dataset)
    if source.exists():
        src, out = source.resolve(), output.resolve()
        if src == out:
            raise ValueError("--output must differ from --dataset (the source would be overwritten)")
        if _inside(src, out):
            raise ValueError(f"--output {str(output)!r} contains the source dataset {config.dataset!r}; replacing it "
                             "would delete the source. Choose an --output folder outside the source.")
        if _inside(out, src):
            raise ValueError(f"--output {str(output)!r} is inside the source dataset {config.dataset!r}; nothing is "
                             "written into the source's folder. Choose an --output folder outside it.")
    return output


def _save(dataset, output: Path) -> None:
    """Write the labelled dataset whole or not at all: into a temporary folder next to ``--output`` that then
    replaces it; a failure (a full disk: reported with the path) leaves neither a half-written ``--output`` nor the
    temporary folder."""
    from ..files import staged_dir

    with staged_dir(output, replace=True) as partial:
        dataset.save_to_disk(partial)


def run(config: LabelConfig) -> int:
    from ..data.loading import load_image_dataset
    from ..data.weak_labels import label_dataset, load_weak_model, weak_label_accuracy
    from ..distributed import process_state
    from ..hub import push_weak_labels

    output = _check_output(config)
    dataset = load_image_dataset(config.dataset, split=config.split, revision=config.dataset_revision)
    weak = load_weak_model(config.weak_model, revision=config.revision, allow_pickle=config.allow_pickle,
                           trust_remote_code=config.trust_remote_code)
    labelled = label_dataset(
        dataset,
        weak,
        image_column=config.image_column,
        batch_size=config.batch_size,
        logits_column=config.logits_column,
        label_names=config.label_names,
        label_column=config.label_column,
    )
    split = config.split or (str(dataset.split) if dataset.split else None)
    which = f"split {split!r}" if split else "all of it"
    print(f"labelled {len(labelled)} examples of {config.dataset!r} ({which}) with {config.weak_model!r}")
    accuracy = weak_label_accuracy(labelled, config.label_column)
    if accuracy is not None:
        print(f"weak accuracy: {accuracy:.4f}")
    # under torchrun every process labelled its shard and holds the whole result: only the main process writes
    state = process_state()
    if state.is_main_process:
        _save(labelled, output)
        print(f"saved to {str(output)!r}")
        if config.push_to_hub:
            pinned = dataclasses.replace(config, revision=config.revision or weak.revision)  # the same weights again
            push_weak_labels(
                labelled,
                config.push_to_hub,
                weak_model=weak,
                source_dataset=config.dataset if not Path(config.dataset).exists() else None,
                source_split=config.split,
                label_column=config.label_column,
                logits_column=config.logits_column,
                command=pinned.to_command(),
                local_dir=str(output),
                private=config.private or None,
            )
            print(f"pushed to the Hub dataset {config.push_to_hub!r}")
    state.wait_for_everyone()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
