"""Peak memory of labelling with hf_w2s.label_dataset at two dataset sizes: labels go to Arrow, memory stays flat.

Each size runs in a fresh subprocess that loads an on-disk dataset (memory-mapped), labels it, and reports its peak
resident set size (ru_maxrss); the dataset is the packaged digits repeated to N rows.

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
    from common import processor, weak_model

    from hf_w2s.weak_labels import label_dataset

    datasets.disable_progress_bars()
    ds = datasets.load_from_disk(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = label_dataset(ds, weak_model(), processor(), batch_size=256)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"n": len(out), "rss_before_kb": before, "peak_kb": peak,
                      "cache_mb": sum(f["filename"] and Path(f["filename"]).stat().st_size
                                      for f in out.cache_files) / 2**20}))


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
        print(f"N = {r['n']:>7}: peak RSS {r['peak_kb'] / 1024:7.1f} MiB (after loading, before labelling "
              f"{r['rss_before_kb'] / 1024:.1f} MiB); labels written to Arrow: {r['cache_mb']:.1f} MiB")
    small, large = rows
    print(f"peak RSS ratio N={large['n']} / N={small['n']}: {large['peak_kb'] / small['peak_kb']:.3f} for "
          f"{large['n'] / small['n']:.0f}x the rows (flat = close to 1)")


if __name__ == "__main__":
    main()
