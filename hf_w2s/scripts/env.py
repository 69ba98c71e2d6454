"""``hf-w2s env``: the versions and settings a bug report needs, ready to paste (like ``transformers env``).

Works offline and prints no secret: a token in the environment is reported as set or not, never shown.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from ..import_utils import EXTRAS, installed_version, is_package_available

PROG = "hf-w2s env"
#: the libraries whose versions decide hf_w2s's behaviour, as their distributions are named
LIBRARIES = ("torch", "transformers", "datasets", "accelerate", "peft", "huggingface_hub", "safetensors", "evaluate",
             "kornia", "numpy", "pillow", "deepspeed")
#: environment variables worth reporting (values shown); tokens are only said to be set
SETTINGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_HOME",
            "HF_HUB_DISABLE_XET", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")
TOKENS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def package_commit() -> str | None:
    """The commit hf_w2s was installed from: ``git rev-parse`` of an editable checkout, or pip's record of a VCS
    install; ``None`` when neither says."""
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                 text=True, timeout=10)
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            if out.returncode == 0:
                return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import importlib.metadata

        text = importlib.metadata.distribution("hf_w2s").read_text("direct_url.json")
        return (json.loads(text or "{}").get("vcs_info") or {}).get("commit_id")
    except Exception:  # noqa: BLE001 - no record is an answer too
        return None


def accelerator_lines() -> list[str]:
    import torch

    lines = []
    if torch.cuda.is_available():
        lines.append(f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
        lines += [f"  device {i}: {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        lines.append("Apple MPS")
    else:
        lines.append(f"none (CPU only, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})")
    return lines


def report() -> dict[str, object]:
    """The report as an ordered mapping (what ``hf-w2s env`` prints)."""
    from .. import __version__

    info: dict[str, object] = {
        "hf_w2s": __version__,
        "hf_w2s commit": package_commit() or "unknown",
        "Python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
    }
    for name in LIBRARIES:
        info[name] = installed_version(name) or "not installed"
    info["accelerator"] = accelerator_lines()
    info["extras installed"] = ", ".join(
        extra for extra, modules in EXTRAS.items() if all(is_package_available(m) for m in modules)) or "none"
    info["extras missing"] = ", ".join(
        extra for extra, modules in EXTRAS.items() if not all(is_package_available(m) for m in modules)) or "none"
    for name in SETTINGS:
        info[name] = _without_userinfo(os.environ.get(name, "unset"))
    info["Hub token in the environment"] = "set (not shown)" if any(os.environ.get(t) for t in TOKENS) else "not set"
    return info


def _without_userinfo(value: str) -> str:
    """An address with ``user:password@`` in it (a token can hide there) shown without them."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(value)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
    return value


def format_report(info: dict[str, object]) -> str:
    lines = ["Copy-and-paste the text below into your bug report.", ""]
    for key, value in info.items():
        if isinstance(value, list):
            lines.append(f"- {key}: {value[0]}")
            lines += [f"  {v}" for v in value[1:]]
        else:
            lines.append(f"- {key}: {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: {PROG}\n\nPrint hf_w2s's version and commit, Python, the platform, torch and its accelerator, "
              "the Hugging Face libraries, the extras installed and the Hub settings (never a token).")
        return 0
    if argv:
        raise ValueError(f"{PROG} takes no options, got {' '.join(argv)}")
    print(format_report(report()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
