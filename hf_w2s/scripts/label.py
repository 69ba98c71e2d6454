"""``hf-w2s label``: label an image dataset with a weak model, save it (cached), optionally push it to the Hub.

    hf-w2s label --weak-model ID_OR_PATH --dataset ID_OR_PATH [--split train] --output DIR [--push-to-hub REPO_ID]
    hf-w2s label ... --streaming [--shard-size 10000]     # a stream, in resumable Parquet shards written to --output

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
    logits_storage: str = field(
        default="float32",
        metadata={"help": "How the weak logits are stored: float32 (exact), float16, or topk (the --top_k largest "
                  "logits, their class ids and the log-sum-exp of the rest: 88 bytes a row at k = 10)."},
    )
    top_k: int = field(default=10, metadata={"help": "Logits kept per row with --logits_storage topk."})
    streaming: bool = field(
        default=False,
        metadata={"help": "Read --dataset as a stream (load_dataset(..., streaming=True)); it is labelled in Parquet "
                  "shards of --shard_size rows, written into --output as they complete. Run the same command again "
                  "to resume an interrupted labelling at its first missing shard."},
    )
    shard_size: int = field(default=10_000, metadata={"help": "Rows per Parquet shard with --streaming."})
    max_shard_size: str = field(default="500MB", metadata={"help": "Size of each Parquet shard pushed to the Hub."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    overwrite: bool = field(default=False, metadata={"help": "Replace a non-empty --output directory."})
    allow_pickle: bool = field(
        default=False,
        metadata={"help": "Also load pickled weights (pytorch_model.bin), which can run code when loaded; by default "
                  "only safetensors weights are loaded."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run Python code shipped with the weak model's checkpoint (auto_map)."})

    RANGES = {"batch_size": (1, None, True), "top_k": (1, None, True), "shard_size": (1, None, True)}

    def __post_init__(self):
        from ..data.loading import check_source_name
        from ..data.logit_storage import LogitStorage
        from ..options import check_ranges

        check_ranges(self)
        LogitStorage.of(self.logits_storage, self.top_k)
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
    from ..data.stream_shards import PROGRESS_DIR
    from ..outputs import check_output_path

    output = Path(config.output)
    check_output_path(output, "--output")
    resumable = config.streaming and (output / PROGRESS_DIR).is_dir()  # checked against the labelling itself
    if output.exists() and any(output.iterdir()) and not config.overwrite and not resumable:
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


def _streamed(config: LabelConfig, output: Path, state):
    """The stream of ``--dataset``; ``--output`` emptied first with ``--overwrite`` (by the main process)."""
    import shutil

    from ..data.stream_shards import open_stream

    if config.overwrite and output.exists() and state.is_main_process:
        shutil.rmtree(output)
    state.wait_for_everyone()
    return open_stream(config.dataset, split=config.split, revision=config.dataset_revision)


def _write_card(config: LabelConfig, labelled, output: Path, weak, revision: str | None, command: str) -> None:
    """The card of a streamed labelling, ``--output/README.md``: it names the shards and the stream's revision, and
    its ``configs`` let ``load_dataset(OUTPUT)`` read the shards."""
    from ..data.parquet_shards import parquet_rows
    from ..data.stream_shards import shard_files
    from ..hub import card_data_files, weak_labels_card

    files = shard_files(output)
    shards = [{"file": f"data/{Path(f).name}", "rows": parquet_rows(f)} for f in files]
    card = weak_labels_card(labelled, config.push_to_hub or str(output), weak_model=weak, command=command,
                            source_dataset=_public_source(config), source_split=config.split,
                            source_revision=revision, label_column=config.label_column,
                            logits_column=config.logits_column, shards=shards)
    card_data_files(card, labelled, "train", sum(Path(f).stat().st_size for f in files))
    card.save(str(output / "README.md"))


def _public_source(config: LabelConfig) -> str | None:
    return config.dataset if not Path(config.dataset).exists() else None


def run(config: LabelConfig) -> int:
    from ..data.loading import load_image_dataset
    from ..data.stream_shards import stream_revision
    from ..data.weak_labels import label_dataset, load_weak_model, weak_label_accuracy
    from ..distributed import process_state
    from ..hub import dataset_commit, push_weak_labels

    output = _check_output(config)
    state = process_state()
    if config.streaming:
        dataset = _streamed(config, output, state)
    else:
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
        logits_storage=config.logits_storage,
        top_k=config.top_k,
        output_dir=output if config.streaming else None,
        shard_size=config.shard_size,
    )
    split = config.split or (str(dataset.split) if dataset.split else None)
    which = f"split {split!r}" if split else "all of it"
    print(f"labelled {len(labelled)} examples of {config.dataset!r} ({which}) with {config.weak_model!r}")
    accuracy = weak_label_accuracy(labelled, config.label_column)
    if accuracy is not None:
        print(f"weak accuracy: {accuracy:.4f}")
    # under torchrun every process labelled its part and opens the whole result: only the main process writes
    if state.is_main_process:
        pinned = dataclasses.replace(config, revision=config.revision or weak.revision)  # the same weights again
        revision = None
        if config.streaming:
            revision = stream_revision(dataset) or dataset_commit(_public_source(config), config.dataset_revision)
            _write_card(config, labelled, output, weak, revision, pinned.to_command())
            print(f"{len(labelled)} rows in Parquet shards under {str(output / 'data')!r}")
        else:
            _save(labelled, output)
            print(f"saved to {str(output)!r}")
        if config.push_to_hub:
            push_weak_labels(
                labelled,
                config.push_to_hub,
                weak_model=weak,
                source_dataset=_public_source(config),
                source_split=config.split,
                source_revision=revision,
                label_column=config.label_column,
                logits_column=config.logits_column,
                command=pinned.to_command(),
                local_dir=None if config.streaming else str(output),
                shards_dir=output if config.streaming else None,
                max_shard_size=config.max_shard_size,
                private=config.private or None,
            )
            print(f"pushed to the Hub dataset {config.push_to_hub!r}")
    state.wait_for_everyone()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
