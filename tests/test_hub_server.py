"""The local Hub server (tests/hub_server.py), exercised through the real huggingface_hub / datasets / transformers
clients in fresh processes, plus a few raw-HTTP checks of the protocol details those clients rely on."""

import base64
import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from hub_server import LocalHub, git_blob_sha1


LABELS = ["cat", "dog", "emu"]

MODEL_PUSH = """
import tempfile, torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from transformers import AutoModelForImageClassification, ViTConfig
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

repo_id, labels = {repo_id!r}, {labels!r}
torch.manual_seed(0)
config = ViTConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=32, num_hidden_layers=2,
                   num_attention_heads=2, intermediate_size=64, num_labels=3,
                   id2label=dict(enumerate(labels)), label2id={{n: i for i, n in enumerate(labels)}})
model = AutoModelForImageClassification.from_config(config).eval()
processor = ViTImageProcessorPil(size={{"height": 28, "width": 28}}, image_mean=[0.5], image_std=[0.5])
x = torch.linspace(-1, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)

api = HfApi()
api.create_repo(repo_id)
folder = tempfile.mkdtemp()
model.save_pretrained(folder)  # model.safetensors + config.json
processor.save_pretrained(folder)
first = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="student v1")
with torch.no_grad():
    logits_v1 = model(pixel_values=x).logits.tolist()
    model.classifier.bias.add_(torch.tensor([0.0, 5.0, -5.0]))
    logits_v2 = model(pixel_values=x).logits.tolist()
model.push_to_hub(repo_id, commit_message="student v2")
sha_v2 = api.model_info(repo_id).sha
card_data = ModelCardData(license="apache-2.0", model_name="tiny-vit-student", eval_results=[EvalResult(
    task_type="image-classification", dataset_type="mnist", dataset_name="MNIST", metric_type="accuracy",
    metric_value=0.75)])
ModelCard.from_template(card_data, model_summary="A tiny W2S student.").push_to_hub(repo_id)
emit({{"kind": "model", "repo_id": repo_id, "sha_v1": first.oid, "sha_v2": sha_v2,
      "logits_v1": logits_v1, "logits_v2": logits_v2}})
"""

MODEL_LOAD = """
import pathlib
import numpy as np, torch
from huggingface_hub import hf_hub_download, snapshot_download
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

repo_id, sha_v1 = {repo_id!r}, {sha_v1!r}
x = torch.linspace(-1, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)
main = AutoModelForImageClassification.from_pretrained(repo_id).eval()
pinned = AutoModelForImageClassification.from_pretrained(repo_id, revision=sha_v1).eval()
processor = AutoImageProcessor.from_pretrained(repo_id)
image = (np.arange(28 * 28).reshape(28, 28, 1) % 256).astype("uint8")  # (H, W, 1): a PIL image would become RGB
with torch.no_grad():
    logits_main, logits_v1 = main(pixel_values=x).logits.tolist(), pinned(pixel_values=x).logits.tolist()
    expected = main.config.id2label[int(main(**processor(image, return_tensors="pt")).logits.argmax())]
top = pipeline("image-classification", model=repo_id)(image, top_k=1)[0]["label"]
try:
    AutoModelForImageClassification.from_pretrained(repo_id + "-missing")
    missing = None
except OSError as err:
    missing = type(err).__name__
with open(hf_hub_download(repo_id, "config.json", revision=sha_v1), "rb") as f:
    config_v1 = f.read().decode()
snapshot = pathlib.Path(snapshot_download(repo_id))
files = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file())
emit({{"kind": "model", "logits_main": logits_main, "logits_v1": logits_v1, "processor": type(processor).__name__,
      "image_mean": list(processor.image_mean), "pipeline_top": top, "expected_top": expected,
      "missing_error": missing, "config_v1": config_v1, "snapshot_files": files}})
"""

DATASET_PUSH = """
import numpy as np
from datasets import ClassLabel, Dataset, Features, Image, List, Value
from huggingface_hub import DatasetCard
from PIL import Image as PILImage

repo_id, labels = {repo_id!r}, {labels!r}
rng = np.random.default_rng(0)
pixels = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
weak = rng.normal(size=(6, 3)).astype(np.float32)
features = Features({{"image": Image(), "label": ClassLabel(names=labels),
                     "weak_logits": List(Value("float32"), length=3)}})

def build(logits):
    return Dataset.from_dict({{"image": [PILImage.fromarray(p) for p in pixels], "label": [0, 1, 2, 0, 1, 2],
                              "weak_logits": logits.tolist()}}, features=features)

first = build(weak).push_to_hub(repo_id, commit_message="weak labels v1")
card = DatasetCard.load(repo_id, repo_type="dataset")
card.data.license = "mit"
card.text += "\\nWeak labels written by the local-hub test.\\n"
card.push_to_hub(repo_id, repo_type="dataset")
second = build(weak * np.float32(2) - np.float32(1)).push_to_hub(repo_id, commit_message="weak labels v2")
emit({{"kind": "dataset", "repo_id": repo_id, "sha_v1": first.oid, "sha_v2": second.oid,
      "weak": weak.tolist(), "pixels": pixels.tolist()}})

# The W2S splits as one private DatasetDict repo.
from datasets import DatasetDict
splits = DatasetDict({{name: build(weak).select(range(n)) for name, n in [("weak_train", 2), ("strong_train", 3),
                                                                           ("test", 1)]}})
splits.push_to_hub({splits_repo!r}, private=True)
"""

DATASET_LOAD = """
import numpy as np
from datasets import load_dataset

repo_id, sha_v1 = {repo_id!r}, {sha_v1!r}
main = load_dataset(repo_id, split="train")
pinned = load_dataset(repo_id, split="train", revision=sha_v1)
weak_main = main.with_format("numpy")[:]["weak_logits"]
emit({{"kind": "dataset", "weak_main": weak_main.tolist(), "dtype": str(weak_main.dtype),
      "weak_v1": pinned.with_format("numpy")[:]["weak_logits"].tolist(),
      "pixels": [np.asarray(im).tolist() for im in main["image"]], "modes": [im.mode for im in main["image"]],
      "labels": list(main["label"]), "names": main.features["label"].names}})

from huggingface_hub import HfApi
splits = load_dataset({splits_repo!r})
emit({{"kind": "splits", "sizes": {{name: len(split) for name, split in splits.items()}},
      "anonymous_sees_it": HfApi(token=False).repo_exists({splits_repo!r}, repo_type="dataset"),
      "owner_sees_it": HfApi().repo_exists({splits_repo!r}, repo_type="dataset")}})
"""


# --------------------------------------------------------------------------------------------------------------------
# Pushes (one client process) shared by the tests below
# --------------------------------------------------------------------------------------------------------------------
def _by_kind(*runs):
    return {result["kind"]: result for run in runs for result in run.results}


@pytest.fixture(scope="module")
def pushed(local_hub):
    """Push a tiny ViT student (3 commits), then the weak-label datasets, from one client process (almost all its
    cost is importing torch / transformers / datasets, paid once)."""
    model_repo, dataset_repo = local_hub.new_repo_id("tiny-vit"), local_hub.new_repo_id("weak-labels")
    splits_repo = local_hub.new_repo_id("w2s-splits")
    run = local_hub.run_python(MODEL_PUSH.format(repo_id=model_repo, labels=LABELS) + "\n" + DATASET_PUSH.format(
        repo_id=dataset_repo, labels=LABELS, splits_repo=splits_repo))
    return {**_by_kind(run), "splits": {"repo_id": splits_repo}}


@pytest.fixture(scope="module")
def loaded(local_hub, pushed):
    """Load everything back in a fresh client process with an empty HF_HOME, so every byte comes from the server."""
    model, dataset = pushed["model"], pushed["dataset"]
    run = local_hub.run_python(MODEL_LOAD.format(repo_id=model["repo_id"], sha_v1=model["sha_v1"]) + "\n" +
                               DATASET_LOAD.format(repo_id=dataset["repo_id"], sha_v1=dataset["sha_v1"],
                                                   splits_repo=pushed["splits"]["repo_id"]))
    return _by_kind(run)


# --------------------------------------------------------------------------------------------------------------------
# Client round trips
# --------------------------------------------------------------------------------------------------------------------
def test_upload_folder_then_from_pretrained_gives_identical_logits(local_hub, pushed, loaded):
    pushed_model, loaded_model = pushed["model"], loaded["model"]
    assert loaded_model["logits_main"] == pushed_model["logits_v2"]  # bit-identical floats after the round trip
    assert loaded_model["processor"] == "ViTImageProcessorPil" and loaded_model["image_mean"] == [0.5]
    assert loaded_model["pipeline_top"] == loaded_model["expected_top"] == "dog"  # v2's classifier bias wins
    assert loaded_model["missing_error"] == "OSError"
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", ".gitattributes"} <= set(
        loaded_model["snapshot_files"]
    )
    files = local_hub.files(pushed_model["repo_id"])
    assert files["model.safetensors"]["lfs"] and not files["config.json"]["lfs"]  # weights went through LFS


def test_push_to_hub_then_load_dataset_gives_identical_values(local_hub, pushed, loaded):
    pushed_dataset, loaded_dataset = pushed["dataset"], loaded["dataset"]
    expected = np.asarray(pushed_dataset["weak"], dtype=np.float32) * np.float32(2) - np.float32(1)
    assert loaded_dataset["dtype"] == "float32"
    np.testing.assert_array_equal(np.asarray(loaded_dataset["weak_main"], dtype=np.float32), expected)
    assert loaded_dataset["pixels"] == pushed_dataset["pixels"] and set(loaded_dataset["modes"]) == {"L"}
    assert loaded_dataset["labels"] == [0, 1, 2, 0, 1, 2] and loaded_dataset["names"] == LABELS
    parquet = [p for p in local_hub.files(pushed_dataset["repo_id"], "dataset") if p.endswith(".parquet")]
    assert parquet == ["data/train-00000-of-00001.parquet"]


def test_private_dataset_dict_keeps_the_w2s_splits(local_hub, pushed, loaded):
    assert loaded["splits"]["sizes"] == {"weak_train": 2, "strong_train": 3, "test": 1}
    assert loaded["splits"]["owner_sees_it"] is True and loaded["splits"]["anonymous_sees_it"] is False
    files = local_hub.files(pushed["splits"]["repo_id"], "dataset")
    assert {"data/weak_train-00000-of-00001.parquet", "data/strong_train-00000-of-00001.parquet",
            "data/test-00000-of-00001.parquet"} <= set(files)


def test_cards_round_trip(local_hub, pushed):
    model_repo, dataset_repo = pushed["model"]["repo_id"], pushed["dataset"]["repo_id"]
    cards = local_hub.run_python(f"""
        from huggingface_hub import DatasetCard, HfApi, ModelCard
        model_card = ModelCard.load({model_repo!r})
        dataset_card = DatasetCard.load({dataset_repo!r}, repo_type="dataset")
        emit({{"model": model_card.data.to_dict(), "model_text": model_card.text,
              "dataset": dataset_card.data.to_dict(), "dataset_text": dataset_card.text,
              "info_licenses": [HfApi().model_info({model_repo!r}).card_data.license,
                                HfApi().dataset_info({dataset_repo!r}).card_data.license]}})
    """).result
    assert cards["model"]["license"] == "apache-2.0"
    (result,) = cards["model"]["model-index"][0]["results"]
    assert cards["model"]["model-index"][0]["name"] == "tiny-vit-student"
    assert result["metrics"][0]["type"] == "accuracy" and result["metrics"][0]["value"] == 0.75
    assert "A tiny W2S student." in cards["model_text"]
    # The edit made between the two `push_to_hub` calls survives the second push, which updates the YAML header.
    assert cards["dataset"]["license"] == "mit"
    assert "Weak labels written by the local-hub test." in cards["dataset_text"]
    assert cards["dataset"]["dataset_info"]["splits"][0]["num_examples"] == 6
    assert cards["dataset"]["configs"][0]["data_files"][0]["path"] == "data/train-*"
    assert cards["info_licenses"] == ["apache-2.0", "mit"]  # `cardData` of model_info / dataset_info


def test_revision_pinning_loads_the_first_commit(local_hub, pushed, loaded):
    model, loaded_model = pushed["model"], loaded["model"]
    assert loaded_model["logits_v1"] == model["logits_v1"] != model["logits_v2"]
    assert json.loads(loaded_model["config_v1"])["id2label"] == {"0": "cat", "1": "dog", "2": "emu"}
    history = local_hub.commits(model["repo_id"])
    assert history[-1] == local_hub.commits(model["repo_id"], revision=history[-1])[0]  # the initial commit
    assert history[2] == model["sha_v1"] and history[1] == model["sha_v2"] and len(history) == 4  # init v1 v2 card

    dataset = pushed["dataset"]
    np.testing.assert_array_equal(
        np.asarray(loaded["dataset"]["weak_v1"], dtype=np.float32), np.asarray(dataset["weak"], dtype=np.float32)
    )
    history = local_hub.commits(dataset["repo_id"], "dataset")
    assert history[0] == dataset["sha_v2"] and dataset["sha_v1"] in history[1:]


def test_missing_repo_file_and_revision_raise_the_hub_errors(local_hub):
    repo_id = local_hub.new_repo_id("errors")
    errors = local_hub.run_python(f"""
        from huggingface_hub import HfApi, hf_hub_download

        def error(fn, *args, **kwargs):
            try:
                fn(*args, **kwargs)
            except Exception as err:
                return [type(err).__name__, [c.__name__ for c in type(err).__mro__], getattr(
                    getattr(err, "response", None), "status_code", None)]
            return None

        api = HfApi()
        url = api.create_repo({repo_id!r})
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id={repo_id!r})
        emit({{
            "missing_repo_download": error(hf_hub_download, {repo_id!r} + "-nope", "a.txt"),
            "missing_repo_info": error(api.model_info, {repo_id!r} + "-nope"),
            "wrong_repo_type": error(api.dataset_info, {repo_id!r}),
            "missing_file": error(hf_hub_download, {repo_id!r}, "b.txt"),
            "missing_folder": error(lambda: list(api.list_repo_tree({repo_id!r}, path_in_repo="nope"))),
            "missing_revision": error(hf_hub_download, {repo_id!r}, "a.txt", revision="nope"),
            "exists": error(api.create_repo, {repo_id!r}),
            "exist_ok_url": str(api.create_repo({repo_id!r}, exist_ok=True)) == str(url),
            "found": open(hf_hub_download({repo_id!r}, "a.txt"), "rb").read().decode(),
        }})
    """).result
    assert "RepositoryNotFoundError" in errors["missing_repo_download"][1]
    assert errors["missing_repo_info"][0] == errors["wrong_repo_type"][0] == "RepositoryNotFoundError"
    assert "EntryNotFoundError" in errors["missing_file"][1] and errors["missing_file"][2] == 404
    assert "EntryNotFoundError" in errors["missing_folder"][1]
    assert "RevisionNotFoundError" in errors["missing_revision"][1]
    assert errors["exists"][2] == 409 and errors["exist_ok_url"] is True
    assert errors["found"] == "hello"


def test_wrong_token_is_rejected(local_hub):
    checks = local_hub.run_python(f"""
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        def status(fn, *args, **kwargs):
            try:
                fn(*args, **kwargs)
            except HfHubHTTPError as err:
                return [err.response.status_code, str(err).splitlines()[0]]
            return None

        api = HfApi()  # HF_TOKEN is the wrong token in this process
        emit({{"whoami": status(api.whoami), "create": status(api.create_repo, "w2s-tester/never"),
              "good": HfApi(token={local_hub.token!r}).whoami()["name"]}})
    """, token="hf_wrong_token").result
    assert checks["whoami"][0] == 401 and "Invalid user token" in checks["whoami"][1]
    assert checks["create"][0] == 401
    assert checks["good"] == local_hub.user
    assert local_hub.storage.get_repo("model", "w2s-tester/never") is None


# --------------------------------------------------------------------------------------------------------------------
# Raw HTTP: protocol details the clients depend on (fast, in-process)
# --------------------------------------------------------------------------------------------------------------------
def _http(hub, method, path, body=None, headers=None, token=True):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {hub.token}"
    if isinstance(body, (dict, list)):
        body, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(hub.url + path, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def _commit(hub, repo_id, *ops, parent=None):
    header = {"summary": "test commit", "description": ""}
    if parent:
        header["parentCommit"] = parent
    lines = [{"key": "header", "value": header}, *({"key": k, "value": v} for k, v in ops)]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    return _http(hub, "POST", f"/api/models/{repo_id}/commit/main", body, {"Content-Type": "application/x-ndjson"})


@pytest.fixture()
def raw_repo(local_hub):
    repo_id = local_hub.new_repo_id("raw")
    namespace, name = repo_id.split("/")
    status, _, body = _http(local_hub, "POST", "/api/repos/create", {"name": name, "organization": namespace})
    assert status == 200, body
    return repo_id


def test_lfs_put_checks_sha256_and_commit_needs_the_blob(local_hub, raw_repo):
    data = b"\x00weights" * 100
    oid = hashlib.sha256(data).hexdigest()
    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]}
    status, _, body = _http(local_hub, "POST", f"/{raw_repo}.git/info/lfs/objects/batch", batch)
    (action,) = json.loads(body)["objects"]
    href = action["actions"]["upload"]["href"]
    assert status == 200 and href.startswith(local_hub.url)
    path = href[len(local_hub.url):]
    lfs_op = ("lfsFile", {"path": "w.bin", "algo": "sha256", "oid": oid, "size": len(data)})
    assert _commit(local_hub, raw_repo, lfs_op)[0] == 422  # not uploaded yet
    assert _http(local_hub, "PUT", path, data[:-1] + b"X", token=False)[0] == 400  # wrong content
    assert _http(local_hub, "PUT", path, data, token=False)[0] == 200
    status, _, body = _commit(local_hub, raw_repo, lfs_op)
    assert status == 200 and json.loads(body)["commitOid"] == local_hub.head(raw_repo)
    assert local_hub.file_bytes(raw_repo, "w.bin") == data
    # Uploaded once: a second batch request asks for no upload.
    _, _, body = _http(local_hub, "POST", f"/{raw_repo}.git/info/lfs/objects/batch", batch)
    assert "actions" not in json.loads(body)["objects"][0]


def test_resolve_headers_ranges_and_404_codes(local_hub, raw_repo):
    content = b"0123456789"
    status, _, body = _commit(local_hub, raw_repo, ("file", {"path": "d/x.txt", "encoding": "base64",
                                                             "content": base64.b64encode(content).decode()}))
    sha = json.loads(body)["commitOid"]
    status, headers, body = _http(local_hub, "HEAD", f"/{raw_repo}/resolve/main/d/x.txt")
    assert status == 200 and body == b"" and headers["Content-Length"] == "10"
    assert headers["X-Repo-Commit"] == sha and headers["ETag"] == f'"{git_blob_sha1(content)}"'
    assert "X-Linked-Etag" not in headers
    status, headers, body = _http(local_hub, "GET", f"/{raw_repo}/resolve/{sha}/d/x.txt",
                                  headers={"Range": "bytes=2-4"})
    assert (status, body, headers["Content-Range"]) == (206, b"234", "bytes 2-4/10")
    assert _http(local_hub, "GET", f"/{raw_repo}/resolve/main/d/x.txt", headers={"Range": "bytes=-3"})[2] == b"789"
    assert _http(local_hub, "GET", f"/{raw_repo}/resolve/main/d/x.txt", headers={"Range": "bytes=10-"})[0] == 416
    for path, code in [
        (f"/{raw_repo}/resolve/main/d/nope.txt", "EntryNotFound"),
        (f"/{raw_repo}/resolve/{'0' * 40}/d/x.txt", "RevisionNotFound"),
        (f"/{raw_repo}-nope/resolve/main/d/x.txt", "RepoNotFound"),
        (f"/datasets/{raw_repo}/resolve/main/d/x.txt", "RepoNotFound"),
    ]:
        status, headers, _ = _http(local_hub, "GET", path)
        assert (status, headers["X-Error-Code"]) == (404, code), path
    clash = ("file", {"path": "d", "encoding": "base64", "content": base64.b64encode(b"x").decode()})
    assert _commit(local_hub, raw_repo, clash)[0] == 400  # "d" is a folder already
    # A commit based on an outdated parent is refused like on the Hub (datasets retries on 412).
    parent = local_hub.commits(raw_repo)[1]
    assert _commit(local_hub, raw_repo, ("deletedFile", {"path": "d/x.txt"}), parent=parent)[0] == 412
    assert _http(local_hub, "GET", "/api/whoami-v2", headers={"Authorization": "Bearer nope"}, token=False)[0] == 401


def test_preupload_answers_lfs_like_the_hub(local_hub, raw_repo):
    def modes(repo_type, repo_id, files):
        payload = {"files": [{"path": p, "size": size, "sample": base64.b64encode(sample).decode()}
                             for p, size, sample in files]}
        status, _, body = _http(local_hub, "POST", f"/api/{repo_type}s/{repo_id}/preupload/main", payload)
        assert status == 200, body
        return {f["path"]: f["uploadMode"] for f in json.loads(body)["files"]}

    assert modes("model", raw_repo, [
        ("model.safetensors", 100, b"{}"), ("config.json", 100, b"{}"), ("notes.bin.txt", 9, b"ab\x00cd"),
        ("big.txt", 20 * 1024 * 1024, b"aaaa"), ("data/train-00000-of-00001.parquet", 10, b"PAR1"),
        ("logo.png", 10, b"text"),
    ]) == {"model.safetensors": "lfs", "config.json": "regular", "notes.bin.txt": "lfs", "big.txt": "lfs",
           "data/train-00000-of-00001.parquet": "lfs", "logo.png": "regular"}
    namespace, name = raw_repo.split("/")
    assert _http(local_hub, "POST", "/api/repos/create", {"name": name, "organization": namespace,
                                                          "type": "dataset"})[0] == 200
    assert modes("dataset", raw_repo, [("logo.png", 10, b"text")]) == {"logo.png": "lfs"}  # media in dataset repos


def test_unknown_routes_are_logged_and_answered_404(local_hub):
    status, _, body = _http(local_hub, "GET", "/api/models/w2s-tester/x/discussions")
    assert status == 404 and b"not implemented" in body
    assert "UNHANDLED GET /api/models/w2s-tester/x/discussions" in local_hub.unhandled
    local_hub.unhandled.remove("UNHANDLED GET /api/models/w2s-tester/x/discussions")


def test_standalone_server_process(tmp_path):
    script = Path(__file__).with_name("hub_server.py")
    proc = subprocess.Popen([sys.executable, str(script), "--root", str(tmp_path), "--port", "0", "--token", "hf_cli"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("LOCAL_HUB_URL=http://127.0.0.1:")
        hub = LocalHub(tmp_path, token="hf_cli")  # not started: only used to address the standalone server
        hub.host, hub.port = "127.0.0.1", int(line.rsplit(":", 1)[1])
        status, _, body = _http(hub, "GET", "/api/whoami-v2")
        assert status == 200 and json.loads(body)["name"] == "w2s-tester"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_client_env_scripts_and_commands(local_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as other tests set it: the client process must not inherit it
    script = tmp_path / "client.py"
    script.write_text(
        "import os, sys\n"
        "from huggingface_hub import whoami\n"
        "emit({'argv': sys.argv[1:], 'user': whoami()['name'], 'offline': os.environ.get('HF_HUB_OFFLINE'),\n"
        "      'endpoint': os.environ['HF_ENDPOINT'], 'xet': os.environ['HF_HUB_DISABLE_XET']})\n"
    )
    run = local_hub.run_python(script, args=["--flag", "x"])
    assert run.result == {"argv": ["--flag", "x"], "user": local_hub.user, "offline": None,
                          "endpoint": local_hub.url, "xet": "1"}
    homes = [local_hub.run_command([sys.executable, "-c", "import os; print(os.environ['HF_HOME'])"]).stdout.strip()
             for _ in range(2)]
    assert homes[0] != homes[1] and all(Path(h).is_dir() for h in homes)  # a fresh, empty cache per process
    failed = local_hub.run_command([sys.executable, "-c", "raise SystemExit(3)"], check=False)
    assert failed.returncode == 3 and failed.results == []
    with pytest.raises(AssertionError, match="exit code 3"):
        local_hub.run_python("raise SystemExit(3)")
