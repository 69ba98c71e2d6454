"""Weak labels end to end against the local Hub (tests/hub/server.py): label -> cache -> push -> load by id in a
fresh process -> dataset card -> train a student from the Hub id; the same from the shell with ``hf-w2s label``.

The client code runs in fresh interpreters wired to the local server (the HF libraries read the endpoint at import);
nothing inside huggingface_hub, datasets or transformers is patched. A failed push is produced on the server side.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datasets import load_from_disk
from huggingface_hub import DatasetCard
from testing_utils import run_cli

from hf_w2s.data.images import pixel_values_from_images
from hf_w2s.data.packaged import load_sklearn_digits
from hf_w2s.modeling import build_model, tiny_image_processor

NAMES = [str(i) for i in range(10)]
N = 200


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A trained linear weak model (saved) and 200 unseen digits to label (saved with save_to_disk)."""
    import datasets

    datasets.disable_progress_bars()
    root = tmp_path_factory.mktemp("assets")
    digits = load_sklearn_digits()
    train, images = digits.select(range(N, N + 300)), digits.select(range(N))
    processor = tiny_image_processor(8)
    weak = build_model("linear", NAMES, image_size=8, width=8, seed=0)
    x = pixel_values_from_images(train["image"], processor).float()
    y = torch.tensor(train["label"])
    opt = torch.optim.Adam(weak.parameters(), lr=0.05)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(weak(pixel_values=x).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    weak.save_pretrained(root / "weak")
    processor.save_pretrained(root / "weak")
    images.save_to_disk(str(root / "images"))
    return root


# student training and the checks on it, shared by the Python-API and CLI round trips (run in a fresh process)
TRAIN_FROM_HUB = '''
import hashlib
import numpy as np
import torch
from datasets import load_dataset
from huggingface_hub import DatasetCard
from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer
from hf_w2s.data.images import pixel_values_from_images
from hf_w2s.modeling import build_model, tiny_image_processor

def pull(repo):
    ds = load_dataset(repo, split="train")
    card = DatasetCard.load(repo, repo_type="dataset")
    return ds, {
        "weak_logits": list(ds["weak_logits"]), "weak_label": list(ds["weak_label"]),
        "weak_confidence": list(ds["weak_confidence"]), "label": list(ds["label"]),
        "names": ds.features["weak_label"].names,
        "images": [hashlib.sha256(np.asarray(im).tobytes()).hexdigest() for im in ds["image"]],
        "card_data": card.data.to_dict(), "card_text": card.text,
    }

def train_student(repo, ds, output_dir):
    """A student whose id2label is in another order (3, 4, ..., 9, 0, 1, 2), trained from the Hub id; agreement is
    measured by name."""
    processor = tiny_image_processor(8)
    names = [str(i) for i in range(10)]
    student = build_model("resnet", names[3:] + names[:3], image_size=8, width=8, depth=1, seed=0)
    pixel_values = pixel_values_from_images(ds["image"], processor).float()
    weak_names = [names[k] for k in ds["weak_label"]]

    def agreement():
        with torch.no_grad():
            pred = student(pixel_values=pixel_values).logits.argmax(-1).tolist()
        return float(np.mean([student.config.id2label[p] == w for p, w in zip(pred, weak_names)]))

    before = agreement()
    args = WeakToStrongConfig(
        output_dir=output_dir, per_device_train_batch_size=32, num_train_epochs=10, learning_rate=1e-2,
        use_cpu=True, report_to="none", save_strategy="no", logging_strategy="no", seed=0, disable_tqdm=True,
    )
    trainer = WeakToStrongTrainer(model=student, args=args, train_dataset=repo, processing_class=processor)
    result = trainer.train()
    return {"before": before, "after": agreement(), "train_loss": result.training_loss,
            "trained_names": trainer.train_dataset.features["weak_label"].names}
'''


#: the resumable push: the labelled 200 rows in 4 Parquet shards, one commit each, then the card
PUSH_SHARDS = 4


@pytest.fixture(scope="module")
def pushed(local_hub, assets, tmp_path_factory):
    """One client process: publish a weak model and an image dataset, label (twice: the second run is cached), push
    the weak labels, then push them in 4 shards to a repo whose server fails the second commit, and push again."""
    repos = {name: local_hub.new_repo_id(name) for name in ("weak-linear", "digits", "weak-labels", "broken")}
    kept = tmp_path_factory.mktemp("kept") / "copy"
    commit_path = f"/api/datasets/{repos['broken']}/commit/main"
    # the server fails the second commit to the "broken" repo, once: the first shard lands, the second does not
    rule = local_hub.fail("POST", commit_path, status=503, message="the local hub is down for maintenance", after=1,
                          times=1)
    try:
        run = local_hub.run_python(f'''
            from datasets import load_from_disk
            from transformers import AutoImageProcessor, AutoModelForImageClassification
            from hf_w2s import (WeakLabelsPushError, label_dataset, load_image_dataset, load_weak_model,
                                push_weak_labels, weak_label_accuracy)

            # publish the ingredients: a weak model and an image dataset
            AutoModelForImageClassification.from_pretrained("{assets / 'weak'}").push_to_hub("{repos['weak-linear']}")
            AutoImageProcessor.from_pretrained("{assets / 'weak'}").push_to_hub("{repos['weak-linear']}")
            load_from_disk("{assets / 'images'}").push_to_hub("{repos['digits']}")

            weak = load_weak_model("{repos['weak-linear']}")
            calls = []
            weak.model.register_forward_hook(lambda *_: calls.append(1))
            labelled = label_dataset(load_image_dataset("{repos['digits']}"), weak, batch_size=64)
            first = len(calls)
            again = label_dataset(load_image_dataset("{repos['digits']}"), weak, batch_size=50)
            push_weak_labels(labelled, "{repos['weak-labels']}", weak_model=weak, source_dataset="{repos['digits']}",
                             source_split="train", local_dir="{kept}")
            in_shards = dict(weak_model=weak, max_shard_size=labelled._estimate_nbytes() // {PUSH_SHARDS - 1},
                             shards_per_commit=1)
            try:
                push_weak_labels(labelled, "{repos['broken']}", **in_shards)
                failure = None
            except WeakLabelsPushError as err:
                failure = {{"message": str(err), "local_dir": err.local_dir,
                            "kept_logits": list(load_from_disk(err.local_dir)["weak_logits"])}}
            emit({{"resuming": True}})
            push_weak_labels(labelled, "{repos['broken']}", **in_shards)  # the same call again: it resumes
            emit({{
                "first": first, "second": len(calls) - first, "same": again._fingerprint == labelled._fingerprint,
                "identity": weak.identity, "accuracy": weak_label_accuracy(labelled),
                "weak_logits": list(labelled["weak_logits"]), "weak_label": list(labelled["weak_label"]),
                "weak_confidence": list(labelled["weak_confidence"]), "failure": failure,
            }})
        ''')
    finally:
        local_hub.faults.remove(rule)
    assert rule["failed"] == 1
    return {"repos": repos, "kept": kept, "out": run.result, "requests": list(local_hub.requests),
            "commit_path": commit_path}


def test_label_cache_push_load_train(local_hub, assets, pushed, tmp_path):
    out, repos = pushed["out"], pushed["repos"]
    weak_repo, images_repo, labels_repo = repos["weak-linear"], repos["digits"], repos["weak-labels"]
    weak_sha = local_hub.head(weak_repo)
    assert out["identity"] == f"hub:{weak_repo}@{weak_sha}"  # a Hub model is identified by its commit
    assert out["first"] == 4 and out["second"] == 0 and out["same"]  # 200 rows / 64: computed once, then cached
    assert out["accuracy"] > 0.8

    files = local_hub.files(labels_repo, "dataset")
    assert "README.md" in files and any(p.startswith("data/train-") and p.endswith(".parquet") for p in files)
    assert (pushed["kept"] / "state.json").is_file()

    pulled = local_hub.run_python(TRAIN_FROM_HUB + textwrap.dedent(f'''
        ds, data = pull("{labels_repo}")
        data["student"] = train_student("{labels_repo}", ds, "{tmp_path / 'student'}")
        emit(data)
    ''')).result

    # values identical after the round trip through parquet on the Hub, in a process that never saw them
    assert pulled["weak_logits"] == out["weak_logits"]
    assert pulled["weak_label"] == out["weak_label"]
    assert pulled["weak_confidence"] == out["weak_confidence"]
    assert pulled["names"] == NAMES
    source = load_from_disk(str(assets / "images"))
    assert pulled["label"] == list(source["label"])
    assert pulled["images"] == [hashlib.sha256(np.asarray(im).tobytes()).hexdigest() for im in source["image"]]

    card = pulled["card_data"]
    assert card["weak_model"] == weak_repo and card["weak_model_revision"] == weak_sha
    assert card["label_names"] == NAMES and card["weak_accuracy"] == pytest.approx(out["accuracy"], abs=1e-6)
    assert card["source_datasets"] == [images_repo]
    assert {"hf_w2s", "weak-to-strong", "weak-labels"} <= set(card["tags"])
    assert card["task_categories"] == ["image-classification"]
    assert card["configs"][0]["data_files"][0]["split"] == "train"  # what push_to_hub wrote is kept
    assert len(card["weak_model_sha256"]) == 64
    text = pulled["card_text"]
    assert f"hf-w2s label --weak-model {weak_repo} --dataset {images_repo}" in text
    assert f"--revision {weak_sha}" in text and f'train_dataset="{labels_repo}"' in text
    assert f"{out['accuracy']:.4f}" in text

    student = pulled["student"]
    # a 10-cycle, not a reversal: the Hub labels were reordered to the student's id2label
    assert student["trained_names"] == NAMES[3:] + NAMES[:3]
    assert student["before"] < 0.3 and student["after"] > 0.7, student
    assert np.isfinite(student["train_loss"])


def test_a_push_failing_midway_resumes_without_uploading_its_shards_again(local_hub, pushed):
    """4 shards, one commit each: the second commit fails (503), the push raises with a local copy; the same call
    again uploads only the shards the failed push never sent and commits those not committed, then the card."""
    out, repo = pushed["out"], pushed["repos"]["broken"]
    failure = out["failure"]
    assert failure is not None and "while pushing the data" in failure["message"] and "503" in failure["message"]
    assert failure["local_dir"] in failure["message"] and failure["kept_logits"] == out["weak_logits"]

    start = next(i for i, r in enumerate(pushed["requests"]) if repo in r[1])  # the client pushes one thing at a time
    requests = [r for r in pushed["requests"][start:] if repo in r[1] or r[1].startswith("/lfs-upload/")]
    commits = [(i, status) for i, (method, path, status) in enumerate(requests)
               if method == "POST" and path.startswith(pushed["commit_path"])]
    failed = next(i for i, status in commits if status == 503)
    puts = [(i, path.split("?")[0]) for i, (method, path, _) in enumerate(requests) if method == "PUT"]
    before = {path for i, path in puts if i < failed}
    after = [path for i, path in puts if i > failed]
    # the failed push sent shards 1 and 2 (the second one's commit failed); the resumed push sent only 3 and 4
    assert len(before) == 2 and len(after) == PUSH_SHARDS - 2 and not before & set(after)
    # commits: shard 1, (shard 2: failed) | shard 2, shard 3, shard 4, the card — shard 1 was not committed again
    assert [status for _, status in commits] == [200, 503] + [200] * (PUSH_SHARDS - 1 + 1)

    files = local_hub.files(repo, "dataset")
    shards = sorted(p for p in files if p.endswith(".parquet"))
    assert shards == [f"data/train-{i:05d}-of-{PUSH_SHARDS:05d}.parquet" for i in range(PUSH_SHARDS)]
    card = DatasetCard(local_hub.file_bytes(repo, "README.md", "dataset").decode())
    assert card.data.weak_logits_storage == "float32" and card.data.configs
    assert all(f"`{s}` (" in card.text for s in shards)  # the card names the shards
    tables = [pq.read_table(pa.BufferReader(local_hub.file_bytes(repo, s, "dataset"))) for s in shards]
    assert [x for t in tables for x in t.column("weak_logits").to_pylist()] == out["weak_logits"]


def test_cli_from_the_shell(local_hub, assets, pushed, tmp_path):
    """``hf-w2s label`` with a Hub weak model and a save_to_disk dataset; what lands on the Hub is read back here."""
    weak_repo = pushed["repos"]["weak-linear"]
    labels_repo = local_hub.new_repo_id("cli-weak-labels")
    hf_home = tmp_path / "hf_home"
    exe = Path(sys.executable).with_name("hf-w2s")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "hf_w2s.cli"]
    out = tmp_path / "labels"
    args = ["label", "--weak-model", weak_repo, "--dataset", str(assets / "images"), "--output", str(out),
            "--push-to-hub", labels_repo, "--batch-size", "100"]
    # a user who may not write to that namespace (checked below), run at the same time on the second core
    local_hub.add_user("hf_reader_token", "reader")
    out2 = tmp_path / "labels2"
    denied_run = subprocess.Popen(
        cli + ["label", "--weak-model", weak_repo, "--dataset", str(assets / "images"), "--output", str(out2),
               "--push-to-hub", local_hub.new_repo_id("not-yours")],
        env=local_hub.env(hf_home=tmp_path / "hf_home_reader", token="hf_reader_token"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    run = subprocess.run(cli + args, env=local_hub.env(hf_home=hf_home), timeout=300, capture_output=True, text=True)
    _, denied_stderr = denied_run.communicate(timeout=300)
    assert run.returncode == 0, run.stderr
    assert "weak accuracy: " in run.stdout and f"pushed to the Hub dataset {labels_repo!r}" in run.stdout

    # the parquet on the Hub holds exactly the local copy
    local = load_from_disk(str(out))
    files = local_hub.files(labels_repo, "dataset")
    (parquet,) = [p for p in files if p.endswith(".parquet")]
    table = pq.read_table(pa.BufferReader(local_hub.file_bytes(labels_repo, parquet, "dataset")))
    assert table.column("weak_logits").to_pylist() == list(local["weak_logits"])
    assert table.column("weak_label").to_pylist() == list(local["weak_label"]) and table.num_rows == N
    card = DatasetCard(local_hub.file_bytes(labels_repo, "README.md", "dataset").decode())
    weak_sha = local_hub.head(weak_repo)
    assert card.data.weak_model == weak_repo and card.data.weak_model_revision == weak_sha
    assert card.data.weak_accuracy > 0.8 and card.data.source_datasets is None  # a local source is not public
    assert card.data.configs and card.data.dataset_info  # what Dataset.push_to_hub wrote is kept
    assert f"hf-w2s label --weak-model {weak_repo} --dataset {assets / 'images'} --output {out}" in card.text
    assert f"--push-to-hub {labels_repo}" in card.text and f"--revision {weak_sha}" in card.text

    # the user who may not write to that namespace: the push fails, the local copy stays and the error says where
    assert denied_run.returncode == 1, denied_stderr
    assert f"kept at {str(out2)!r}" in denied_stderr and "403" in denied_stderr
    assert list(load_from_disk(str(out2))["weak_logits"]) == list(local["weak_logits"])


def test_cli_streams_a_hub_dataset_and_pushes_its_shards_as_they_are(local_hub, hub_token, pushed, tmp_path, capsys):
    """``hf-w2s label --streaming`` on the Hub dataset: Parquet shards of 64 rows written into --output as they
    complete, a card naming them and the commit the stream read, pushed as they are; the labels are those of the
    map-style labelling (the same batches of 64)."""
    repos = pushed["repos"]
    labels_repo = local_hub.new_repo_id("streamed-weak-labels")
    out = tmp_path / "streamed"
    code, _, err = run_cli(["label", "--weak-model", repos["weak-linear"], "--dataset", repos["digits"],
                            "--streaming", "--shard-size", "64", "--batch-size", "64", "--output", str(out),
                            "--push-to-hub", labels_repo], capsys)
    assert code == 0, err[-3000:]
    names = [f"train-00000-of-00001-{i:05d}.parquet" for i in range(4)]  # 64, 64, 64 and 8 rows
    assert sorted(p.name for p in (out / "data").iterdir()) == names
    digits_sha = local_hub.head(repos["digits"], "dataset")
    remote = local_hub.files(labels_repo, "dataset")
    for text in ((out / "README.md").read_text(), local_hub.file_bytes(labels_repo, "README.md", "dataset").decode()):
        card = DatasetCard(text)
        assert card.data.source_revision == digits_sha and card.data.source_datasets == [repos["digits"]]
        assert card.data.weak_logits_storage == "float32" and f"revision `{digits_sha}`" in card.text
        assert all(f"`data/{n}` ({r} rows)" in card.text for n, r in zip(names, (64, 64, 64, 8)))
    for name in names:  # pushed as they are: the same bytes
        assert remote[f"data/{name}"]["sha256"] == hashlib.sha256((out / "data" / name).read_bytes()).hexdigest()
    tables = [pq.read_table(out / "data" / n) for n in names]
    assert [x for t in tables for x in t.column("weak_logits").to_pylist()] == pushed["out"]["weak_logits"]
