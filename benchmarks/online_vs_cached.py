"""Step time of WeakToStrongTrainer with online supervision (the weak model runs every step) vs cached weak logits.

Tells users what caching (hf-w2s label / label_dataset) buys. Two weak models: the benchmark's linear supervisor and
a weak model as large as the student (the ResNet), which is the case where caching matters most.

    OMP_NUM_THREADS=1 python benchmarks/online_vs_cached.py [--steps 50] [--repeats 11] [--batch_size 64]
"""

from __future__ import annotations

from common import (
    alternating,
    digits,
    header,
    ms,
    ratio,
    strong_model,
    time_w2s,
    timing_arguments,
    weak_model,
    with_random_weak_logits,
)


def main() -> None:
    a = timing_arguments()
    header("online vs cached supervision (WeakToStrongTrainer, adapt_conf)")
    images = digits(3000)
    cached_ds = with_random_weak_logits(images)
    plain_ds = images.select_columns(["image", "label"])
    times = alternating({
        "cached": lambda: time_w2s(cached_ds, a.steps, a.batch_size),
        "online linear weak": lambda: time_w2s(plain_ds, a.steps, a.batch_size, weak=weak_model()),
        "online ResNet weak": lambda: time_w2s(plain_ds, a.steps, a.batch_size, weak=strong_model(seed=1)),
    }, a.repeats)
    for name, values in times.items():
        print(f"{name:<20}: {ms(values)}  ratio to cached (median of paired runs): "
              f"{ratio(values, times['cached'])}")


if __name__ == "__main__":
    main()
