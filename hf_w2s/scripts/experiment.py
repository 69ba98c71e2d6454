"""``hf-w2s experiment --config FILE.yaml``: weak supervisors × losses × seeds, their results as JSON lines, the
saved student and the report.

The options are the one schema's (:mod:`hf_w2s.scripts.config`): every key of the file is an option, flags override
it (``--seeds 0 1 --learning_rate 1e-3``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

PROG = "hf-w2s experiment"


@dataclass
class ExperimentScriptArguments:
    """What to do with the experiment"""

    _argument_group_name = "what to do"

    report_only: bool = field(default=False, metadata={"help": "Only rebuild the report from results.jsonl."})
    dry_run: bool = field(default=False, metadata={"help": "Check the config and list the runs; train nothing."})
    verbose: bool = field(default=False, metadata={"help": "Show the libraries' progress bars, logs and warnings."})


def describe_plan(exp) -> list[str]:
    """The runs a config plans, one line per row (``--dry_run``)."""
    c = exp.config
    lines = [f"{len(c.weak_supervisors)} weak supervisor(s), {len(c.losses)} loss(es) x {len(c.seeds)} seed(s)"
             f" + {len(c.seeds) if c.ceiling else 0} ceiling run(s): {len(exp.planned_keys())} results in "
             f"{exp.out}"]
    for spec in c.losses:
        chosen = exp.candidates(spec)
        among = f", chosen on validation among {[x['label'] for x in chosen]}" if len(chosen) > 1 else ""
        lines.append(f"  {spec.label}: {spec.name} {spec.knobs}{among}")
    return lines


def run(argv: list[str], prog: str, script_args, one_run: bool = False):
    """The shared body of ``hf-w2s train`` and ``experiment``: read the options, build the experiment (every check),
    then dry-run, report or run it."""
    import shlex

    from ..console import quiet_libraries
    from ..experiment.runner import Experiment
    from ..security import redact
    from .config import load_config

    cfg = load_config(argv=argv, script_args=script_args, prog=prog)
    if not cfg.script.verbose:
        quiet_libraries()
    exp = Experiment(cfg.experiment, cfg.data, cfg.model, cfg.training, verbose=cfg.script.verbose, given=cfg.given,
                     command=redact(f"{prog} {shlex.join(argv)}"), log=lambda message: print(message, flush=True))
    if one_run and exp.config.student_rows * len(exp.config.seeds) != 1:
        raise ValueError(f"{prog} trains one student: one weak supervisor, one loss and one seed (this config has "
                         f"{len(exp.config.weak_supervisors)} supervisor(s) x {len(exp.config.losses)} loss(es) x "
                         f"{len(exp.config.seeds)} seed(s)); run it with hf-w2s experiment.")
    if cfg.script.dry_run:
        print("\n".join(describe_plan(exp)))
        return exp, None
    if not getattr(cfg.script, "report_only", False):
        exp.run()
    return exp, exp.report()


def main(argv: list[str] | None = None) -> int:
    from ..distributed import process_state

    argv = list(sys.argv[1:] if argv is None else argv)
    exp, report = run(argv, PROG, ExperimentScriptArguments)
    if report is not None and process_state().is_main_process:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
