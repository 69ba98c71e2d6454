"""Several ``hf-w2s`` invocations in one fresh interpreter wired to the local Hub: ``hf_w2s.cli.main(argv)`` is what
``python -m hf_w2s.cli`` runs, and each invocation gets its own stdout / stderr files (file descriptors, so
transformers' log handler is captured too). A process's imports of transformers / peft / datasets cost about as much
CPU as a tiny run (~3 s forked by tests/forkserver.py, ~9 s from scratch), so tests that run many commands run them
here, in order, instead of one process each.

    pending = start_sequence(local_hub, tmp_path, {"train": ["train", "--config", ...]}, "mine")
    runs = finish_sequence(pending, tmp_path)          # {"train": Run(returncode, stdout, stderr)}
"""

from __future__ import annotations

import json
from pathlib import Path

SEQUENCE = r"""
import gc, json, os, sys, time
from transformers.utils import logging as hf_logging
from hf_w2s.cli import main

for job in json.loads(open(sys.argv[1]).read()):
    gc.collect(); gc.freeze()  # each Trainer.train() collects garbage: what is alive now need not be walked again
    sys.stdout.flush(); sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(job["stdout"], "w") as out, open(job["stderr"], "w") as err:
        os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
        if job["info"]:
            hf_logging.set_verbosity_info()
        start = time.time()
        try:
            code = main(job["argv"])
        except SystemExit as exit:
            code = exit.code
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os.dup2(saved[0], 1); os.dup2(saved[1], 2)
            os.close(saved[0]); os.close(saved[1])
            hf_logging.set_verbosity_warning()
    emit({"name": job["name"], "returncode": code, "seconds": round(time.time() - start, 1)})
"""


class Run:
    """One CLI invocation of a sequence: its exit code and what it printed."""

    def __init__(self, returncode: int, out: Path):
        read = [out.with_suffix(s) for s in (".out", ".err")]
        self.returncode = returncode
        self.stdout, self.stderr = (p.read_text() if p.exists() else "(never run)" for p in read)


def start_sequence(hub, tmp: Path, jobs: dict, name: str, *, info=(), env=None, timeout=900):
    """Start one interpreter running ``jobs`` (name -> argv) in order; returns the pending run. ``info``: the jobs run
    with transformers' INFO logging; ``env``: the interpreter's environment on top of the Hub's."""
    spec = [{"name": n, "argv": argv, "stdout": str(tmp / f"{n}.out"), "stderr": str(tmp / f"{n}.err"),
             "info": n in info} for n, argv in jobs.items()]
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(spec))
    return hub.spawn_python(SEQUENCE, args=(str(path),), cwd=tmp, env=env, timeout=timeout)


def finish_sequence(pending, tmp: Path) -> dict:
    """Wait for a sequence; ``{name: Run}`` for each job that reported (a job it never reached is absent)."""
    run = pending.wait()
    return {r["name"]: Run(r["returncode"], tmp / r["name"]) for r in run.results}
