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
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(path: str) -> None:
    import datasets
    from common import PeakRss, processor, weak_model

    from hf_w2s.data.weak_labels import label_dataset

    datasets.disable_progress_bars()
    ds = datasets.load_from_disk(path)
    model, proc = weak_model(), processor()
    with PeakRss() as rss:
        out = label_dataset(ds, model, proc, batch_size=256)
    print(json.dumps({"n": len(out), "before_kb": rss.before, "peak_kb": rss.peak,
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
    from common import header, repeated_digits

    header("peak memory of label_dataset at two sizes")
    datasets.disable_progress_bars()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.sizes:
            repeated_digits(n).save_to_disk(f"{tmp}/ds{n}")
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
