"""The local Hub server (tests/hub/server.py), exercised through the real huggingface_hub / datasets / transformers
clients in this process (tests/conftest.py points them at it), plus raw-HTTP checks of the protocol details those
clients rely on."""

import base64
import contextlib
import hashlib
import json
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value, load_dataset
from hub.server import LocalHub, git_blob_sha1
from huggingface_hub import DatasetCard, EvalResult, HfApi, ModelCard, ModelCardData, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError
from PIL import Image as PILImage
from transformers import AutoImageProcessor, AutoModelForImageClassification, ViTConfig, pipeline
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

LABELS = ["cat", "dog", "emu"]
X = torch.linspace(-1, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)


@contextlib.contextmanager
def empty_caches():
    """Fresh Hub and datasets caches (what the libraries read at each call): every byte loaded comes from the server."""
    import datasets.config
    from huggingface_hub import constants

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_CACHE", str(Path(tmp) / "hub"))
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", Path(tmp) / "datasets")
        mp.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", Path(tmp) / "datasets" / "downloads")
        yield


def _logits(model) -> list:
    with torch.no_grad():
        return model(pixel_values=X).logits.tolist()


def _push_model(repo_id: str) -> dict:
    """A tiny ViT student in three commits: upload_folder (v1), push_to_hub (v2), a model card."""
    torch.manual_seed(0)
    config = ViTConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, num_labels=3, id2label=dict(enumerate(LABELS)),
                       label2id={n: i for i, n in enumerate(LABELS)})
    model = AutoModelForImageClassification.from_config(config).eval()
    processor = ViTImageProcessorPil(size={"height": 28, "width": 28}, image_mean=[0.5], image_std=[0.5])
    api = HfApi()
    api.create_repo(repo_id)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)  # model.safetensors + config.json
        processor.save_pretrained(folder)
        first = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="student v1")
    logits_v1 = _logits(model)
    with torch.no_grad():
        model.classifier.bias.add_(torch.tensor([0.0, 5.0, -5.0]))
    logits_v2 = _logits(model)
    model.push_to_hub(repo_id, commit_message="student v2")
    sha_v2 = api.model_info(repo_id).sha
    card_data = ModelCardData(license="apache-2.0", model_name="tiny-vit-student", eval_results=[EvalResult(
        task_type="image-classification", dataset_type="mnist", dataset_name="MNIST", metric_type="accuracy",
        metric_value=0.75)])
    ModelCard.from_template(card_data, model_summary="A tiny W2S student.").push_to_hub(repo_id)
    return {"repo_id": repo_id, "sha_v1": first.oid, "sha_v2": sha_v2, "logits_v1": logits_v1, "logits_v2": logits_v2}


def _push_datasets(repo_id: str, splits_repo: str) -> dict:
    """Weak labels in two commits with a card edited between them; the W2S splits as one private DatasetDict."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    weak = rng.normal(size=(6, 3)).astype(np.float32)
    features = Features({"image": Image(), "label": ClassLabel(names=LABELS),
                         "weak_logits": List(Value("float32"), length=3)})

    def build(logits):
        return Dataset.from_dict({"image": [PILImage.fromarray(p) for p in pixels], "label": [0, 1, 2, 0, 1, 2],
                                  "weak_logits": logits.tolist()}, features=features)

    first = build(weak).push_to_hub(repo_id, commit_message="weak labels v1")
    card = DatasetCard.load(repo_id, repo_type="dataset")
    card.data.license = "mit"
    card.text += "\nWeak labels written by the local-hub test.\n"
    card.push_to_hub(repo_id, repo_type="dataset")
    second = build(weak * np.float32(2) - np.float32(1)).push_to_hub(repo_id, commit_message="weak labels v2")
    DatasetDict({name: build(weak).select(range(n)) for name, n in [("weak_train", 2), ("strong_train", 3),
                                                                     ("test", 1)]}).push_to_hub(splits_repo,
                                                                                                private=True)
    return {"repo_id": repo_id, "sha_v1": first.oid, "sha_v2": second.oid, "weak": weak, "pixels": pixels,
            "splits_repo": splits_repo}


# --------------------------------------------------------------------------------------------------------------------
# Client round trips, in this process
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pushed(local_hub):
    """A tiny ViT student (3 commits) and weak-label datasets, pushed with the test user's token."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", local_hub.token)
        model = _push_model(local_hub.new_repo_id("tiny-vit"))
        dataset = _push_datasets(local_hub.new_repo_id("weak-labels"), local_hub.new_repo_id("w2s-splits"))
    return {"model": model, "dataset": dataset}


@pytest.fixture(scope="module")
def loaded(local_hub, pushed):
    """Everything loaded back with empty caches; the owner's token only where the repo is private."""
    model, dataset = pushed["model"], pushed["dataset"]
    repo_id, sha_v1 = model["repo_id"], model["sha_v1"]
    out = {}
    with empty_caches():
        start = len(local_hub.requests)
        main = AutoModelForImageClassification.from_pretrained(repo_id).eval()
        pinned = AutoModelForImageClassification.from_pretrained(repo_id, revision=sha_v1).eval()
        processor = AutoImageProcessor.from_pretrained(repo_id)
        image = (np.arange(28 * 28).reshape(28, 28, 1) % 256).astype("uint8")  # (H, W, 1): PIL would make it RGB
        with torch.no_grad():
            expected = main.config.id2label[int(main(**processor(image, return_tensors="pt")).logits.argmax())]
        with pytest.raises(OSError) as missing:
            AutoModelForImageClassification.from_pretrained(repo_id + "-missing")
        snapshot = Path(snapshot_download(repo_id))
        out["model"] = {
            "logits_main": _logits(main), "logits_v1": _logits(pinned), "processor": type(processor).__name__,
            "image_mean": list(processor.image_mean), "expected_top": expected,
            "pipeline_top": pipeline("image-classification", model=repo_id)(image, top_k=1)[0]["label"],
            "missing_error": type(missing.value).__name__,
            "config_v1": Path(hf_hub_download(repo_id, "config.json", revision=sha_v1)).read_text(),
            "snapshot_files": sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file())}
        main_ds = load_dataset(dataset["repo_id"], split="train")
        pinned_ds = load_dataset(dataset["repo_id"], split="train", revision=dataset["sha_v1"])
        weak_main = main_ds.with_format("numpy")[:]["weak_logits"]
        out["dataset"] = {
            "weak_main": weak_main, "weak_v1": pinned_ds.with_format("numpy")[:]["weak_logits"],
            "pixels": [np.asarray(im) for im in main_ds["image"]], "modes": [im.mode for im in main_ds["image"]],
            "labels": list(main_ds["label"]), "names": main_ds.features["label"].names}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HF_TOKEN", local_hub.token)
            splits = load_dataset(dataset["splits_repo"])
            owner_sees_it = HfApi().repo_exists(dataset["splits_repo"], repo_type="dataset")
        out["splits"] = {"sizes": {name: len(split) for name, split in splits.items()}, "owner_sees_it": owner_sees_it,
                         "anonymous_sees_it": HfApi().repo_exists(dataset["splits_repo"], repo_type="dataset")}
        out["requests"] = list(local_hub.requests)[start:]
    return out


def test_this_process_talks_to_the_local_hub(local_hub):
    from huggingface_hub import constants

    assert constants.ENDPOINT == local_hub.url and constants.HF_HUB_DISABLE_XET
    assert HfApi(token=local_hub.token).whoami()["name"] == local_hub.user
    assert ("GET", "/api/whoami-v2", 200) in local_hub.requests


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
    # the weights came from the server (the caches were empty), at the head and at the pinned revision
    weights = [path for method, path, status in loaded["requests"] if method == "GET" and status == 200
               and path.startswith(f"/{pushed_model['repo_id']}/resolve/") and path.endswith("/model.safetensors")]
    assert len(weights) == 2 and any(pushed_model["sha_v1"] in path for path in weights)


def test_push_to_hub_then_load_dataset_gives_identical_values(local_hub, pushed, loaded):
    pushed_dataset, loaded_dataset = pushed["dataset"], loaded["dataset"]
    expected = pushed_dataset["weak"] * np.float32(2) - np.float32(1)
    assert loaded_dataset["weak_main"].dtype == np.float32
    np.testing.assert_array_equal(loaded_dataset["weak_main"], expected)
    np.testing.assert_array_equal(np.stack(loaded_dataset["pixels"]), pushed_dataset["pixels"])
    assert set(loaded_dataset["modes"]) == {"L"}
    assert loaded_dataset["labels"] == [0, 1, 2, 0, 1, 2] and loaded_dataset["names"] == LABELS
    parquet = [p for p in local_hub.files(pushed_dataset["repo_id"], "dataset") if p.endswith(".parquet")]
    assert parquet == ["data/train-00000-of-00001.parquet"]
    assert any(method == "GET" and path.endswith(".parquet") for method, path, _ in loaded["requests"])


def test_private_dataset_dict_keeps_the_w2s_splits(local_hub, pushed, loaded):
    assert loaded["splits"]["sizes"] == {"weak_train": 2, "strong_train": 3, "test": 1}
    assert loaded["splits"]["owner_sees_it"] is True and loaded["splits"]["anonymous_sees_it"] is False
    files = local_hub.files(pushed["dataset"]["splits_repo"], "dataset")
    assert {"data/weak_train-00000-of-00001.parquet", "data/strong_train-00000-of-00001.parquet",
            "data/test-00000-of-00001.parquet"} <= set(files)


def test_cards_round_trip(pushed):
    model_repo, dataset_repo = pushed["model"]["repo_id"], pushed["dataset"]["repo_id"]
    model_card = ModelCard.load(model_repo)
    dataset_card = DatasetCard.load(dataset_repo, repo_type="dataset")
    model_data, dataset_data = model_card.data.to_dict(), dataset_card.data.to_dict()
    assert model_data["license"] == "apache-2.0"
    (result,) = model_data["model-index"][0]["results"]
    assert model_data["model-index"][0]["name"] == "tiny-vit-student"
    assert result["metrics"][0]["type"] == "accuracy" and result["metrics"][0]["value"] == 0.75
    assert "A tiny W2S student." in model_card.text
    # The edit made between the two `push_to_hub` calls survives the second push, which updates the YAML header.
    assert dataset_data["license"] == "mit"
    assert "Weak labels written by the local-hub test." in dataset_card.text
    assert dataset_data["dataset_info"]["splits"][0]["num_examples"] == 6
    assert dataset_data["configs"][0]["data_files"][0]["path"] == "data/train-*"
    api = HfApi()
    assert [api.model_info(model_repo).card_data.license, api.dataset_info(dataset_repo).card_data.license] == [
        "apache-2.0", "mit"]  # `cardData` of model_info / dataset_info


def test_revision_pinning_loads_the_first_commit(local_hub, pushed, loaded):
    model, loaded_model = pushed["model"], loaded["model"]
    assert loaded_model["logits_v1"] == model["logits_v1"] != model["logits_v2"]
    assert json.loads(loaded_model["config_v1"])["id2label"] == {"0": "cat", "1": "dog", "2": "emu"}
    history = local_hub.commits(model["repo_id"])
    assert history[-1] == local_hub.commits(model["repo_id"], revision=history[-1])[0]  # the initial commit
    assert history[2] == model["sha_v1"] and history[1] == model["sha_v2"] and len(history) == 4  # init v1 v2 card

    dataset = pushed["dataset"]
    np.testing.assert_array_equal(loaded["dataset"]["weak_v1"], dataset["weak"])
    history = local_hub.commits(dataset["repo_id"], "dataset")
    assert history[0] == dataset["sha_v2"] and dataset["sha_v1"] in history[1:]


def _error(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the test reads which error the client raised
        return type(err), getattr(getattr(err, "response", None), "status_code", None)
    return None


def test_missing_repo_file_and_revision_raise_the_hub_errors(local_hub, hub_token):
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    repo_id = local_hub.new_repo_id("errors")
    api = HfApi()
    url = api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=repo_id)
    assert issubclass(_error(hf_hub_download, repo_id + "-nope", "a.txt")[0], RepositoryNotFoundError)
    assert _error(api.model_info, repo_id + "-nope")[0] is _error(api.dataset_info, repo_id)[0] is \
        RepositoryNotFoundError
    missing_file = _error(hf_hub_download, repo_id, "b.txt")
    assert issubclass(missing_file[0], EntryNotFoundError) and missing_file[1] == 404
    assert issubclass(_error(lambda: list(api.list_repo_tree(repo_id, path_in_repo="nope")))[0], EntryNotFoundError)
    assert issubclass(_error(hf_hub_download, repo_id, "a.txt", revision="nope")[0], RevisionNotFoundError)
    assert _error(api.create_repo, repo_id)[1] == 409
    assert str(api.create_repo(repo_id, exist_ok=True)) == str(url)
    assert Path(hf_hub_download(repo_id, "a.txt")).read_text() == "hello"


def test_wrong_token_is_rejected(local_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token")

    def status(fn, *args, **kwargs):
        with pytest.raises(HfHubHTTPError) as err:
            fn(*args, **kwargs)
        return err.value.response.status_code, str(err.value).splitlines()[0]

    api = HfApi()  # the wrong token, from the environment
    whoami = status(api.whoami)
    assert whoami[0] == 401 and "Invalid user token" in whoami[1]
    assert status(api.create_repo, "w2s-tester/never")[0] == 401
    assert HfApi(token=local_hub.token).whoami()["name"] == local_hub.user
    assert local_hub.storage.get_repo("model", "w2s-tester/never") is None


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
    script = Path(__file__).parent / "hub" / "server.py"
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


def test_a_fresh_interpreter_reads_the_hub_from_its_environment(local_hub, monkeypatch, tmp_path):
    """`run_python` (source, or a script file): a process of its own, wired to this server at import (a fresh, empty
    HF_HOME each; no offline switch inherited), with `emit` returning JSON."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as a test may set it: the client process must not inherit it
    code = ("import os, sys\nfrom huggingface_hub import constants, whoami\n"
            "emit({'argv': sys.argv[1:], 'user': whoami()['name'], 'offline': constants.HF_HUB_OFFLINE,\n"
            "      'endpoint': constants.ENDPOINT, 'home': os.environ['HF_HOME']})\n")
    script = tmp_path / "client.py"
    script.write_text(code)
    first, second = (local_hub.run_python(source, args=["--flag", "x"]).result for source in (code, script))
    assert first == {**second, "home": first["home"]}
    assert {k: first[k] for k in ("argv", "user", "offline", "endpoint")} == {
        "argv": ["--flag", "x"], "user": local_hub.user, "offline": False, "endpoint": local_hub.url}
    assert first["home"] != second["home"] and Path(first["home"]).is_dir()
    failed = local_hub.run_command([sys.executable, "-c", "raise SystemExit(3)"], check=False)
    assert failed.returncode == 3 and failed.results == []
    with pytest.raises(AssertionError, match="exit code 3"):
        local_hub.run_python("raise SystemExit(3)")
