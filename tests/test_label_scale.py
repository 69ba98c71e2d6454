"""Weak labels and cached features at scale (issue 30).

Storage forms: what float32, float16 and top-k weak logits keep exactly, bytes on disk at ImageNet's width, every loss
read from each form within its stated tolerance, the trainer's collator and checks at full width. Streaming input:
a stream gives the labels of the map-style dataset in Parquet shards, a labelling killed mid-way resumes at its first
missing shard to the same result, the output loads as a Dataset and trains a student. The generic per-row vector
writer behind labelling: ``map_batches_to_columns`` with a function that is not a weak model (a feature vector per
row), map-style and streaming, cached by its fingerprint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from datasets import Features, Image, List, Value, concatenate_datasets, load_dataset, load_from_disk
from datasets.fingerprint import Hasher

from hf_w2s import LOSSES, WeakToStrongConfig, WeakToStrongTrainer, compute_w2s_loss, label_dataset
from hf_w2s.cli import main as cli_main
from hf_w2s.data.batch_columns import map_batches_to_columns
from hf_w2s.data.checks import check_weak_logits
from hf_w2s.data.images import decode_image
from hf_w2s.data.logit_storage import LogitStorage, full_width
from hf_w2s.data.packaged import load_sklearn_digits
from hf_w2s.data.weak_labels import align_weak_labels, weak_logits_array
from hf_w2s.modeling import build_model, tiny_image_processor
from hf_w2s.trainer.collator import WeakToStrongCollator

NAMES = [str(i) for i in range(10)]
N = 48
BATCH, SHARD = 8, 16  # streaming: 48 rows in 3 shards of 2 batches

#: the stated tolerances against float32 (docs/many_gpus.md): float16 — every loss within 1e-4 (relative), its
#: gradient within 2e-3 of the gradient's largest entry; top-10 of 1,000 classes, the weak model keeping 91 % of its
#: probability in those classes on average — weak_hard and conf_select exact, every other loss within 1 %
FLOAT16_LOSS, FLOAT16_GRAD, TOPK_LOSS = 1e-4, 2e-3, 1e-2


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


def weak(names=NAMES, seed=0):
    return build_model("linear", names, image_size=8, num_channels=3, width=8, seed=seed)


def labelled(digits_dir, form="float32", k=3, model=None):
    ds = load_from_disk(digits_dir)
    return label_dataset(ds, model or weak(), tiny_image_processor(8), batch_size=16, logits_storage=form, top_k=k)


def test_each_form_keeps_labels_and_confidences_and_what_it_promises(digits_dir):
    ref = labelled(digits_dir)
    exact = weak_logits_array(ref)
    half, top = labelled(digits_dir, "float16"), labelled(digits_dir, "topk", k=3)
    for out in (half, top):  # label and confidence come from the float32 logits
        assert out["weak_label"] == ref["weak_label"] and out["weak_confidence"] == ref["weak_confidence"]
        assert out._fingerprint != ref._fingerprint and out["label"] == ref["label"]
    assert half.features["weak_logits"].feature.dtype == "float16"
    np.testing.assert_allclose(weak_logits_array(half), exact, rtol=2.0 ** -11, atol=1e-7)
    decoded = weak_logits_array(top)
    kept = np.argsort(-exact, axis=1)[:, :3]
    np.testing.assert_array_equal([row["topk_indices"] for row in top["weak_logits"]], kept)
    p, q = torch.softmax(torch.from_numpy(exact), -1), torch.softmax(torch.from_numpy(decoded), -1)
    index = torch.from_numpy(kept)
    torch.testing.assert_close(q.gather(1, index), p.gather(1, index), rtol=1e-5, atol=1e-7)  # exact where kept
    rest = 1 - p.gather(1, index).sum(-1)  # the rest is shared equally by the 7 other classes
    others = torch.ones_like(q, dtype=torch.bool).scatter(1, index, False)
    torch.testing.assert_close(q[others].reshape(N, 7), (rest / 7)[:, None].expand(N, 7), rtol=1e-4, atol=1e-7)
    assert not torch.allclose(q, p, atol=1e-3)  # and that is all it keeps


def test_topk_of_imagenet_width_takes_under_a_tenth_of_float32_on_disk(digits_dir):
    wide = [f"class_{i}" for i in range(1000)]
    model = weak(wide, seed=2)
    ds = load_from_disk(digits_dir).remove_columns("label")
    sizes = {}

    def on_disk(data, form) -> int:
        out = label_dataset(data, model, tiny_image_processor(8), batch_size=16, logits_storage=form, top_k=10)
        files = {f["filename"] for f in out.cache_files if "weak-labels" in f["filename"]}
        return sum(os.path.getsize(f) for f in files)

    for form in ("float32", "topk"):  # per row: N more rows (the file's schema, 1,000 class names, cancels out)
        sizes[form] = (on_disk(concatenate_datasets([ds, ds]), form) - on_disk(ds, form)) / N
    assert sizes["float32"] > 4000 and sizes["topk"] <= sizes["float32"] / 10, sizes  # measured 4,056 vs 144


def sharp_weak_logits(classes: int, rows: int = 64, margin: float = 10.0, seed: int = 0):
    """A confident weak model's logits: noise, and ``margin`` on one class per row."""
    rng = np.random.default_rng(seed)
    w = torch.tensor(rng.standard_normal((rows, classes)), dtype=torch.float32)
    target = torch.tensor(rng.integers(0, classes, rows))
    w[torch.arange(rows), target] += margin
    return w, torch.tensor(rng.standard_normal((rows, classes)), dtype=torch.float32), target


def stored_and_read(w: torch.Tensor, form: str, k: int) -> torch.Tensor:
    encoded = LogitStorage.of(form, k).encode(w.numpy())
    return torch.from_numpy(full_width(encoded if isinstance(encoded, list) else encoded.tolist()))


def loss_and_grad(name, student, weak_logits, labels):
    s = student.clone().requires_grad_(True)
    loss, _ = compute_w2s_loss(name, s, weak_logits, labels, progress=0.5)
    loss.backward()
    return loss.item(), s.grad


@pytest.mark.parametrize("classes,k", [(1000, 10), (2, 1)])
def test_every_loss_reads_each_stored_form_within_its_tolerance(classes, k):
    w, s, labels = sharp_weak_logits(classes)
    kept = torch.softmax(w, -1).topk(k, -1).values.sum(-1).mean().item()
    assert classes == 2 or 0.85 < kept < 0.95  # the setting the tolerance is stated for (91 %)
    losses = [n for n, info in LOSSES.items() if info.uses_weak and info.num_classes in (None, classes)]
    assert len(losses) >= 8 and ("aux_conf" in losses) == (classes == 2)
    for name in losses:
        ref_loss, ref_grad = loss_and_grad(name, s, w, labels)
        half_loss, half_grad = loss_and_grad(name, s, stored_and_read(w, "float16", k), labels)
        assert half_loss == pytest.approx(ref_loss, rel=FLOAT16_LOSS), name
        assert (half_grad - ref_grad).abs().max() <= FLOAT16_GRAD * ref_grad.abs().max(), name
        top_loss, top_grad = loss_and_grad(name, s, stored_and_read(w, "topk", k), labels)
        if name in ("weak_hard", "conf_select") or classes == 2:  # the argmax, or all there is, is kept exactly
            assert top_loss == ref_loss and torch.equal(top_grad, ref_grad), name
        else:
            assert top_loss == pytest.approx(ref_loss, rel=TOPK_LOSS), name
            assert top_loss != ref_loss, name  # a real approximation, not a copy


def test_the_collator_and_the_trainer_checks_read_every_form_at_full_width(digits_dir):
    ref = labelled(digits_dir)
    for form in ("float16", "topk"):
        out = labelled(digits_dir, form)
        batch = WeakToStrongCollator(image_processor=tiny_image_processor(8))([out[i] for i in range(5)])
        assert batch["weak_logits"].shape == (5, 10) and batch["weak_logits"].dtype == torch.float32
        np.testing.assert_array_equal(batch["weak_logits"].numpy(), weak_logits_array(out)[:5])
        several = WeakToStrongCollator(image_processor=tiny_image_processor(8), weak_logits_columns=["a", "b"])(
            [{"image": r["image"], "a": r["weak_logits"], "b": q} for r, q in zip(out, ref["weak_logits"])][:3])
        assert several["weak_logits"].shape == (3, 2, 10)
        check_weak_logits(out, "weak_logits", 10)  # passes at full width
        with pytest.raises(ValueError, match="has 10 values per example but the student has 12 labels"):
            check_weak_logits(out, "weak_logits", 12)
    corrupt = labelled(digits_dir, "topk").map(
        lambda row, i: {"weak_logits": {**row["weak_logits"], "topk_indices": [99, 0, 1]} if i == 3 else
                        row["weak_logits"]}, with_indices=True)
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 example\(s\) \(rows 3\)"):
        check_weak_logits(corrupt, "weak_logits", 10)


def test_reordering_by_name_keeps_the_storage_form(digits_dir):
    order = NAMES[::-1]
    ref = align_weak_labels(labelled(digits_dir), order)
    for form in ("float16", "topk"):
        out = align_weak_labels(labelled(digits_dir, form), order)
        assert out["weak_label"] == ref["weak_label"] and out.features["weak_label"].names == order
        assert out.features["weak_logits"] == labelled(digits_dir, form).features["weak_logits"]
        decoded, exact = weak_logits_array(out), weak_logits_array(ref)
        assert (decoded.argmax(-1) == exact.argmax(-1)).all()
        np.testing.assert_allclose(torch.softmax(torch.from_numpy(decoded), -1).max(-1).values,
                                   torch.softmax(torch.from_numpy(exact), -1).max(-1).values, rtol=1e-3)


@pytest.mark.parametrize("form", ["float16", "topk"])
def test_the_trainer_trains_every_loss_from_each_form(digits_dir, form, tmp_path):
    out = labelled(digits_dir, form)
    processor = tiny_image_processor(8)
    names = [n for n, info in LOSSES.items() if info.uses_weak and info.num_classes in (None, 10)]
    for name in names:
        student = build_model("linear", NAMES, image_size=8, num_channels=3, width=8, seed=1)
        before = [p.detach().clone() for p in student.parameters()]
        args = WeakToStrongConfig(output_dir=str(tmp_path / name), w2s_loss=name, per_device_train_batch_size=16,
                                  max_steps=2, learning_rate=0.1, use_cpu=True, report_to="none", save_strategy="no",
                                  disable_tqdm=True, seed=0)
        result = WeakToStrongTrainer(model=student, args=args, train_dataset=out, processing_class=processor).train()
        assert np.isfinite(result.training_loss), name
        assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters())), name


# -- streaming, and the generic writer ---------------------------------------------------------------------------


def counted(model):
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return model, calls


def stream_of(digits_dir, shards=3):
    return load_from_disk(digits_dir).to_iterable_dataset(num_shards=shards)


def label_stream(digits_dir, out, model=None, **kw):
    return label_dataset(stream_of(digits_dir), model or weak(seed=4), tiny_image_processor(8), batch_size=BATCH,
                         output_dir=str(out), shard_size=SHARD, **kw)


def test_a_stream_gives_the_labels_of_the_dataset_in_shards(digits_dir, tmp_path):
    ref = label_dataset(load_from_disk(digits_dir), weak(seed=4), tiny_image_processor(8), batch_size=BATCH)
    model, calls = counted(weak(seed=4))
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
    # a real process, killed with SIGKILL mid-way (nothing of it may clean up)
    run = subprocess.run([sys.executable, "-c", KILLED, str(out), digits_dir, str(BATCH), str(SHARD)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == -9, run.stderr[-2000:]
    data = out / "data"
    assert sorted(p.name for p in data.glob("*.parquet")) == [f"train-00000-of-00001-{i:05d}.parquet" for i in (0, 1)]
    assert [p.name for p in data.glob(".*.partial")] == [".train-00000-of-00001-00002.parquet.partial"]
    progress = json.loads((out / ".hf_w2s" / "progress-00000-of-00001.json").read_text())
    assert progress["rows"] == 2 * SHARD and not progress["done"]

    model, calls = counted(weak(seed=4))
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
        label_dataset(stream_of(digits_dir), weak(seed=4), tiny_image_processor(8), batch_size=BATCH,
                      output_dir=str(tmp_path / "s"), shard_size=SHARD + 1)


def test_cli_streams_into_output_and_resumes(digits_dir, tmp_path, capsys):
    model_dir = tmp_path / "weak"
    weak(seed=4).save_pretrained(model_dir)
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
