"""What the ``hf-w2s`` commands print: their own lines, and library noise only with ``--verbose``.

:func:`quiet_libraries` turns off transformers', datasets' and huggingface_hub's progress bars and their info /
warning logs, and shows each of hf_w2s's own notices once (the same notice comes from every run of a sweep). Python
warnings that libraries raise on every run are silenced only where hf_w2s cannot avoid them by setting the right
argument (torch's ``pin_memory`` warning is avoided: ``WeakToStrongConfig`` turns ``dataloader_pin_memory`` off
where there is no accelerator).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["quiet_libraries"]


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
