"""Step time of WeakToStrongTrainer with online supervision (the weak model runs every step) vs cached weak logits.

Tells users what caching (hf-w2s label / label_dataset) buys. Two weak models: the benchmark's linear supervisor and
a weak model as large as the student (the ResNet), which is the case where caching matters most.

    OMP_NUM_THREADS=1 python benchmarks/online_vs_cached.py [--steps 100] [--repeats 5] [--batch_size 64]
"""

from __future__ import annotations

from common import digits, header, ms, ratio, strong_model, time_w2s, timing_arguments, weak_model
from common import with_random_weak_logits


def main() -> None:
    a = timing_arguments()
    header("online vs cached supervision (WeakToStrongTrainer, adapt_conf)")
    images = digits(3000)
    cached_ds = with_random_weak_logits(images)
    plain_ds = images.select_columns(["image", "label"])
    times = {"cached": [], "online linear weak": [], "online ResNet weak": []}
    for _ in range(a.repeats):
        times["cached"].append(time_w2s(cached_ds, a.steps, a.batch_size))
        times["online linear weak"].append(time_w2s(plain_ds, a.steps, a.batch_size, weak=weak_model()))
        times["online ResNet weak"].append(time_w2s(plain_ds, a.steps, a.batch_size, weak=strong_model(seed=1)))
    for name, values in times.items():
        print(f"{name:<20}: {ms(values)}  ratio to cached: {ratio(values, times['cached'])}")


if __name__ == "__main__":
    main()
