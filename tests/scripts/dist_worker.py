"""Tiny distributed runs for tests/test_distributed.py.

Run as ``torchrun --standalone --nproc_per_node 2 tests/scripts/dist_worker.py OUT_DIR``: one training step with a
cached weak-logits column, one with an online weak model (2 processes × batch 4 = the 8 examples), labelling of 11
examples (in memory, and saved with ``save_to_disk`` in OUT_DIR/label_ds: labelled twice, the second time from the
cache) and of a stream of them (Parquet shards in OUT_DIR/stream); the main process writes the weights, the logged
metrics and the labels to OUT_DIR. The test imports the same builders and runs the single-process references in its
own process.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
from datasets import Dataset, Features, Image
from tiny_data import labelled_images, random_images, tiny_run_args

NAMES = ["a", "b", "c", "d"]
WEAK_NAMES = ["b", "c", "d", "a"]  # the online weak model's order: a 4-cycle of NAMES, not its own inverse
N_TRAIN = 8
N_LABEL = 11
IMAGE_SIZE = 8


def images(n: int, seed: int):
    return random_images(n, IMAGE_SIZE, seed, mode="L")


def train_data(with_weak_logits: bool) -> Dataset:
    return labelled_images(images(N_TRAIN, 0), NAMES, with_weak_logits)


def label_data() -> Dataset:
    return Dataset.from_dict({"image": images(N_LABEL, 2)}, features=Features({"image": Image()}))


def broken_label_data() -> Dataset:
    """6 images, row 4 (in the second process's shard, rows 3-5) is not an image."""
    import io

    rows = []
    for im in images(6, 3):
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        rows.append({"bytes": buf.getvalue(), "path": None})
    rows[4] = {"bytes": b"definitely not a PNG", "path": None}
    return Dataset.from_dict({"image": rows}, features=Features({"image": Image()}))


def student():
    from hf_w2s.modeling import build_model

    # a ViT: no batch norm, so 2 × 4 and 1 × 8 see the same function of the weights
    return build_model("vit", NAMES, image_size=IMAGE_SIZE, num_channels=1, width=8, depth=1, seed=0)


def weak_model():
    from hf_w2s.modeling import build_model

    # label names in another order: the trainer must reorder the online weak logits by name
    return build_model("linear", WEAK_NAMES, image_size=IMAGE_SIZE, num_channels=1, width=8, seed=1)


def processor():
    from hf_w2s.modeling import tiny_image_processor

    return tiny_image_processor(IMAGE_SIZE, 1)


def train_one_step(mode: str, per_device_batch: int, output_dir: str):
    """One optimizer step over the 8 examples; returns (state dict, log history)."""
    from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer

    args = WeakToStrongConfig(**tiny_run_args(output_dir, per_device_batch, 1, learning_rate=0.5))
    trainer = WeakToStrongTrainer(
        model=student(),
        args=args,
        train_dataset=train_data(with_weak_logits=mode == "cached"),
        processing_class=processor(),
        weak_model=weak_model() if mode == "online" else None,
    )
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, trainer.state.log_history


#: rows per labelling batch: the two processes' parts (rows 0-5 and 6-10) are cut into the batches of one process
LABEL_BATCH = 2
STREAM_SHARD = 2


def label(dataset, model=None, **kwargs):
    from hf_w2s.data.weak_labels import label_dataset

    return label_dataset(dataset, model or weak_model(), processor(), batch_size=LABEL_BATCH, **kwargs)


def saved_label_data(path: str, state) -> Dataset:
    """``label_data()`` saved to ``path`` (by the main process) and loaded from there: a dataset with a cache."""
    from datasets import load_from_disk

    if state.is_main_process and not os.path.isdir(path):
        label_data().add_column("id", list(range(N_LABEL))).save_to_disk(path)
    state.wait_for_everyone()
    return load_from_disk(path)


def label_twice(path: str, state) -> dict:
    """Label the saved data twice with a weak model that counts its forward passes; what each process saw."""
    model = weak_model()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    first = label(saved_label_data(path, state), model)
    n_first = len(calls)
    again = label(saved_label_data(path, state), model)
    return {"calls": [n_first, len(calls) - n_first], "fingerprints": [first._fingerprint, again._fingerprint],
            "cache_files": sorted({os.path.basename(f["filename"]) for f in first.cache_files
                                   if "weak-labels" in f["filename"]}),
            "logits": np.asarray(first.with_format("numpy")["weak_logits"][:]).tolist()}


#: per-process batches of different sizes for gather_weighted_means: 4 values on process 0, 3 on process 1
UNEQUAL_BATCHES = ([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0])


def unequal_batch_means(state) -> dict:
    """gather_weighted_means over the two processes of each one's batch mean of UNEQUAL_BATCHES (through
    Accelerate's real all-gather)."""
    from accelerate.utils import gather

    from hf_w2s.distributed import gather_weighted_means

    class Gatherer:  # what gather_weighted_means uses of an Accelerator
        device, num_processes = state.device, state.num_processes

        @staticmethod
        def gather(tensor):
            return gather(tensor)

    batch = torch.tensor(UNEQUAL_BATCHES[state.process_index])
    return gather_weighted_means({"m": batch.mean(), "square": (batch**2).mean()}, len(batch), Gatherer())


def main(out_dir: str) -> None:
    from safetensors.torch import save_file

    from hf_w2s.distributed import process_state

    torch.set_num_threads(1)
    # labelling first, before any Trainer has set up the process group
    state = process_state()
    labelled = label(label_data())
    results = {"world_size": state.num_processes}
    # a failure in one process's shard reaches every process (none is left waiting in the gather)
    try:
        label(broken_label_data())
        outcome = "no error"
    except Exception as err:
        outcome = "".join(__import__("traceback").format_exception_only(type(err), err))
        outcome += "\n".join(getattr(err, "__notes__", []))
    with open(os.path.join(out_dir, f"broken-rank{state.process_index}.txt"), "w") as f:
        f.write(outcome)
    if state.is_main_process:
        results["weak_label"] = list(labelled["weak_label"])
        results["weak_logits"] = np.asarray(labelled.with_format("numpy")["weak_logits"]).tolist()
        results["columns"] = labelled.column_names
    # a dataset with a cache: labelled on disk, then read from the cache; every process reports what it saw
    from accelerate.utils import gather_object

    results["saved"] = gather_object([label_twice(os.path.join(out_dir, "label_ds"), state)])
    # a stream of the same rows (two data shards: one per process), labelled into Parquet shards
    stream = saved_label_data(os.path.join(out_dir, "label_ds"), state).to_iterable_dataset(num_shards=2)
    streamed = label(stream, output_dir=os.path.join(out_dir, "stream"), shard_size=STREAM_SHARD)
    results["streamed_rows"] = gather_object([len(streamed)])
    for mode in ("cached", "online"):
        weights, logs = train_one_step(mode, 4, os.path.join(out_dir, f"run-{mode}"))
        state = process_state()
        results[f"world_size_{mode}"] = state.num_processes
        if state.is_main_process:
            save_file(weights, os.path.join(out_dir, f"{mode}.safetensors"))
            results[mode] = logs
    results["unequal_means"] = unequal_batch_means(state)
    if state.is_main_process:
        with open(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump(results, f)
    state.wait_for_everyone()
    # leave the process group before the interpreter exits: gloo's threads torn down at exit aborted a process
    # ("terminate called without an active exception", SIGABRT) once in a CI run, after all the work was done
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
