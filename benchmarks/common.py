"""Shared set-up of the speed benchmarks: the packaged digits, the benchmark's models, step timing."""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# run from a clone without installing; HF_W2S_SRC points at another checkout to compare versions
sys.path.insert(0, os.environ.get("HF_W2S_SRC", str(Path(__file__).resolve().parent.parent)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from hf_w2s.data.packaged import DIGIT_NAMES, load_mnist_digits  # noqa: E402
from hf_w2s.modeling import build_model, tiny_image_processor  # noqa: E402


def digits(n: int | None = None):
    ds = load_mnist_digits()
    return ds if n is None else ds.select(range(n))


def repeated_digits(n: int):
    """The packaged digits repeated to ``n`` rows (the labelling benchmarks' larger datasets)."""
    import datasets

    base = digits()
    return datasets.concatenate_datasets([base] * -(-n // len(base))).select(range(n))


def current_rss_kb() -> int:
    """Resident set size now (Linux /proc), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakRss:
    """Resident set size before a ``with`` block (``before``) and its peak during it (``peak``), in KiB, sampled
    every 5 ms by a thread (``ru_maxrss`` would also count the imports' peak). Linux only (/proc)."""

    def __enter__(self):
        self.before = self.peak = current_rss_kb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.is_set():
            self.peak = max(self.peak, current_rss_kb())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_kb())


def strong_model(seed: int = 0):
    return build_model("resnet", DIGIT_NAMES, width=16, depth=2, seed=seed)


def weak_model(seed: int = 0):
    return build_model("linear", DIGIT_NAMES, width=16, seed=seed)


def processor():
    return tiny_image_processor(28)  # 3 channels, as the experiment harness and saved students use


def with_random_weak_logits(ds, seed: int = 0):
    """The timing does not depend on the values: give every example fixed random weak logits."""
    from datasets import List, Value

    logits = np.random.default_rng(seed).normal(size=(len(ds), 10)).astype(np.float32)
    return ds.add_column("weak_logits", logits.tolist(), feature=List(Value("float32"), length=10))


class StepTimer(TrainerCallback):
    """Time between consecutive optimizer steps (data loading + forward + backward + step + logging), both wall-clock
    and this process's CPU time; on a shared machine the CPU time is the steadier of the two (single-threaded runs)."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._last = None

    def on_step_end(self, args, state, control, **kwargs):
        now = (time.perf_counter(), time.process_time())
        if self._last is not None:
            self.wall.append(now[0] - self._last[0])
            self.cpu.append(now[1] - self._last[1])
        self._last = now

    def median(self, skip: int = 5) -> tuple[float, float]:
        """Median (wall, CPU) seconds per step, the first ``skip`` steps left out (warm-up)."""
        return statistics.median(self.wall[skip:]), statistics.median(self.cpu[skip:])


def run_args(out: str, steps: int, batch_size: int) -> dict:
    """TrainingArguments shared by every timed run: fixed steps, no saving, no evaluation, no reporting; memory pinned
    only where there is an accelerator (as WeakToStrongConfig sets it: the plain Trainer's runs alike)."""
    return dict(output_dir=out, max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=1e-3,
                logging_steps=10, save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
                dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available())


def time_w2s(ds, steps: int, batch_size: int, weak=None, loss: str = "adapt_conf") -> tuple[float, float]:
    """Median (wall, CPU) step time of WeakToStrongTrainer on ``ds``: cached ``weak_logits``, or online ``weak``."""
    import tempfile

    from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer

    with tempfile.TemporaryDirectory() as out:
        timer = StepTimer()
        trainer = WeakToStrongTrainer(
            model=strong_model(), args=WeakToStrongConfig(w2s_loss=loss, **run_args(out, steps, batch_size)),
            train_dataset=ds, weak_model=weak, processing_class=processor(), callbacks=[timer])
        quiet(trainer).train()
        return timer.median()


def quiet(trainer):
    """Drop the callback that prints every log dict to stdout (disable_tqdm=True installs it): the logs are still
    computed, as in any run, but the benchmark's output stays its figures."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def timing_arguments(steps: int = 50, repeats: int = 11, batch_size: int = 64, **extra: int):
    """Parse --steps, --repeats, --batch_size and one ``--NAME`` integer option per ``extra`` default."""
    import argparse

    p = argparse.ArgumentParser()
    for name, default in dict(steps=steps, repeats=repeats, batch_size=batch_size, **extra).items():
        p.add_argument(f"--{name}", type=int, default=default)
    return p.parse_args()


def ms(values: list[tuple[float, float]]) -> str:
    """Median wall and CPU milliseconds per step over the repeats, and every repeat's wall figure."""
    wall, cpu = median_pair(values)
    return (f"wall {1000 * wall:7.1f} ms/step, CPU {1000 * cpu:7.1f} ms/step  "
            f"(wall per repeat: {[round(1000 * w, 1) for w, _ in values]})")


def median_pair(values: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in values), statistics.median(c for _, c in values)


def ratio(values: list[tuple[float, float]], reference: list[tuple[float, float]]) -> str:
    """Median over the repeats of the *paired* ratio ``values[i] / reference[i]``: the two runs of a repeat are
    adjacent in time, so a drift of the machine's speed (tens of per cent over minutes on this shared host)
    cancels out, where a ratio of the two overall medians would keep it."""
    w = statistics.median(v[0] / r[0] for v, r in zip(values, reference))
    c = statistics.median(v[1] / r[1] for v, r in zip(values, reference))
    return f"wall {w:.3f}, CPU {c:.3f}"


def alternating(runs: dict, repeats: int) -> dict[str, list]:
    """Call each of ``runs`` (name -> zero-argument callable) once per repeat, rotating which goes first, and
    collect their results by name (index i = repeat i, for :func:`ratio`)."""
    names, out = list(runs), {name: [] for name in runs}
    for i in range(repeats):
        for name in names[i % len(names):] + names[: i % len(names)]:
            out[name].append(runs[name]())
    return out


def header(title: str) -> None:
    print(f"# {title}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
          f"{os.getloadavg()[0]:.1f} (timings are noisy when the machine is shared)")
