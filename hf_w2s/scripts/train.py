"""``hf-w2s train`` (and ``recipes/train_student.py``): train a weak-to-strong student from a recipe.

    hf-w2s train --config recipes/configs/NAME.yaml [--any_option value ...]

Every key of the YAML file is an option; flags on the command line override it. The run itself is
:class:`hf_w2s.recipe.StudentRecipe`: weak supervisor → supervision → student → evaluation → card → push.
"""

from __future__ import annotations

import json
import shlex
import sys

PROG = "hf-w2s train"


def make_parser():
    from ..recipe.config import RecipeArguments
    from ..trainer.config import WeakToStrongConfig
    from .parser import W2SParser

    return W2SParser((RecipeArguments, WeakToStrongConfig), prog=PROG,
                     description="Train a weak-to-strong student from a recipe: --config FILE.yaml (any option "
                                 "below), flags override it.")


def parse_args(argv: list[str]):
    """``(RecipeArguments, WeakToStrongConfig)`` from ``argv``, checked together before anything is loaded."""
    script_args, training_args = make_parser().parse(argv)
    script_args.validate(training_args)
    return script_args, training_args


def main(argv: list[str] | None = None) -> int:
    from ..recipe.runner import run_recipe
    from ..security import redact

    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args = parse_args(argv)
    results = run_recipe(script_args, training_args, command=redact(f"{PROG} {shlex.join(argv)}"))
    summary = {k: results.get(k) for k in ("accuracy", "weak_accuracy", "ceiling_accuracy", "pgr", "repo_id")}
    print(json.dumps({k: v for k, v in summary.items() if v is not None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
