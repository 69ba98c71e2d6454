"""``hf-w2s train`` (and ``recipes/train_student.py``): one weak-to-strong student — a one-row, one-seed
experiment of the one schema, saved in ``output_dir/student`` with its model card and pushed with ``push_to_hub``.

    hf-w2s train --config recipes/configs/NAME.yaml [--any_option value ...]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

PROG = "hf-w2s train"


@dataclass
class TrainScriptArguments:
    """What to do"""

    _argument_group_name = "what to do"

    dry_run: bool = field(default=False, metadata={"help": "Check the config and list the runs; train nothing."})
    verbose: bool = field(default=False, metadata={"help": "Show the libraries' progress bars, logs and warnings."})


def main(argv: list[str] | None = None) -> int:
    from ..distributed import process_state
    from .experiment import run

    argv = list(sys.argv[1:] if argv is None else argv)
    exp, report = run(argv, PROG, TrainScriptArguments, one_run=True)
    if report is None or not process_state().is_main_process:  # a dry run; or another process of a launch
        return 0
    summary = json.loads((exp.out / "student" / "w2s_results.json").read_text())
    keys = ("accuracy", "weak_accuracy", "ceiling_accuracy", "pgr", "agreement", "repo_id")
    print(json.dumps({"student": str(exp.out / "student"), **{k: summary[k] for k in keys
                                                              if summary.get(k) is not None}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
