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
                                          "empty unless --overwrite; never the source dataset's or the weak "
                                          "model's folder, nor one that holds or lies inside them."})
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
    overwrite: bool = field(default=False, metadata={"help": "Replace what an earlier hf-w2s label wrote in --output "
                                                             "(never other files)."})
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
        from ..outputs import check_output_path

        check_ranges(self)
        check_output_path(self.output, "--output")
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


def _check_output(config: LabelConfig) -> Path:
    """``--output`` is a folder that is new, empty, or the labelled dataset of an earlier ``hf-w2s label`` (replaced
    with ``--overwrite``: the command deletes only what it created); it is not, does not hold and is not inside one of
    the command's inputs (the source dataset, the weak model: :func:`hf_w2s.outputs.check_outside_inputs`)."""
    from ..data.stream_shards import PROGRESS_DIR
    from ..outputs import check_output_path, check_outside_inputs

    check_output_path(config.output, "--output")  # empty text too (Path("") is the working directory)
    output = Path(config.output)
    check_outside_inputs(output, [("source dataset", config.dataset), ("weak model", config.weak_model)], "--output")
    resumable = config.streaming and (output / PROGRESS_DIR).is_dir()  # checked against the labelling itself
    if output.exists() and any(output.iterdir()):
        if not config.overwrite and not resumable:
            raise ValueError(f"--output {str(output)!r} exists and is not empty; pass --overwrite to replace it")
        if config.overwrite and not _labelled_output(output):
            raise ValueError(f"--output {str(output)!r} is not empty and holds no labelled dataset of hf-w2s label; "
                             "--overwrite replaces only what hf-w2s label wrote (a saved dataset with a weak_label "
                             "column, or its Parquet shards), never other files. Choose a new or empty folder.")
    return output


def _labelled_output(folder: Path) -> bool:
    """Whether ``folder`` holds what ``hf-w2s label`` writes, and nothing else: a ``save_to_disk`` dataset whose
    features have a ``weak_label`` column, or the Parquet shards (and progress) of a streamed labelling."""
    import json

    from ..data.stream_shards import PROGRESS_DIR
    from ..data.weak_labels import WEAK_LABEL_COLUMN

    names = {p.name for p in folder.iterdir()}
    if (folder / PROGRESS_DIR).is_dir():
        return names <= {PROGRESS_DIR, "data", "README.md"}
    try:
        info = json.loads((folder / "dataset_info.json").read_text())
    except (OSError, ValueError):
        return False
    saved = {"state.json", "dataset_info.json", "README.md"}
    return WEAK_LABEL_COLUMN in (info.get("features") or {}) and all(
        n in saved or (n.startswith("data-") and n.endswith(".arrow")) for n in names)


def _save(dataset, output: Path) -> None:
    """Write the labelled dataset whole or not at all: into a temporary folder next to ``--output`` that then
    replaces it; a failure (a full disk: reported with the path) leaves neither a half-written ``--output`` nor the
    temporary folder."""
    from ..files import staged_dir

    with staged_dir(output, replace=True) as partial:
        dataset.save_to_disk(partial)


def _emptied(config: LabelConfig, output: Path, state) -> None:
    """A streamed labelling's ``--output`` emptied with ``--overwrite`` (by the main process), after the preflight:
    it holds only what an earlier ``hf-w2s label`` wrote (:func:`_check_output`)."""
    import shutil

    if config.overwrite and output.exists() and state.is_main_process:
        shutil.rmtree(output)
    state.wait_for_everyone()


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
    from ..data.stream_shards import open_stream, stream_revision
    from ..data.weak_labels import label_dataset, load_weak_model, weak_label_accuracy
    from ..distributed import process_state
    from ..experiment.preflight import check_labelling
    from ..hub import dataset_commit, push_weak_labels

    output = _check_output(config)
    state = process_state()
    if config.streaming:
        dataset = open_stream(config.dataset, split=config.split, revision=config.dataset_revision)
    else:
        dataset = load_image_dataset(config.dataset, split=config.split, revision=config.dataset_revision)
    weak = load_weak_model(config.weak_model, revision=config.revision, allow_pickle=config.allow_pickle,
                           trust_remote_code=config.trust_remote_code)
    check_labelling(weak, dataset, image_column=config.image_column)  # the preflight, before anything is labelled
    if config.streaming:
        _emptied(config, output, state)
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
