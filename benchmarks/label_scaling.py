"""Labelling at ImageNet's width across processes: peak memory per process at N and 10×N rows, images/s with 1 and 2
processes, and bytes on disk per row of each weak-logits storage form.

scikit-learn's 8×8 digits repeated to N rows (labels dropped; as the issue measured it) are saved with save_to_disk and
memory-mapped back by every process; the weak model is a small ResNet with C = 1,000 classes (ImageNet's width). Each
(processes, rows) case is one `torchrun --standalone --nproc_per_node P` launch of this file: every process loads the
dataset and the model, waits at a barrier, then label_dataset splits the rows over the processes; each process writes
its part to an Arrow file and opens every part (memory-mapped) once all are written. Throughput = rows / the slowest
process's wall time from the barrier to the result; the ratio is also given by the busiest process's CPU time
(steadier on a shared machine: it leaves out waiting for a core). Each process samples its memory every 5 ms while
labelling (Linux /proc: VmRSS, the resident set), and when labelling returns, the two parts of that resident set:
RssAnon (the process's own memory) and RssFile (pages of memory-mapped files it touched: the images, and the headers of
the Arrow files it opened, which the kernel can drop at any time). One thread per process (OMP_NUM_THREADS=1): 2
processes use 2 cores. Then, in this process, --storage_rows rows are labelled once per storage form and the bytes per
row of the three new columns are measured: in their Arrow cache file, and as Parquet (how they are pushed).

    OMP_NUM_THREADS=1 python benchmarks/label_scaling.py [--n 20000] [--classes 1000] [--batch_size 256]
        [--processes 1 2] [--storage_rows 5000] [--top_k 10] [--repeats 1]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIELDS = ("RssAnon", "RssFile")


def memory_kb() -> dict[str, int]:
    """RssAnon and RssFile of this process now, in KiB (Linux /proc): the two parts of its resident set."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name = line.split(":", 1)[0]
            if name in FIELDS:
                out[name] = int(line.split()[1])
    return out


def class_names(classes: int) -> list[str]:
    return [f"class_{i}" for i in range(classes)]


def wide_weak_model(classes: int):
    """The benchmarks' small ResNet with a ``classes``-way head."""
    from hf_w2s.modeling import build_model

    return build_model("resnet", class_names(classes), width=16, depth=2, seed=0)


def repeated_small_digits(n: int):
    """scikit-learn's 1,797 8×8 digits repeated to ``n`` rows, without their labels."""
    import datasets

    from hf_w2s.data.packaged import load_sklearn_digits

    base = load_sklearn_digits().remove_columns("label")
    return datasets.concatenate_datasets([base] * -(-n // len(base))).select(range(n)).flatten_indices()


def processor():
    from hf_w2s.modeling import tiny_image_processor

    return tiny_image_processor(8)


def child(path: str, out: str, batch_size: int, classes: int) -> None:
    """One process of a torchrun launch: label the dataset at ``path``, write this process's figures to ``out``."""
    import datasets
    import torch
    from common import PeakRss  # also puts this checkout first on sys.path

    from hf_w2s.data.weak_labels import label_dataset
    from hf_w2s.distributed import process_state

    torch.set_num_threads(1)
    datasets.disable_caching()  # every launch really labels
    datasets.disable_progress_bars()
    state = process_state()
    ds = datasets.load_from_disk(path)
    model, proc = wide_weak_model(classes), processor()
    state.wait_for_everyone()
    with PeakRss() as rss:
        start = time.perf_counter(), time.process_time()
        labelled = label_dataset(ds, model, proc, batch_size=batch_size)
        wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    figures = {"rank": state.process_index, "processes": state.num_processes, "rows": len(labelled),
               "wall_s": wall, "cpu_s": cpu, "before_kb": rss.before, "peak_kb": rss.peak, "end_kb": memory_kb()}
    with open(os.path.join(out, f"rank{state.process_index}.json"), "w") as f:
        json.dump(figures, f)


def launch(processes: int, path: str, batch_size: int, classes: int, cache: str) -> list[dict]:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": cache}
    with tempfile.TemporaryDirectory() as out:
        cmd = [torchrun, "--standalone", "--nproc_per_node", str(processes), __file__, "--child", path,
               "--out", out, "--batch_size", str(batch_size), "--classes", str(classes)]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"torchrun failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
        return [json.loads((Path(out) / f"rank{i}.json").read_text()) for i in range(processes)]


def storage_bytes(path: str, rows: int, classes: int, batch_size: int, top_k: int) -> dict[str, tuple[float, float]]:
    """Bytes per row of the three new columns, ``(Arrow cache file, Parquet)``, for each storage form."""
    import datasets

    from hf_w2s.data.parquet_shards import write_parquet
    from hf_w2s.data.weak_labels import label_dataset

    ds = datasets.load_from_disk(path).select(range(rows)).flatten_indices()
    model, proc = wide_weak_model(classes), processor()
    out = {}
    for form in ("float32", "float16", "topk"):
        labelled = label_dataset(ds, model, proc, batch_size=batch_size, logits_storage=form, top_k=top_k)
        arrow = {f["filename"] for f in labelled.cache_files if "weak-labels" in f["filename"]}
        with tempfile.TemporaryDirectory() as tmp:
            columns = labelled.select_columns(["weak_logits", "weak_label", "weak_confidence"])
            parquet = write_parquet(columns, Path(tmp) / "labels.parquet")
        out[form] = (sum(os.path.getsize(f) for f in arrow) / rows, parquet / rows)
    return out


def rates(ranks: list[dict]) -> tuple[float, float]:
    """Images/s of one launch: rows / the slowest process's wall time, and / the busiest process's CPU time."""
    assert all(r["rows"] == ranks[0]["rows"] for r in ranks), "a process did not get the whole labelled dataset"
    n = ranks[0]["rows"]
    return n / max(r["wall_s"] for r in ranks), n / max(r["cpu_s"] for r in ranks)


def report(runs: dict, sizes: list[int], processes: list[int]) -> None:
    """``runs[procs, n]``: the launches (one list of per-process figures each), paired by repeat."""
    for (procs, n), launches in runs.items():
        for i, ranks in enumerate(launches):
            wall, cpu = rates(ranks)
            mem = "; ".join(f"rank {r['rank']}: {r['before_kb'] / 1024:.0f} -> {r['peak_kb'] / 1024:.0f} MiB "
                            f"(at the end: RssAnon {r['end_kb']['RssAnon'] / 1024:.0f}, "
                            f"RssFile {r['end_kb']['RssFile'] / 1024:.0f})"
                            for r in sorted(ranks, key=lambda r: r["rank"]))
            print(f"{procs} process(es), N = {n:>7}, repeat {i}: {wall:8.0f} images/s wall, {cpu:8.0f} by CPU time; "
                  f"RSS before -> peak while labelling: {mem}")
    one, two = processes
    for n in sizes:
        pairs = [(rates(b), rates(a)) for a, b in zip(runs[one, n], runs[two, n])]
        wall = statistics.median(b[0] / a[0] for b, a in pairs)
        cpu = statistics.median(b[1] / a[1] for b, a in pairs)
        print(f"throughput ratio {two} / {one} processes at N = {n} (median of {len(pairs)} paired launches): "
              f"wall {wall:.3f}, by the busiest process's CPU time {cpu:.3f}")
    for procs in processes:
        small, large = ([r for ranks in runs[procs, n] for r in ranks] for n in sizes)
        peak = max(r["peak_kb"] for r in large) / max(r["peak_kb"] for r in small)
        print(f"peak RSS ratio per process, N = {sizes[1]} / N = {sizes[0]}, {procs} process(es): {peak:.3f} "
              f"({max(r['peak_kb'] for r in small) / 1024:.0f} -> {max(r['peak_kb'] for r in large) / 1024:.0f} MiB; "
              "flat = close to 1)")
        for field in FIELDS:
            a, b = (max(r["end_kb"][field] for r in rs) / 1024 for rs in (small, large))
            print(f"  {field} per process at the end, N = {sizes[0]} -> {sizes[1]}: {a:.0f} -> {b:.0f} MiB")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20_000, help="N: the smaller dataset; the larger one has 10×N rows")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--processes", type=int, nargs=2, default=[1, 2])
    p.add_argument("--storage_rows", type=int, default=5000)
    p.add_argument("--top_k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1, help="launches of each case, alternating 1 and 2 processes")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.out, a.batch_size, a.classes)
        return
    import datasets
    from common import alternating, header

    header(f"label_dataset at {a.classes} classes across processes: peak memory per process, throughput, bytes per row "
           "(one thread per process)")
    print(f"{os.cpu_count()} CPUs")
    datasets.disable_progress_bars()
    sizes = [a.n, 10 * a.n]
    runs: dict[tuple[int, int], list[list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            repeated_small_digits(n).save_to_disk(f"{tmp}/ds{n}")
        for n in sizes:  # the two process counts alternate, so that a drift of the machine's speed pairs out
            launches = alternating({procs: functools.partial(launch, procs, f"{tmp}/ds{n}", a.batch_size, a.classes,
                                                             f"{tmp}/cache") for procs in a.processes}, a.repeats)
            runs.update({(procs, n): launches[procs] for procs in a.processes})
        report(runs, sizes, a.processes)
        datasets.config.HF_DATASETS_CACHE = f"{tmp}/cache"
        forms = storage_bytes(f"{tmp}/ds{sizes[0]}", min(a.storage_rows, sizes[0]), a.classes, a.batch_size, a.top_k)
    for form, (arrow, parquet) in forms.items():
        name = f"top-{a.top_k}" if form == "topk" else form
        print(f"bytes per row of the label columns, {name:>7}: {arrow:8.1f} in Arrow, {parquet:8.1f} in Parquet; "
              f"ratio to float32 {arrow / forms['float32'][0]:.4f} (Arrow), {parquet / forms['float32'][1]:.4f} "
              "(Parquet)")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
