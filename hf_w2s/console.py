"""What the ``hf-w2s`` commands print: their own lines, and library noise only with ``--verbose``.

:func:`quiet_libraries` turns off transformers', datasets' and huggingface_hub's progress bars and their info /
warning logs, and shows each of hf_w2s's own notices once (the same notice comes from every run of a sweep). Python
warnings that libraries raise on every run are silenced only where hf_w2s cannot avoid them by setting the right
argument (torch's ``pin_memory`` warning is avoided: ``WeakToStrongConfig`` turns ``dataloader_pin_memory`` off
where there is no accelerator). :func:`restored_output` puts all of it back when a command returns, so a command run
in a Python process (``hf_w2s.cli.main``, as the tests run it) leaves that process's logging as it found it.
"""

from __future__ import annotations

import contextlib
import logging
import sys

__all__ = ["quiet_libraries", "restored_output"]


class _OnceFilter(logging.Filter):
    """Lets each distinct message through once."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def quiet_libraries(stream=None) -> None:
    """Library progress bars and logs off; hf_w2s's warnings shown once each as ``notice: ...`` on ``stream``
    (default: standard output)."""
    import datasets
    import huggingface_hub.utils
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    huggingface_hub.utils.disable_progress_bars()
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("notice: %(message)s"))
    handler.addFilter(_OnceFilter())
    package = logging.getLogger("hf_w2s")
    package.handlers[:] = [handler]
    package.setLevel(logging.WARNING)
    package.propagate = False


def _library_state() -> list[tuple]:
    """``(restore, value)`` of each setting :func:`quiet_libraries` changes, for the libraries imported so far (one
    imported later is put back to its defaults)."""
    package = logging.getLogger("hf_w2s")
    state = [(_restore_package, (list(package.handlers), package.level, package.propagate))]
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        state.append((_restore_transformers, (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())))
    if "datasets" in sys.modules:
        import datasets

        state.append((_restore_datasets, (datasets.logging.get_verbosity(), datasets.is_progress_bar_enabled())))
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.utils

        state.append((_restore_hub, huggingface_hub.utils.are_progress_bars_disabled()))
    return state


def _restore_package(value) -> None:
    package = logging.getLogger("hf_w2s")
    package.handlers[:], package.level, package.propagate = value


def _restore_transformers(value) -> None:
    from transformers.utils import logging as hf_logging

    verbosity, bars = value if value is not None else (logging.WARNING, True)
    hf_logging.set_verbosity(verbosity)
    (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()


def _restore_datasets(value) -> None:
    import datasets

    verbosity, bars = value if value is not None else (logging.WARNING, True)
    datasets.logging.set_verbosity(verbosity)
    (datasets.enable_progress_bars if bars else datasets.disable_progress_bars)()


def _restore_hub(disabled) -> None:
    import huggingface_hub.utils

    (huggingface_hub.utils.disable_progress_bars if disabled else huggingface_hub.utils.enable_progress_bars)()


@contextlib.contextmanager
def restored_output():
    """Run a block (a command) and put back what :func:`quiet_libraries` may have changed in it: hf_w2s's logger,
    the libraries' verbosity and progress bars (a library first imported in the block: its defaults)."""
    before = _library_state()
    try:
        yield
    finally:
        seen = {restore for restore, _ in before}
        for restore, value in before:
            restore(value)
        for restore, _ in _library_state():
            if restore not in seen:
                restore(None)
