"""Step time of WeakToStrongTrainer (cached weak logits, adapt_conf) vs a plain Trainer with cross-entropy.

Same model (the benchmark's ResNet), same data (the packaged MNIST digits, raw images through the same image
collator), same batch size. Each repeat runs both, rotating which goes first; each step time is the median over the
repeats and the ratio is the median of the repeats' paired ratios (a slow drift of the machine cancels). Target:
ratio <= 1.05. Whole training steps vary by several per cent from run to run on a shared machine, so the script also
times the part the trainer changes — the loss and its logged components, plus backward — on one fixed batch,
alternating the two many times (a steadier ratio).

    OMP_NUM_THREADS=1 python benchmarks/trainer_overhead.py [--steps 50] [--repeats 11] [--batch_size 64] \
        [--loss_iterations 200]
"""

from __future__ import annotations

import statistics
import tempfile
import time

from common import (
    StepTimer,
    alternating,
    digits,
    header,
    ms,
    processor,
    quiet,
    ratio,
    run_args,
    strong_model,
    time_w2s,
    timing_arguments,
    with_random_weak_logits,
)
from transformers import Trainer, TrainingArguments

from hf_w2s import WeakToStrongCollator, WeakToStrongConfig, WeakToStrongTrainer


def time_plain(ds, steps, batch_size) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        timer = StepTimer()
        # the model computes cross-entropy itself from `labels`: the plain Trainer path
        args = TrainingArguments(remove_unused_columns=False, **run_args(out, steps, batch_size))
        trainer = Trainer(model=strong_model(), args=args, train_dataset=ds.select_columns(["image", "label"]),
                          data_collator=WeakToStrongCollator(image_processor=processor()), callbacks=[timer])
        quiet(trainer).train()
        return timer.median()


def loss_step_times(batch_size: int, iterations: int = 200) -> tuple[list[float], list[float]]:
    """CPU seconds of forward + loss + backward on one batch: the model's own CE vs WeakToStrongTrainer.compute_loss."""
    ds = with_random_weak_logits(digits(batch_size))
    model = strong_model()
    with tempfile.TemporaryDirectory() as out:
        trainer = WeakToStrongTrainer(model=model, args=WeakToStrongConfig(**run_args(out, 1, batch_size)),
                                      train_dataset=ds, processing_class=processor())
        batch = trainer.data_collator([ds[i] for i in range(batch_size)])
        model.train()
        plain, w2s = [], []
        for i in range(iterations):
            for times, fn in ((plain, lambda: model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss),
                              (w2s, lambda: trainer.compute_loss(model, batch))):
                t = time.process_time()
                fn().backward()
                times.append(time.process_time() - t)
                model.zero_grad(set_to_none=True)
    skip = min(10, iterations // 2)  # warm-up
    return plain[skip:], w2s[skip:]


def main() -> None:
    a = timing_arguments(loss_iterations=200)
    header("trainer overhead: WeakToStrongTrainer (cached weak logits, adapt_conf) vs plain Trainer (CE)")
    ds = with_random_weak_logits(digits(3000))
    times = alternating({"plain": lambda: time_plain(ds, a.steps, a.batch_size),
                         "w2s": lambda: time_w2s(ds, a.steps, a.batch_size)}, a.repeats)
    plain, w2s = times["plain"], times["w2s"]
    print(f"plain Trainer + CE         : {ms(plain)}")
    print(f"WeakToStrongTrainer cached : {ms(w2s)}")
    print(f"ratio W2S / plain          : {ratio(w2s, plain)}  (median of {a.repeats} paired runs; target <= 1.05)")
    plain_loss, w2s_loss = loss_step_times(a.batch_size, a.loss_iterations)
    p_med, w_med = statistics.median(plain_loss), statistics.median(w2s_loss)
    print(f"forward+loss+backward, one batch, {len(plain_loss)} alternating iterations (CPU time):")
    print(f"  model's own CE           : {1000 * p_med:7.2f} ms")
    print(f"  WeakToStrongTrainer loss : {1000 * w_med:7.2f} ms (adapt_conf + logged components)")
    print(f"  ratio                    : {w_med / p_med:.3f}")


if __name__ == "__main__":
    main()
