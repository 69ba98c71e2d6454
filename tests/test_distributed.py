"""Two real CPU processes (``torchrun --standalone --nproc_per_node 2``, gloo) against one process.

The torchrun run happens once per module (``dist_run``); the single-process references run in the test process with
the same builders (tests/scripts/dist_worker.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPTS = Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import dist_worker  # noqa: E402

from hf_w2s.distributed import gather_weighted_means, prepare_weak_model, weak_model_deepspeed_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist_run(tmp_path_factory):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(SCRIPTS / "dist_worker.py"), str(out)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    results = json.loads((out / "results.json").read_text())
    # really two processes, for labelling (no Trainer yet) and for training
    assert results["world_size"] == 2 and results["world_size_cached"] == 2 and results["world_size_online"] == 2
    return out, results


def _load(path):
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.parametrize("mode", ["cached", "online"])
def test_two_processes_of_batch_4_take_the_step_of_one_process_of_batch_8(dist_run, mode, tmp_path):
    out, results = dist_run
    ref_weights, ref_logs = dist_worker.train_one_step(mode, 8, str(tmp_path / "ref"))
    ddp_weights = _load(out / f"{mode}.safetensors")
    assert set(ddp_weights) == set(ref_weights)
    initial = dist_worker.student().state_dict()
    moved = 0.0
    for name, ref in ref_weights.items():
        torch.testing.assert_close(ddp_weights[name], ref, rtol=1e-5, atol=1e-6, msg=name)
        moved = max(moved, (ref - initial[name]).abs().max().item())
    assert moved > 1e-3  # the step really changed the weights
    assert results[mode][0]["loss"] == pytest.approx(ref_logs[0]["loss"], rel=1e-5)


@pytest.mark.parametrize("mode", ["cached", "online"])
def test_logged_metrics_are_gathered_over_both_processes(dist_run, mode):
    _, results = dist_run
    logged = results[mode][0]
    # the components over the full batch of 8, computed directly from the initial models
    data = dist_worker.train_data(with_weak_logits=mode == "cached")
    proc = dist_worker.processor()
    pixel_values = torch.as_tensor(proc(images=[im for im in data["image"]], return_tensors="np")["pixel_values"])
    with torch.no_grad():
        s = dist_worker.student()(pixel_values=pixel_values).logits
        if mode == "cached":
            w = torch.tensor(data["weak_logits"])
        else:
            columns = [dist_worker.WEAK_NAMES.index(name) for name in dist_worker.NAMES]  # by name
            w = dist_worker.weak_model()(pixel_values=pixel_values).logits[:, columns]
    labels = torch.tensor(data["label"])
    # AdaptConf (T = 0.5, tau = 1) written out: a = sigmoid((CE(s, s^) - CE(s, w^)) / T)
    rows = torch.arange(8)
    log_p, p_w = torch.log_softmax(s, -1), torch.softmax(w, -1)
    ce_self, ce_weak = -log_p[rows, s.argmax(-1)], -log_p[rows, w.argmax(-1)]
    a = torch.sigmoid((ce_self - ce_weak) / 0.5)
    kd = (p_w * (torch.log(p_w) - log_p)).sum(-1)
    expected = {"a": a, "kd": kd, "ce_self": ce_self, "ce_gt": -log_p[rows, labels],
                "agreement": (s.argmax(-1) == w.argmax(-1)).float(), "loss_w2s": (1 - a) * kd + a * ce_self}
    for name, per_example in expected.items():
        assert logged[name] == pytest.approx(per_example.mean().item(), rel=1e-5, abs=1e-6), name
    assert logged["loss"] == pytest.approx(logged["loss_w2s"] + 0.5 * logged["ce_gt"], rel=1e-4)
    # agreement over 8 examples moves in steps of 1/8; one process alone would log a multiple of 1/4
    assert logged["agreement"] * 8 == pytest.approx(round(logged["agreement"] * 8))


def test_labelling_with_two_processes_matches_one_process_in_order(dist_run):
    _, results = dist_run
    ref = dist_worker.label(dist_worker.label_data())
    assert results["columns"] == ref.column_names
    assert len(results["weak_label"]) == dist_worker.N_LABEL == 11  # parts of 6 and 5
    assert results["weak_label"] == list(ref["weak_label"])
    # the same batches on one process and on two (LABEL_BATCH divides the first part): the very same floats
    np.testing.assert_array_equal(np.asarray(results["weak_logits"], np.float32), dist_worker_logits(ref))


def test_two_processes_write_parts_to_disk_with_one_process_fingerprint_and_cache(dist_run):
    """Each process wrote its part to a cache file (no gather); both processes opened the same result, with the
    fingerprint of one process; labelling again ran no forward pass; one process here reads the same cache."""
    out, results = dist_run
    saved = results["saved"]
    assert [p["calls"] for p in saved] == [[3, 0], [3, 0]]  # 6 and 5 rows in batches of 2, then the cache
    parts = [f"_{r:05d}_of_00002.arrow" for r in range(2)]
    for seen in saved:
        assert len(seen["cache_files"]) == 2 and all(f.endswith(p) for f, p in zip(seen["cache_files"], parts))
        assert seen["fingerprints"][0] == seen["fingerprints"][1] == saved[0]["fingerprints"][0]
        assert seen["logits"] == saved[0]["logits"]
    from datasets import load_from_disk

    model = dist_worker.weak_model()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    here = dist_worker.label(load_from_disk(str(out / "label_ds")), model)
    assert calls == [] and here._fingerprint == saved[0]["fingerprints"][0]  # the two processes' files, as cache
    fresh = dist_worker.label(dist_worker.label_data())  # computed on one process, from the same images
    np.testing.assert_array_equal(dist_worker_logits(here), dist_worker_logits(fresh))
    np.testing.assert_array_equal(np.asarray(saved[0]["logits"], np.float32), dist_worker_logits(fresh))


def test_a_stream_is_labelled_by_two_processes_in_disjoint_shards(dist_run):
    out, results = dist_run
    from datasets import load_dataset

    files = sorted(p.name for p in (out / "stream" / "data").glob("*.parquet"))
    # the stream's two data shards (rows 0-5, 6-10) went one to each process, in shards of 2 rows
    assert files == [f"train-00000-of-00002-{i:05d}.parquet" for i in range(3)] + [
        f"train-00001-of-00002-{i:05d}.parquet" for i in range(3)]
    assert results["streamed_rows"] == [11, 11]  # every process returned the whole labelled set
    by_process = [load_dataset("parquet", data_files=str(out / "stream" / "data" / f"train-{r:05d}-*.parquet"),
                               split="train") for r in range(2)]
    assert by_process[0]["id"] == list(range(6)) and by_process[1]["id"] == list(range(6, 11))
    ref = dist_worker.label(dist_worker.label_data())
    streamed = np.concatenate([dist_worker_logits(d) for d in by_process])
    np.testing.assert_array_equal(streamed, dist_worker_logits(ref))


def dist_worker_logits(ds):
    return np.stack(ds.with_format("numpy")["weak_logits"]).astype(np.float32)


def test_a_labelling_error_in_one_shard_reaches_every_process_with_global_rows(dist_run):
    out, _ = dist_run
    failing = (out / "broken-rank1.txt").read_text()
    other = (out / "broken-rank0.txt").read_text()
    # the process whose part (rows 3..5) holds the bad image: label_dataset's own message with the dataset's row
    # number, and a note naming the rows the process handled
    assert "cannot decode the image in column 'image'" in failing and failing.startswith("ValueError: row 4:")
    assert "(process 1 of 2 handled rows 3..5 of the dataset)" in failing
    # the other process does not hang at the barrier: it raises too, naming the failing process
    assert other.startswith("RuntimeError: label_dataset failed on process 1: ValueError: row 4:")


# -- single-process pieces ------------------------------------------------------------------------------------------


def test_gather_weighted_means_weights_each_process_by_its_batch_size(dist_run):
    """Process 0 held 4 values, process 1 held 3: the gathered mean is the mean of all 7, not of the two means."""
    _, results = dist_run
    values = [v for batch in dist_worker.UNEQUAL_BATCHES for v in batch]
    assert results["unequal_means"]["m"] == pytest.approx(sum(values) / 7)  # 10.0 (the means' mean is 11.25)
    assert results["unequal_means"]["square"] == pytest.approx(sum(v * v for v in values) / 7)


def test_gather_weighted_means_single_process_is_identity():
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    out = gather_weighted_means({"a": torch.tensor(0.25), "b": torch.tensor(3.0)}, 5, acc)
    assert out == {"a": 0.25, "b": 3.0}
    assert gather_weighted_means({}, 5, acc) == {}


def test_prepare_weak_model_is_inference_only_and_unwrapped():
    from accelerate import Accelerator

    weak = dist_worker.weak_model()
    weak.train()
    prepared = prepare_weak_model(weak, Accelerator(cpu=True))
    assert prepared is weak and not prepared.training
    assert not any(p.requires_grad for p in prepared.parameters())


PLUGIN_CONFIG = {
    "train_micro_batch_size_per_gpu": 4,
    "gradient_accumulation_steps": 1,
    "bf16": {"enabled": True},
    "optimizer": {"type": "AdamW", "params": {"lr": "auto"}},
    "scheduler": {"type": "WarmupLR", "params": {}},
}


def test_deepspeed_weak_config_zero3_is_sharded_and_sized_from_the_weak_model():
    plugin = {**PLUGIN_CONFIG, "zero_optimization": {
        "stage": 3, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto", "overlap_comm": True}}
    cfg = weak_model_deepspeed_config(plugin, hidden_size=64)
    assert "optimizer" not in cfg and "scheduler" not in cfg
    assert cfg["zero_optimization"] == {
        "stage": 3, "reduce_bucket_size": 4096, "stage3_prefetch_bucket_size": 3686,
        "stage3_param_persistence_threshold": 640, "overlap_comm": True}
    assert cfg["bf16"] == {"enabled": True} and cfg["train_micro_batch_size_per_gpu"] == 4
    # the plugin's own config is untouched (a copy)
    assert "optimizer" in plugin and plugin["zero_optimization"]["reduce_bucket_size"] == "auto"
    # unknown hidden size: the "auto" sizes are dropped rather than handed to DeepSpeed
    assert weak_model_deepspeed_config(plugin)["zero_optimization"] == {"stage": 3, "overlap_comm": True}


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_deepspeed_weak_config_below_zero3_is_stage_0(stage):
    plugin = {**PLUGIN_CONFIG, "zero_optimization": {"stage": stage, "reduce_bucket_size": "auto",
                                                     "contiguous_gradients": True}}
    cfg = weak_model_deepspeed_config(plugin, hidden_size=64)
    assert cfg["zero_optimization"] == {"stage": 0, "contiguous_gradients": True}
    assert "optimizer" not in cfg and "scheduler" not in cfg
    assert weak_model_deepspeed_config({})["zero_optimization"] == {"stage": 0}
