"""Whole-run time of WeakToStrongTrainer with each image pre-processed once and kept in memory (``pixel_cache_mb``,
the default) vs decoded and pre-processed in every batch of every epoch (``pixel_cache_mb 0``). Same batches, same
training (tests/test_pixel_cache.py checks the weights are identical); the cache's one pass is inside the timed run.

    OMP_NUM_THREADS=1 python benchmarks/pixel_cache.py [--n 2000] [--epochs 3] [--repeats 5] [--batch_size 64]
"""

from __future__ import annotations

import tempfile
import time

from common import (
    alternating,
    digits,
    header,
    processor,
    quiet,
    ratio,
    run_args,
    strong_model,
    timing_arguments,
    with_random_weak_logits,
)


def time_run(ds, epochs: int, batch_size: int, cache_mb: float) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole training run of ``epochs`` epochs."""
    from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer

    with tempfile.TemporaryDirectory() as out:
        args = run_args(out, 0, batch_size)
        del args["max_steps"]
        config = WeakToStrongConfig(w2s_loss="adapt_conf", num_train_epochs=epochs, pixel_cache_mb=cache_mb, **args)
        trainer = quiet(WeakToStrongTrainer(model=strong_model(), args=config, train_dataset=ds,
                                            processing_class=processor()))
        start = time.perf_counter(), time.process_time()
        trainer.train()
        return time.perf_counter() - start[0], time.process_time() - start[1]


def main() -> None:
    a = timing_arguments(repeats=5, n=2000, epochs=3)
    header(f"pre-processed pixels kept in memory vs pre-processed per batch ({a.n} digits, {a.epochs} epochs)")
    ds = with_random_weak_logits(digits(a.n))
    times = alternating({
        "cached": lambda: time_run(ds, a.epochs, a.batch_size, 1024.0),
        "per batch": lambda: time_run(ds, a.epochs, a.batch_size, 0.0),
    }, a.repeats)
    for name, values in times.items():
        walls, cpus = [round(w, 2) for w, _ in values], [round(c, 2) for _, c in values]
        print(f"{name:<10}: wall per run {walls} s, CPU {cpus} s")
    print(f"ratio cached / per batch (whole run, median of paired runs): {ratio(times['cached'], times['per batch'])}")


if __name__ == "__main__":
    main()
