"""One way to run a model for a decision: :func:`predicting` puts it (and every submodule) in evaluation mode under
``torch.inference_mode()``, and gives each module back the mode it had. Labelling, an online weak model, the
student's recalibration, feature extraction, selection and the preflight all predict through it, so no call site
can forget evaluation mode (dropout and batch norm in training mode give other predictions)."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["predicting"]


def _sharded(model: torch.nn.Module) -> bool:
    """A model whose forward gathers its sharded parameters (DeepSpeed ZeRO, FSDP): the gathered weights would be
    inference tensors, which the shards cannot take back, so it predicts under ``no_grad`` instead."""
    if type(model).__name__ == "DeepSpeedEngine":
        return True
    try:
        from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
    except ImportError:  # pragma: no cover - a torch without distributed
        return False
    return isinstance(model, (FSDPModule, FullyShardedDataParallel))


@contextlib.contextmanager
def predicting(*models: torch.nn.Module):
    """``with predicting(model): logits = model(...)``: evaluation mode and no autograd inside (``inference_mode``;
    ``no_grad`` for a sharded model); each module's own ``training`` flag restored afterwards (a frozen part kept in
    eval mode stays so). A tensor made inside is an inference tensor: ``.clone()`` it outside before autograd uses
    it (e.g. as a loss target)."""
    models = tuple(m for m in models if m is not None)
    modes = [[(m, m.training) for m in model.modules()] for model in models]
    grad_off = torch.no_grad() if any(_sharded(m) for m in models) else torch.inference_mode()
    try:
        for model in models:
            model.eval()
        with grad_off:
            yield models[0] if len(models) == 1 else models
    finally:
        for saved in modes:
            for module, training in saved:
                module.training = training
