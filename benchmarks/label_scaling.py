"""Labelling across processes: images/s of hf_w2s.label_dataset with 1 vs 2 processes, and peak RSS per process at
N and 10×N rows.

The packaged digits repeated to N rows are saved with save_to_disk and memory-mapped back by every process; the weak
model is the benchmarks' ResNet. Each (processes, rows) case is one `torchrun --standalone --nproc_per_node P` launch
of this file: every process loads the dataset and the model, waits at a barrier, then label_dataset splits the rows
over the processes and all-gathers the new columns (every process ends with the whole result). Throughput = rows /
the slowest process's wall time from the barrier to the gathered result; the ratio is also given by the busiest
process's CPU time (steadier on a shared machine: it leaves out waiting for a core). Each process samples its resident
set size every 5 ms while labelling (Linux /proc). One thread per process (OMP_NUM_THREADS=1): 2 processes use 2 cores.

    OMP_NUM_THREADS=1 python benchmarks/label_scaling.py [--n 5000] [--batch_size 256] [--processes 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(path: str, out: str, batch_size: int) -> None:
    """One process of a torchrun launch: label the dataset at ``path``, write this process's figures to ``out``."""
    import datasets
    import torch
    from common import PeakRss, processor, strong_model

    from hf_w2s.data.weak_labels import label_dataset
    from hf_w2s.distributed import process_state

    torch.set_num_threads(1)
    datasets.disable_caching()  # every launch really labels
    datasets.disable_progress_bars()
    state = process_state()
    ds = datasets.load_from_disk(path)
    model, proc = strong_model(), processor()
    state.wait_for_everyone()
    with PeakRss() as rss:
        start = time.perf_counter(), time.process_time()
        labelled = label_dataset(ds, model, proc, batch_size=batch_size)
        wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    figures = {"rank": state.process_index, "processes": state.num_processes, "rows": len(labelled),
               "wall_s": wall, "cpu_s": cpu, "before_kb": rss.before, "peak_kb": rss.peak}
    with open(os.path.join(out, f"rank{state.process_index}.json"), "w") as f:
        json.dump(figures, f)


def launch(processes: int, path: str, batch_size: int) -> list[dict]:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as out:
        cmd = [torchrun, "--standalone", "--nproc_per_node", str(processes), __file__, "--child", path,
               "--out", out, "--batch_size", str(batch_size)]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"torchrun failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
        return [json.loads((Path(out) / f"rank{i}.json").read_text()) for i in range(processes)]


def report(runs: dict, sizes: list[int], processes: list[int]) -> None:
    rate, cpu_rate = {}, {}
    for (procs, n), ranks in runs.items():
        assert all(r["rows"] == n for r in ranks), "a process did not get the whole labelled dataset"
        wall, cpu = max(r["wall_s"] for r in ranks), max(r["cpu_s"] for r in ranks)
        rate[procs, n], cpu_rate[procs, n] = n / wall, n / cpu
        rss = ", ".join(f"rank {r['rank']}: {r['before_kb'] / 1024:.0f} -> {r['peak_kb'] / 1024:.0f} MiB"
                        for r in sorted(ranks, key=lambda r: r["rank"]))
        print(f"{procs} process(es), N = {n:>7}: {rate[procs, n]:8.0f} images/s ({wall:6.2f} s wall; the busiest "
              f"process {cpu:6.2f} CPU s); RSS before -> peak while labelling: {rss}")
    one, two = processes
    for n in sizes:
        print(f"throughput ratio {two} / {one} processes at N = {n}: wall {rate[two, n] / rate[one, n]:.3f}, "
              f"by the busiest process's CPU time {cpu_rate[two, n] / cpu_rate[one, n]:.3f}")
    for procs in processes:
        small = max(r["peak_kb"] for r in runs[procs, sizes[0]])
        large = max(r["peak_kb"] for r in runs[procs, sizes[1]])
        print(f"peak RSS ratio per process, N = {sizes[1]} / N = {sizes[0]}, {procs} process(es): "
              f"{large / small:.3f} (flat = close to 1)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=5000, help="N: the smaller dataset; the larger one has 10×N rows")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--processes", type=int, nargs=2, default=[1, 2])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.out, a.batch_size)
        return
    import datasets
    from common import header, repeated_digits

    header("label_dataset across processes: throughput and peak RSS per process (one thread per process)")
    print(f"{os.cpu_count()} CPUs")
    datasets.disable_progress_bars()
    sizes = [a.n, 10 * a.n]
    runs: dict[tuple[int, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            repeated_digits(n).save_to_disk(f"{tmp}/ds{n}")
        for n in sizes:
            for procs in a.processes:
                runs[procs, n] = launch(procs, f"{tmp}/ds{n}", a.batch_size)
    report(runs, sizes, a.processes)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
