"""Streaming input labelled in resumable Parquet shards, and the generic per-row vector writer behind labelling
(issue 30): a stream gives the labels of the map-style dataset, a labelling killed mid-way resumes at its first
missing shard to the same result, the output loads as a Dataset and trains a student; ``map_batches_to_columns`` with
a function that is not a weak model (a feature vector per row), map-style and streaming, cached by its fingerprint."""

from __future__ import annotations

import json
import sys

import forkserver
import numpy as np
import pytest
import torch
from datasets import Features, Image, List, Value, load_dataset, load_from_disk
from datasets.fingerprint import Hasher

from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer, label_dataset
from hf_w2s.cli import main as cli_main
from hf_w2s.data.batch_columns import map_batches_to_columns
from hf_w2s.data.images import decode_image
from hf_w2s.data.packaged import load_sklearn_digits
from hf_w2s.data.weak_labels import weak_logits_array
from hf_w2s.modeling import build_model, tiny_image_processor

NAMES = [str(i) for i in range(10)]
N = 48
BATCH, SHARD = 8, 16  # 48 rows: 3 shards of 2 batches


@pytest.fixture(autouse=True)
def _quiet():
    import datasets

    datasets.disable_progress_bars()
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "ds"
    load_sklearn_digits().select(range(N)).save_to_disk(str(path))
    return str(path)


def weak():
    return build_model("linear", NAMES, image_size=8, num_channels=3, width=8, seed=4)


def counted(model):
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return model, calls


def stream_of(digits_dir, shards=3):
    return load_from_disk(digits_dir).to_iterable_dataset(num_shards=shards)


def label_stream(digits_dir, out, model=None, **kw):
    return label_dataset(stream_of(digits_dir), model or weak(), tiny_image_processor(8), batch_size=BATCH,
                         output_dir=str(out), shard_size=SHARD, **kw)


def test_a_stream_gives_the_labels_of_the_dataset_in_shards(digits_dir, tmp_path):
    ref = label_dataset(load_from_disk(digits_dir), weak(), tiny_image_processor(8), batch_size=BATCH)
    model, calls = counted(weak())
    out = label_stream(digits_dir, tmp_path / "s", model)
    assert sorted(p.name for p in (tmp_path / "s" / "data").iterdir()) == [
        f"train-00000-of-00001-{i:05d}.parquet" for i in range(3)]
    assert out.column_names == ref.column_names and out.features == ref.features
    np.testing.assert_array_equal(weak_logits_array(out), weak_logits_array(ref))
    assert out["weak_label"] == ref["weak_label"] and out["label"] == ref["label"]
    assert np.asarray(out[5]["image"]).tolist() == np.asarray(ref[5]["image"]).tolist()  # the images travel along
    assert len(calls) == N // BATCH
    again = label_stream(digits_dir, tmp_path / "s", model)  # done already: read, not computed
    assert len(calls) == N // BATCH and len(again) == N


KILLED = """
import os, signal, sys
import datasets, torch
from datasets import load_from_disk
from hf_w2s import label_dataset
from hf_w2s.modeling import build_model, tiny_image_processor

datasets.disable_progress_bars()
torch.set_num_threads(1)
out, source, batch, shard = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = build_model("linear", [str(i) for i in range(10)], image_size=8, num_channels=3, width=8, seed=4)
calls = []

def die_on_the_sixth_batch(*_):  # the second batch of the third shard: killed as a machine going down would be
    calls.append(1)
    if len(calls) == 6:
        os.kill(os.getpid(), signal.SIGKILL)

model.register_forward_hook(die_on_the_sixth_batch)
stream = load_from_disk(source).to_iterable_dataset(num_shards=3)
label_dataset(stream, model, tiny_image_processor(8), batch_size=batch, output_dir=out, shard_size=shard)
"""


def test_a_killed_stream_labelling_resumes_at_its_first_missing_shard_and_trains_a_student(digits_dir, tmp_path):
    out = tmp_path / "killed"
    run = forkserver.run([sys.executable, "-c", KILLED, str(out), digits_dir, str(BATCH), str(SHARD)], timeout=300)
    assert run.returncode == -9, run.stderr[-2000:]
    data = out / "data"
    assert sorted(p.name for p in data.glob("*.parquet")) == [f"train-00000-of-00001-{i:05d}.parquet" for i in (0, 1)]
    assert [p.name for p in data.glob(".*.partial")] == [".train-00000-of-00001-00002.parquet.partial"]
    progress = json.loads((out / ".hf_w2s" / "progress-00000-of-00001.json").read_text())
    assert progress["rows"] == 2 * SHARD and not progress["done"]

    model, calls = counted(weak())
    resumed = label_stream(digits_dir, out, model)
    assert len(calls) == SHARD // BATCH  # only the missing shard, read from where the stream had got to
    whole = label_stream(digits_dir, tmp_path / "whole")  # an uninterrupted run
    np.testing.assert_array_equal(weak_logits_array(resumed), weak_logits_array(whole))
    assert resumed["label"] == whole["label"] and resumed["weak_label"] == whole["weak_label"]
    assert [p.name for p in data.glob(".*")] == []  # the partial shard was replaced by the complete one

    loaded = load_dataset("parquet", data_files=str(data / "*.parquet"), split="train")  # a normal Dataset
    assert len(loaded) == N and loaded.features["weak_label"].names == NAMES
    student = build_model("resnet", NAMES, image_size=8, width=8, depth=1, seed=0)
    args = WeakToStrongConfig(output_dir=str(tmp_path / "student"), w2s_loss="adapt_conf", max_steps=3,
                              per_device_train_batch_size=16, use_cpu=True, report_to="none", save_strategy="no",
                              disable_tqdm=True)
    result = WeakToStrongTrainer(model=student, args=args, train_dataset=loaded,
                                 processing_class=tiny_image_processor(8)).train()
    assert np.isfinite(result.training_loss) and result.global_step == 3


def test_a_folder_of_another_labelling_is_refused(digits_dir, tmp_path):
    label_stream(digits_dir, tmp_path / "s")
    with pytest.raises(ValueError, match="holds the shards of another computation"):
        label_dataset(stream_of(digits_dir), weak(), tiny_image_processor(8), batch_size=BATCH,
                      output_dir=str(tmp_path / "s"), shard_size=SHARD + 1)


def test_cli_streams_into_output_and_resumes(digits_dir, tmp_path, capsys):
    model_dir = tmp_path / "weak"
    weak().save_pretrained(model_dir)
    tiny_image_processor(8).save_pretrained(model_dir)
    out = tmp_path / "out"
    argv = ["label", "--weak-model", str(model_dir), "--dataset", digits_dir, "--output", str(out), "--streaming",
            "--shard-size", str(SHARD), "--batch-size", str(BATCH), "--logits-storage", "topk", "--top-k", "3"]
    assert cli_main(argv) == 0
    assert "48 rows in Parquet shards" in capsys.readouterr().out
    card = (out / "README.md").read_text()
    assert "weak_logits_storage: top3" in card and "top-3" in card
    assert all(f"`data/train-00000-of-00001-{i:05d}.parquet` (16 rows)" in card for i in range(3))
    ds = load_dataset(str(out), split="train")  # the card's configs point at the shards
    assert len(ds) == N and set(ds.features["weak_logits"]) == {"topk_logits", "topk_indices", "rest_logsumexp",
                                                                "num_classes"}
    assert cli_main(argv) == 0  # the same command again: the folder is this labelling's, nothing to redo


def pooled(images, rows, calls):
    """A feature vector per row that is not a weak model's: the image's 4×4 mean-pooled pixels (16 floats)."""
    calls.append(len(rows))
    decoder = Image()
    out = []
    for value, row in zip(images, rows):
        pixels = np.asarray(decode_image(value, row, "image", decoder).convert("L"), dtype=np.float32)
        out.append(pixels.reshape(4, 2, 4, 2).mean(axis=(1, 3)).reshape(-1))
    return {"pooled": np.stack(out)}


def test_map_batches_to_columns_writes_any_vector_per_row_cached_and_streamed(digits_dir, tmp_path):
    ds = load_from_disk(digits_dir)
    features = Features({"pooled": List(Value("float32"), length=16)})
    fingerprint = Hasher.hash(["pooled-4x4", ds._fingerprint])
    calls = []

    def fn(images, rows):
        return pooled(images, rows, calls)

    out = map_batches_to_columns(ds, fn, features=features, fingerprint=fingerprint, input_columns=["image"],
                                 batch_size=BATCH, tag="pooled")
    expected = np.stack([np.asarray(im, np.float32).reshape(4, 2, 4, 2).mean(axis=(1, 3)).reshape(-1)
                         for im in ds["image"]])
    got = np.asarray(out.with_format("numpy")["pooled"][:])
    np.testing.assert_array_equal(got, expected)
    assert out.column_names == ["image", "label", "pooled"] and calls == [BATCH] * (N // BATCH)
    assert any("pooled-" in f["filename"] for f in out.cache_files)  # on disk, named by the fingerprint
    again = map_batches_to_columns(load_from_disk(digits_dir), fn, features=features, fingerprint=fingerprint,
                                   input_columns=["image"], batch_size=3, tag="pooled")
    assert len(calls) == N // BATCH and again._fingerprint == out._fingerprint  # the cache, whatever the batch size
    streamed = map_batches_to_columns(ds.to_iterable_dataset(num_shards=2), fn, features=features,
                                      fingerprint=fingerprint, input_columns=["image"], batch_size=BATCH,
                                      output_dir=str(tmp_path / "f"), shard_size=20)
    np.testing.assert_array_equal(np.asarray(streamed.with_format("numpy")["pooled"][:]), expected)
    assert len(list((tmp_path / "f" / "data").glob("*.parquet"))) == 3  # 20 + 20 + 8 rows
