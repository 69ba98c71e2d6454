"""Safe loading of models, image processors and checkpoints.

* :func:`load_image_classifier` / :func:`load_image_processor` — ``from_pretrained`` with safe defaults: remote code
  only when the caller passes ``trust_remote_code=True``, and weights only from safetensors unless the caller passes
  ``allow_pickle=True`` (pickled ``pytorch_model.bin`` files can run code when loaded).
* :func:`checkpoint_needs_key_conversion` / :func:`load_converted_checkpoint` — restore a Trainer checkpoint whose
  weight names differ from the model's own (transformers 5 writes checkpoints in the original Hub format, e.g. ViT's
  ``encoder.layer.N.attention.attention.query`` for the module ``layers.N.attention.q_proj``, while
  ``Trainer._load_from_checkpoint`` loads them with a plain ``load_state_dict`` that silently skips every renamed
  weight; huggingface/transformers#48805).
"""

from __future__ import annotations

import json
import logging
import os

logger = logging.getLogger(__name__)

__all__ = [
    "load_image_classifier",
    "load_image_processor",
    "checkpoint_weight_names",
    "checkpoint_needs_key_conversion",
    "load_converted_checkpoint",
]

SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def _local_has_only_pickle(path: str) -> bool:
    if not os.path.isdir(path):
        return False
    names = set(os.listdir(path))
    return bool(names & set(PICKLE_WEIGHTS)) and not names & {SAFE_WEIGHTS, SAFE_WEIGHTS_INDEX}


def load_image_classifier(
    id_or_path: str,
    *,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
    **kwargs,
):
    """``AutoModelForImageClassification.from_pretrained`` with safe defaults.

    Args:
        id_or_path: a Hub repo id or a local directory.
        trust_remote_code: run Python code shipped with the checkpoint (``auto_map``). Off unless you pass it.
        allow_pickle: also accept pickled ``pytorch_model.bin`` weights when no safetensors file exists. Off by
            default: only ``model.safetensors`` is loaded.
        revision, token: passed to ``from_pretrained`` (the token is never logged).
        kwargs: any other ``from_pretrained`` argument (``dtype``, ``num_labels``, ``id2label``, ...).
    """
    from transformers import AutoModelForImageClassification

    if not allow_pickle and _local_has_only_pickle(str(id_or_path)):
        raise ValueError(
            f"{id_or_path} holds only pickled weights (pytorch_model.bin), which can execute code when loaded; "
            "hf_w2s loads safetensors only. Convert the checkpoint to safetensors or pass allow_pickle=True if you "
            "trust its source."
        )
    try:
        return AutoModelForImageClassification.from_pretrained(
            id_or_path,
            trust_remote_code=trust_remote_code,
            use_safetensors=True if not allow_pickle else None,
            revision=revision,
            token=token,
            **kwargs,
        )
    except (OSError, EnvironmentError) as err:
        if not allow_pickle and "safetensors" in str(err).lower():
            raise OSError(
                f"no safetensors weights for {id_or_path!r}; hf_w2s does not load pickled weights by default "
                "(pass allow_pickle=True if you trust the source)."
            ) from err
        raise


def load_image_processor(
    id_or_path: str,
    *,
    trust_remote_code: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
    **kwargs,
):
    """``AutoImageProcessor.from_pretrained`` that never runs remote code unless ``trust_remote_code=True``."""
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(
        id_or_path, trust_remote_code=trust_remote_code, revision=revision, token=token, **kwargs
    )


# -- Trainer checkpoints -----------------------------------------------------------------------------------------


def checkpoint_weight_names(checkpoint_dir: str) -> set[str] | None:
    """The weight names stored in a checkpoint's safetensors file(s), read from the headers only."""
    index = os.path.join(checkpoint_dir, SAFE_WEIGHTS_INDEX)
    single = os.path.join(checkpoint_dir, SAFE_WEIGHTS)
    if os.path.isfile(index):
        with open(index) as f:
            return set(json.load(f)["weight_map"])
    if os.path.isfile(single):
        from safetensors import safe_open

        with safe_open(single, framework="pt") as f:
            return set(f.keys())
    return None


def checkpoint_needs_key_conversion(model, checkpoint_dir: str) -> bool:
    """True if ``model`` is a plain ``PreTrainedModel`` whose own weight names differ from the checkpoint's."""
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel) or getattr(model, "_hf_peft_config_loaded", False):
        return False
    stored = checkpoint_weight_names(checkpoint_dir)
    if stored is None:
        return False
    own = set(model.state_dict())
    return not own <= stored


def load_converted_checkpoint(model, checkpoint_dir: str) -> None:
    """Load a checkpoint's weights into ``model`` through ``from_pretrained`` (which applies the model's weight
    renaming), then copy them in with a strict ``load_state_dict``: every weight is restored or it fails loudly."""
    loaded = type(model).from_pretrained(checkpoint_dir, use_safetensors=True, dtype=model.dtype)
    model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
