"""Throughput of hf_w2s.label_dataset vs a bare batched torch.inference_mode loop over the same model and data.

Both read the same on-disk dataset (images decoded by `datasets`), preprocess with the same processor and batch size;
label_dataset additionally writes weak_logits / weak_label / weak_confidence to Arrow through Dataset.map (caching is
disabled so every repeat really labels). Target: throughput ratio label_dataset / bare >= 0.9.

    OMP_NUM_THREADS=1 python benchmarks/label_throughput.py [--n 5000] [--batch_size 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import datasets
import numpy as np
import torch
from common import digits, header, median_pair, processor, strong_model, weak_model

from hf_w2s.collator import pixel_values_from_images
from hf_w2s.weak_labels import label_dataset


def bare_loop(ds, model, proc, batch_size) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(ds), batch_size):
            images = ds[start : start + batch_size]["image"]
            out.append(model(pixel_values=pixel_values_from_images(images, proc)).logits.float().numpy())
    return np.concatenate(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    header(f"labelling throughput: label_dataset vs a bare inference_mode loop ({a.n} images, batch {a.batch_size})")
    datasets.disable_caching()
    datasets.disable_progress_bars()
    proc = processor()
    with tempfile.TemporaryDirectory() as tmp:
        digits(a.n).save_to_disk(f"{tmp}/ds")
        ds = datasets.load_from_disk(f"{tmp}/ds")
        for name, model in (("linear weak", weak_model()), ("ResNet", strong_model())):
            bare, labelled = [], []
            for _ in range(a.repeats):
                t = (time.perf_counter(), time.process_time())
                ref = bare_loop(ds, model, proc, a.batch_size)
                bare.append((time.perf_counter() - t[0], time.process_time() - t[1]))
                t = (time.perf_counter(), time.process_time())
                out = label_dataset(ds, model, proc, batch_size=a.batch_size)
                labelled.append((time.perf_counter() - t[0], time.process_time() - t[1]))
            got = np.asarray(out.with_format("numpy")["weak_logits"])
            assert np.allclose(got, ref, atol=1e-5), "label_dataset and the bare loop disagree"
            (bw, bc), (lw, lc) = median_pair(bare), median_pair(labelled)
            print(f"{name:<12} bare loop    : {a.n / bw:8.0f} images/s wall, {a.n / bc:8.0f} images/s CPU")
            print(f"{name:<12} label_dataset: {a.n / lw:8.0f} images/s wall, {a.n / lc:8.0f} images/s CPU")
            print(f"{name:<12} throughput ratio label_dataset / bare: wall {bw / lw:.3f}, CPU {bc / lc:.3f}  "
                  "(target >= 0.9)")

if __name__ == "__main__":
    main()
