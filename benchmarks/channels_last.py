"""Training and evaluation time of EfficientNet-Lite0 (its architecture, as hf-w2s demo fine-tunes it, at 32 px; random
weights: the time does not depend on them) with its convolution weights in channels-last memory format
(``channels_last``) vs PyTorch's default (NCHW). Same model, same batches; the two runs of a repeat alternate.

    OMP_NUM_THREADS=2 python benchmarks/channels_last.py [--steps 20] [--repeats 5] [--batch_size 32] [--n 640]
"""

from __future__ import annotations

import tempfile
import time

import torch
from common import (
    DIGIT_NAMES,
    alternating,
    digits,
    header,
    quiet,
    ratio,
    run_args,
    timing_arguments,
    with_random_weak_logits,
)

from hf_w2s.modeling import tiny_image_processor


def lite0():
    from transformers import EfficientNetForImageClassification

    from hf_w2s.convert import efficientnet_lite_config

    torch.manual_seed(0)
    return EfficientNetForImageClassification(efficientnet_lite_config("efficientnet-lite0",
                                                                       dict(enumerate(DIGIT_NAMES))))


def time_run(ds, steps: int, batch_size: int, channels_last: bool) -> tuple[tuple[float, float], tuple[float, float]]:
    """((wall, CPU) seconds per training step, (wall, CPU) seconds per evaluated image) of one run."""
    from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer

    with tempfile.TemporaryDirectory() as out:
        config = WeakToStrongConfig(w2s_loss="adapt_conf", channels_last=channels_last,
                                    per_device_eval_batch_size=128, **run_args(out, steps, batch_size))
        trainer = quiet(WeakToStrongTrainer(model=lite0(), args=config, train_dataset=ds, eval_dataset=ds,
                                            processing_class=tiny_image_processor(32, 3)))
        trainer.evaluate()  # the pixel cache is filled here, outside the timed parts
        start = time.perf_counter(), time.process_time()
        trainer.train()
        train = ((time.perf_counter() - start[0]) / steps, (time.process_time() - start[1]) / steps)
        start = time.perf_counter(), time.process_time()
        trainer.evaluate()
        evaluate = ((time.perf_counter() - start[0]) / len(ds), (time.process_time() - start[1]) / len(ds))
        return train, evaluate


def main() -> None:
    a = timing_arguments(steps=20, repeats=5, batch_size=32, n=640)
    header(f"EfficientNet-Lite0 at 32 px, channels-last vs NCHW ({a.steps} training steps of {a.batch_size}, "
           f"evaluation of {a.n} digits)")
    ds = with_random_weak_logits(digits(a.n))
    runs = alternating({"channels_last": lambda: time_run(ds, a.steps, a.batch_size, True),
                        "NCHW": lambda: time_run(ds, a.steps, a.batch_size, False)}, a.repeats)
    for part, index, unit, scale in (("training step", 0, "ms/step", 1e3), ("evaluation", 1, "ms/image", 1e3)):
        values = {name: [r[index] for r in results] for name, results in runs.items()}
        for name, v in values.items():
            print(f"{part:13} {name:13}: {scale * sorted(x[0] for x in v)[len(v) // 2]:8.2f} {unit} (wall, median)")
        print(f"{part} ratio channels_last / NCHW (median of paired runs): "
              f"{ratio(values['channels_last'], values['NCHW'])}")


if __name__ == "__main__":
    main()
