"""Peak memory of labelling with hf_w2s.label_dataset at two dataset sizes: labels go to Arrow, memory stays flat.

Each size runs in a fresh subprocess that loads an on-disk dataset (memory-mapped), labels it, and reports its resident
set size before labelling and its peak while labelling (sampled every 5 ms); the dataset is the packaged digits
repeated to N rows. Linux only (/proc).

    OMP_NUM_THREADS=1 python benchmarks/label_memory.py [--sizes 5000 50000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def current_rss_kb() -> int:
    """Resident set size now (Linux /proc), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(path: str) -> None:
    import threading

    import datasets
    from common import processor, weak_model

    from hf_w2s.data.weak_labels import label_dataset

    datasets.disable_progress_bars()
    ds = datasets.load_from_disk(path)
    model, proc = weak_model(), processor()
    before = current_rss_kb()
    peak, done = [before], threading.Event()

    def sample():  # the peak RSS while labelling (ru_maxrss would also count the imports' peak)
        while not done.is_set():
            peak[0] = max(peak[0], current_rss_kb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out = label_dataset(ds, model, proc, batch_size=256)
    done.set()
    sampler.join()
    print(json.dumps({"n": len(out), "before_kb": before, "peak_kb": peak[0],
                      "process_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "cache_mb": sum(Path(f["filename"]).stat().st_size for f in out.cache_files) / 2**20}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs=2, default=[5000, 50000])
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child)
        return
    import datasets
    from common import digits, header

    header("peak memory of label_dataset at two sizes")
    datasets.disable_progress_bars()
    base = digits()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.sizes:
            reps = -(-n // len(base))
            ds = datasets.concatenate_datasets([base] * reps).select(range(n))
            ds.save_to_disk(f"{tmp}/ds{n}")
            res = subprocess.run([sys.executable, __file__, "--child", f"{tmp}/ds{n}"], capture_output=True,
                                 text=True, check=True, cwd=HERE)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    for r in rows:
        print(f"N = {r['n']:>7}: RSS before labelling {r['before_kb'] / 1024:6.1f} MiB, peak while labelling "
              f"{r['peak_kb'] / 1024:6.1f} MiB (+{(r['peak_kb'] - r['before_kb']) / 1024:.1f} MiB); labels written "
              f"to Arrow: {r['cache_mb']:.1f} MiB")
    small, large = rows
    grow_small, grow_large = (r["peak_kb"] - r["before_kb"] for r in rows)
    print(f"peak RSS ratio N={large['n']} / N={small['n']}: {large['peak_kb'] / small['peak_kb']:.3f} for "
          f"{large['n'] / small['n']:.0f}x the rows (flat = close to 1); growth while labelling "
          f"{grow_small / 1024:.1f} MiB vs {grow_large / 1024:.1f} MiB")

if __name__ == "__main__":
    main()
