"""Step time of WeakToStrongTrainer (cached weak logits, adapt_conf) vs a plain Trainer with cross-entropy.

Same model (the benchmark's ResNet), same data (the packaged MNIST digits, raw images through the same image
collator), same batch size; the runs alternate and each figure is the median step time over the repeats. Target:
ratio <= 1.05.

    OMP_NUM_THREADS=1 python benchmarks/trainer_overhead.py [--steps 100] [--repeats 5] [--batch_size 64]
"""

from __future__ import annotations

import tempfile

from common import StepTimer, digits, header, ms, processor, ratio, run_args, strong_model, time_w2s, timing_arguments
from common import with_random_weak_logits
from transformers import Trainer, TrainingArguments

from hf_w2s import WeakToStrongCollator


def time_plain(ds, steps, batch_size) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        timer = StepTimer()
        # the model computes cross-entropy itself from `labels`: the plain Trainer path
        args = TrainingArguments(remove_unused_columns=False, **run_args(out, steps, batch_size))
        trainer = Trainer(model=strong_model(), args=args, train_dataset=ds.select_columns(["image", "label"]),
                          data_collator=WeakToStrongCollator(image_processor=processor()), callbacks=[timer])
        trainer.train()
        return timer.median()


def main() -> None:
    a = timing_arguments()
    header("trainer overhead: WeakToStrongTrainer (cached weak logits, adapt_conf) vs plain Trainer (CE)")
    ds = with_random_weak_logits(digits(3000))
    plain, w2s = [], []
    for _ in range(a.repeats):
        plain.append(time_plain(ds, a.steps, a.batch_size))
        w2s.append(time_w2s(ds, a.steps, a.batch_size))
    print(f"plain Trainer + CE         : {ms(plain)}")
    print(f"WeakToStrongTrainer cached : {ms(w2s)}")
    print(f"ratio W2S / plain          : {ratio(w2s, plain)}  (target <= 1.05)")


if __name__ == "__main__":
    main()
