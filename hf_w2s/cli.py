"""``hf-w2s``: the command line. Each subcommand lives in its own module exposing ``main(argv)``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "demo": ("hf_w2s.demo", "run the embedded offline demo (weak supervisor -> weak labels -> students -> table)"),
    "label": ("hf_w2s.label_cli", "label an image dataset with a weak model; cache it; optionally push it"),
    "train": ("hf_w2s.train_cli", "train a student from a recipe (YAML config + command-line overrides)"),
    "experiment": ("hf_w2s.experiment", "run a weak-to-strong sweep from a config and write the report"),
}


def _usage() -> str:
    lines = ["usage: hf-w2s <command> [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'hf-w2s <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hf-w2s: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        print(f"hf-w2s: command {name!r} is not available in this version", file=sys.stderr)
        return 2
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
