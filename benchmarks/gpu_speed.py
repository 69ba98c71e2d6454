"""Speed on a GPU, for benchmarks/gpu_check.sh: the trainer-overhead and labelling-throughput ratios of the CPU
benchmarks, measured on the device, and images/s of two real-sized students.

* trainer overhead: WeakToStrongTrainer (cached weak logits, adapt_conf) vs a plain Trainer with cross-entropy, step
  time on the packaged digits (trainer_overhead.py's runs; both train on the device the Trainer picks);
* labelling: label_dataset vs a bare inference_mode loop on the device (label_throughput.py's loop), linear and
  ResNet weak models;
* students: images/s of a training step through WeakToStrongTrainer (bf16 on a GPU, cached weak logits, batch
  --batch_size, random 224 px pixel_values made in the data loader) and of bf16 inference (inference_mode, the batch
  already on the device), for the converted ImageNet EfficientNet-Lite0 (``hf-w2s convert``, when this checkout has
  it) or else the same architecture with random weights (the same computation), and a ViT-B/16-sized ViT (ViTConfig's
  defaults).

Ratios are medians of paired runs (alternated), as in the CPU benchmarks.

    python benchmarks/gpu_speed.py [--quick]      # --quick: tiny sizes, a dry run of the code (CPU is fine)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

import datasets
import numpy as np
import torch
from common import (
    StepTimer,
    alternating,
    digits,
    header,
    ms,
    processor,
    quiet,
    ratio,
    repeated_digits,
    run_args,
    strong_model,
    time_w2s,
    weak_model,
    with_random_weak_logits,
)
from label_throughput import bare_loop
from trainer_overhead import time_plain

from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer
from hf_w2s.data.packaged import DIGIT_NAMES
from hf_w2s.data.weak_labels import label_dataset


def device_line() -> str:
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return (f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}."
                f"{props.minor}; torch {torch.__version__}, CUDA {torch.version.cuda}")
    return f"no CUDA device: CPU ({os.cpu_count()} cores), torch {torch.__version__}"


def trainer_overhead(steps: int, repeats: int, batch_size: int) -> None:
    ds = with_random_weak_logits(digits(3000))
    times = alternating({"plain": lambda: time_plain(ds, steps, batch_size),
                         "w2s": lambda: time_w2s(ds, steps, batch_size)}, repeats)
    print(f"plain Trainer + CE         : {ms(times['plain'])}")
    print(f"WeakToStrongTrainer cached : {ms(times['w2s'])}")
    print(f"trainer overhead ratio W2S / plain: {ratio(times['w2s'], times['plain'])} "
          f"(median of {repeats} paired runs, {steps} steps of batch {batch_size})")


def labelling(n: int, repeats: int, batch_size: int, device: str) -> None:
    datasets.disable_caching()
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        repeated_digits(n).save_to_disk(f"{tmp}/ds")
        ds = datasets.load_from_disk(f"{tmp}/ds")
        proc = processor()
        for name, model in (("linear weak", weak_model()), ("ResNet", strong_model())):
            results = {}

            def timed(what, fn):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t = (time.perf_counter(), time.process_time())
                results[what] = fn()
                return time.perf_counter() - t[0], time.process_time() - t[1]

            times = alternating({
                "bare": lambda: timed("bare", lambda: bare_loop(ds, model, proc, batch_size, device)),
                "label_dataset": lambda: timed("label_dataset", lambda: label_dataset(
                    ds, model, proc, batch_size=batch_size, device=device)),
            }, repeats)
            got = np.asarray(results["label_dataset"].with_format("numpy")["weak_logits"][:])
            assert np.allclose(got, results["bare"], atol=1e-4), "label_dataset and the bare loop disagree"
            bare = statistics.median(w for w, _ in times["bare"])
            labelled = statistics.median(w for w, _ in times["label_dataset"])
            print(f"{name:<12} bare loop {n / bare:8.0f} images/s, label_dataset {n / labelled:8.0f} images/s; "
                  f"labelling throughput ratio label_dataset / bare: {ratio(times['bare'], times['label_dataset'])} "
                  f"(median of {repeats} paired runs, {n} images, batch {batch_size}, on {device})")


def lite0_student(names: list[str], out_dir: str):
    """The converted ImageNet EfficientNet-Lite0 with a fresh head for ``names``, or ``None`` with the reason."""
    from hf_w2s.cli import COMMANDS
    from hf_w2s.modeling import load_image_classifier

    if "convert" not in COMMANDS:
        return None, "this checkout has no `hf-w2s convert` (issue 12)"
    for variant in ("efficientnet-lite0", "lite0"):
        target = os.path.join(out_dir, variant)
        res = subprocess.run([sys.executable, "-m", "hf_w2s.cli", "convert", variant, target], capture_output=True,
                             text=True)
        if res.returncode == 0:
            return load_image_classifier(target, names), f"converted with `hf-w2s convert {variant}`"
        reason = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"`hf-w2s convert` failed: {reason[0]}"


def lite0_architecture(names: list[str]):
    """EfficientNet-Lite0's architecture in transformers (the settings of hf-stack-facts.md), random weights."""
    from transformers import EfficientNetConfig, EfficientNetForImageClassification

    from hf_w2s.labels import label_maps

    id2label, label2id = label_maps(names)
    config = EfficientNetConfig(width_coefficient=1.0, depth_coefficient=1.0, image_size=224, hidden_dim=1280,
                                hidden_act="relu6", depthwise_padding=[], batch_norm_eps=1e-3, dropout_rate=0.2,
                                num_labels=len(names), id2label=id2label, label2id=label2id)
    return EfficientNetForImageClassification(config)


def vit_b(names: list[str], image_size: int):
    from transformers import ViTConfig, ViTForImageClassification

    from hf_w2s.labels import label_maps

    id2label, label2id = label_maps(names)
    config = ViTConfig(image_size=image_size, num_labels=len(names), id2label=id2label, label2id=label2id)
    return ViTForImageClassification(config)  # hidden 768, 12 layers, 12 heads, patch 16: ViT-B/16


def random_pixels(n_rows: int, image_size: int, n_classes: int) -> datasets.Dataset:
    """Rows with a label and weak logits; each row's pixel_values (3, S, S) are drawn when the loader reads it."""
    rng = np.random.default_rng(0)
    ds = datasets.Dataset.from_dict({
        "label": rng.integers(0, n_classes, n_rows).tolist(),
        "weak_logits": rng.standard_normal((n_rows, n_classes)).astype(np.float32).tolist(),
    })

    def add_pixels(batch):
        n = len(batch["label"])
        return {**batch, "pixel_values": list(torch.randn(n, 3, image_size, image_size))}

    return ds.with_transform(add_pixels)


def student_speed(name: str, model, image_size: int, batch_size: int, steps: int, device: str, workers: int) -> None:
    n_classes = model.config.num_labels
    with tempfile.TemporaryDirectory() as out:
        timer = StepTimer()
        args = WeakToStrongConfig(**{**run_args(out, steps, batch_size), "logging_steps": steps,
                                     "dataloader_num_workers": workers},
                                  bf16=device.startswith("cuda"), use_cpu=not device.startswith("cuda"))
        trainer = WeakToStrongTrainer(model=model, args=args, callbacks=[timer],
                                      train_dataset=random_pixels(batch_size * (steps + 1), image_size, n_classes))
        quiet(trainer).train()
        wall, _ = timer.median(skip=min(5, steps // 2))
    model.eval()
    batch = torch.randn(batch_size, 3, image_size, image_size, device=device)
    cuda = device.startswith("cuda")
    precision = "bf16" if cuda else "float32"
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    times = []
    with torch.inference_mode(), autocast:
        for _ in range(steps):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(pixel_values=batch)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    infer = statistics.median(times[min(5, steps // 2):])
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"{name:<40} ({params:5.1f} M parameters, {image_size} px, batch {batch_size}): "
          f"training {batch_size / wall:7.0f} images/s (WeakToStrongTrainer, {precision}), "
          f"inference {batch_size / infer:7.0f} images/s ({precision})")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="tiny sizes: a dry run of the code, on any machine")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.quick:
        steps, repeats, n, size, batch, workers = 8, 1, 256, 32, 4, 0
    else:
        steps, repeats, n, size, batch, workers = 50, 5, 20000, 224, 64, min(8, (os.cpu_count() or 2) // 2)
    header("GPU speed: trainer overhead, labelling throughput, student images/s")
    print(device_line())
    trainer_overhead(steps, repeats, 64 if not a.quick else 16)
    labelling(n, repeats, 256 if not a.quick else 64, device)
    names = list(DIGIT_NAMES)
    with tempfile.TemporaryDirectory() as tmp:
        lite0, how = lite0_student(names, tmp)
        if lite0 is None:
            print(f"converted EfficientNet-Lite0 student: skipped, {how}")
            student_speed("EfficientNet-Lite0 architecture, random weights", lite0_architecture(names), size, batch,
                          steps, device, workers)
        else:
            print(f"EfficientNet-Lite0 student: {how}")
            student_speed("EfficientNet-Lite0, converted ImageNet weights", lite0, size, batch, steps, device,
                          workers)
    student_speed("ViT-B/16-sized (ViTConfig defaults)", vit_b(names, size), size, batch, steps, device, workers)


if __name__ == "__main__":
    main()
