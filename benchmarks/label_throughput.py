"""Throughput of hf_w2s.label_dataset vs a bare batched torch.inference_mode loop over the same model and data.

Both read the same on-disk dataset (images decoded by `datasets`), preprocess with the same processor and batch size;
label_dataset additionally writes weak_logits / weak_label / weak_confidence to Arrow through Dataset.map (caching is
disabled so every repeat really labels). Target: throughput ratio label_dataset / bare >= 0.9.

    OMP_NUM_THREADS=1 python benchmarks/label_throughput.py [--n 5000] [--batch_size 256] [--repeats 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import datasets
import numpy as np
import torch
from common import alternating, digits, header, median_pair, processor, ratio, strong_model, weak_model

from hf_w2s.data.images import pixel_values_from_images
from hf_w2s.data.weak_labels import label_dataset


def bare_loop(ds, model, proc, batch_size, device="cpu") -> np.ndarray:
    model.eval().to(device)
    out = []
    with torch.inference_mode():
        for start in range(0, len(ds), batch_size):
            images = ds[start : start + batch_size]["image"]
            pixel_values = pixel_values_from_images(images, proc).to(device)
            out.append(model(pixel_values=pixel_values).logits.float().cpu().numpy())
    return np.concatenate(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    header(f"labelling throughput: label_dataset vs a bare inference_mode loop ({a.n} images, batch {a.batch_size})")
    datasets.disable_caching()
    datasets.disable_progress_bars()
    proc = processor()
    with tempfile.TemporaryDirectory() as tmp:
        digits(a.n).save_to_disk(f"{tmp}/ds")
        ds = datasets.load_from_disk(f"{tmp}/ds")
        for name, model in (("linear weak", weak_model()), ("ResNet", strong_model())):
            results = {}

            def timed(what, fn):
                t = (time.perf_counter(), time.process_time())
                results[what] = fn()
                return time.perf_counter() - t[0], time.process_time() - t[1]

            times = alternating({
                "bare": lambda: timed("bare", lambda: bare_loop(ds, model, proc, a.batch_size)),
                "label_dataset": lambda: timed("label_dataset", lambda: label_dataset(ds, model, proc,
                                                                                    batch_size=a.batch_size)),
            }, a.repeats)
            got = np.asarray(results["label_dataset"].with_format("numpy")["weak_logits"][:])
            assert np.allclose(got, results["bare"], atol=1e-5), "label_dataset and the bare loop disagree"
            (bw, bc), (lw, lc) = median_pair(times["bare"]), median_pair(times["label_dataset"])
            print(f"{name:<12} bare loop    : {a.n / bw:8.0f} images/s wall, {a.n / bc:8.0f} images/s CPU")
            print(f"{name:<12} label_dataset: {a.n / lw:8.0f} images/s wall, {a.n / lc:8.0f} images/s CPU")
            # throughput ratio = time ratio bare / label_dataset, paired by repeat
            print(f"{name:<12} throughput ratio label_dataset / bare: {ratio(times['bare'], times['label_dataset'])}"
                  f"  (median of {a.repeats} paired runs; target >= 0.9)")


if __name__ == "__main__":
    main()
