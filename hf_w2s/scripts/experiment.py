"""``hf-w2s experiment --config FILE.yaml``: a weak-to-strong sweep, its results as JSON lines, and the report.

Any key of the config can be overridden on the command line: ``--key value`` (a YAML value), ``--section.key value``
for nested mappings (e.g. ``--training.learning_rate 1e-3``).
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
    dry_run: bool = field(default=False, metadata={"help": "Validate the config and list the runs."})
    verbose: bool = field(default=False, metadata={"help": "Show the libraries' progress bars, logs and warnings."})


def main(argv: list[str] | None = None) -> int:
    from ..experiment.config import config_help, load_experiment_config
    from ..experiment.runner import Experiment
    from .parser import W2SParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = W2SParser(ExperimentScriptArguments, prog=PROG, description="Run a weak-to-strong sweep (weak "
                       "supervisors x losses x seeds) from a YAML config and write the report (table + plots).\n\n"
                       "Override any config key with --key value or --section.key value (keys below).",
                       config_help="the experiment's YAML config (its keys are listed below)", epilog=config_help())
    if any(a in ("-h", "--help") for a in argv):
        parser.print_help()
        return 0
    config_path, rest = _config_path(argv)
    script_args, overrides = parser.parse(rest, remaining=True)
    if not script_args.verbose:
        from ..console import quiet_libraries

        quiet_libraries()
    config = load_experiment_config(config_path, overrides)
    experiment = Experiment(config)
    if script_args.dry_run:
        c = config
        print(f"{len(c.weak_supervisors)} weak supervisor(s), {len(c.losses)} loss(es) x {len(c.seeds)} seed(s)"
              f" + {len(c.seeds) if c.ceiling else 0} ceiling run(s): "
              f"{len(experiment.planned_keys())} results in {c.output_dir}")
        for spec in c.losses:
            chosen = experiment.candidates(spec)
            among = f", chosen on validation among {[x['label'] for x in chosen]}" if len(chosen) > 1 else ""
            print(f"  {spec.label}: {spec.name} {spec.knobs}{among}")
        return 0
    if not script_args.report_only:
        experiment.run()
    print(experiment.report())
    return 0


def _config_path(argv: list[str]) -> tuple[str | None, list[str]]:
    """``--config FILE`` is the experiment's YAML config (not options of this parser): taken out of ``argv``."""
    rest, path, i = [], None, 0
    while i < len(argv):
        if argv[i] == "--config" and i + 1 < len(argv):
            path, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith("--config="):
            path = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    return path, rest


if __name__ == "__main__":
    sys.exit(main())
