"""One test per row of the mechanisms' sections of docs/bad_input.md (issue 29: preflight, data identity, where a run
writes, run identity on rerun, what is said is what runs, messages in the user's words), each through a command
(``hf_w2s.cli.main``) and through the API, matching the message quoted there (tests/test_bad_input.py checks that
every row has its test). ``no_compute`` (from tests/test_bad_input.py) makes any training an error: the preflight's
trainers are built, never trained. Longer than ~400 lines because the table is: one short test per row.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import testing_utils
import torch
from datasets import ClassLabel, Dataset, Features, Image, concatenate_datasets, load_from_disk
from test_bad_input import cli, config, dataset, documented, no_compute, raises, student, trainer  # noqa: F401
from testing_utils import processor, run_cli, saved_splits, tiny_model, train_argv

from hf_w2s import WeakToStrongTrainer
from hf_w2s.data.packaged import load_sklearn_digits

DIGITS = [str(i) for i in range(10)]


def api(out, *extra, dataset_="hf_w2s:sklearn_digits"):
    """The same run through the API: ``build_experiment`` of ``hf-w2s train``'s words (an ``Experiment``)."""
    return testing_utils.experiment({}, argv=train_argv(out, *extra, dataset=dataset_)[1:])


def trained_nothing(out: Path) -> bool:
    return not (out / "weak").exists() and not (out / "runs").exists() and not (out / "student").exists()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Checkpoints a user gives by mistake: a 16-px ViT over the digits' classes saved with a 28-px processor, a BERT
    text classifier, a linear classifier whose model.safetensors is cut short."""
    from transformers import BertConfig, BertForSequenceClassification, ViTConfig, ViTForImageClassification

    root = tmp_path_factory.mktemp("models")
    labels = {"id2label": dict(enumerate(DIGITS)), "label2id": {n: i for i, n in enumerate(DIGITS)}}
    ViTForImageClassification(ViTConfig(image_size=16, patch_size=4, num_channels=1, hidden_size=8,
                                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                                        **labels)).save_pretrained(root / "vit16")
    processor(1, 28).save_pretrained(root / "vit16")
    BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=8)).save_pretrained(root / "bert")
    tiny_model("linear", DIGITS).save_pretrained(root / "cut")
    weights = root / "cut" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    return root


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """400 digits saved (the images), a weak model, and what ``hf-w2s label`` wrote from them."""
    root = tmp_path_factory.mktemp("labelled")
    load_sklearn_digits().select(range(400)).save_to_disk(str(root / "digits"))
    tiny_model("linear", DIGITS, seed=3).save_pretrained(root / "weak")
    processor(1).save_pretrained(root / "weak")
    code, _, err = run_cli(["label", "--weak_model", root / "weak", "--dataset", root / "digits", "--output",
                            root / "labels"])
    assert code == 0, err
    return root


GIVEN = ["--split_sizes", "0", "300", "50", "50"]  # validation and test carved; the strong split is the weak labels'


def given(path) -> list[str]:
    return ["--weak_supervisors", f"[{{name: given, weak_labels: '{path}'}}]", *GIVEN]


# -- preflight -------------------------------------------------------------------------------------------------------


def refused_before_training(tmp_path, capsys, row: str, *extra) -> str:
    """``hf-w2s train`` with ``extra`` refused with ``row``'s message before anything trained, and the same run
    through the API (``Experiment.run``); returns the command's error line."""
    code, line = cli(capsys, *train_argv(tmp_path / "o", *extra))
    assert code == 2 and documented(row, line) and trained_nothing(tmp_path / "o"), line
    with raises(row):
        api(tmp_path / "a", *extra).run()
    return line


@pytest.mark.usefixtures("no_compute")
def test_preflight_student(tmp_path, capsys, models):  # found before the weak supervisor trained
    line = refused_before_training(tmp_path, capsys, "preflight-student", "--model_name_or_path", models / "vit16")
    assert "Input image size (28*28)" in line


@pytest.mark.usefixtures("no_compute")
def test_preflight_weak(tmp_path, capsys, models):
    line = refused_before_training(tmp_path, capsys, "preflight-weak", "--weak_supervisors",
                                   f"{{name: vit, model: '{models / 'vit16'}'}}")
    assert "weak supervisor 'vit'" in line


@pytest.mark.usefixtures("no_compute")
def test_preflight_lora(tmp_path, capsys):
    line = refused_before_training(tmp_path, capsys, "preflight-lora", "--use_peft", "true", "--lora_target_modules",
                                   "nope")
    assert "['nope']" in line


@pytest.mark.usefixtures("no_compute")
def test_preflight_trainable_blocks(tmp_path, capsys):
    line = refused_before_training(tmp_path, capsys, "preflight-trainable-blocks", "--model_name_or_path",
                                   "tiny:resnet,width=4,depth=1", "--student_mode", "last_blocks", "--trainable_blocks",
                                   "100")
    assert "has 1 blocks" in line


@pytest.mark.usefixtures("no_compute")
def test_preflight_metric(tmp_path, capsys):
    line = refused_before_training(tmp_path, capsys, "preflight-metric", "--metric_for_best_model", "eval_acc",
                                   "--eval_strategy", "epoch", "--save_strategy", "epoch", "--load_best_model_at_end",
                                   "true", "--max_steps", "-1", "--num_train_epochs", "1")
    assert "'eval_accuracy'" in line
    # the trainer itself, when it is built: its metrics, its loss and the loss's components are what there is
    best = dict(load_best_model_at_end=True, eval_strategy="steps", save_strategy="steps")
    with raises("preflight-metric"):
        trainer(tmp_path, args=config(tmp_path, metric_for_best_model="eval_acc", **best), eval_dataset=dataset())
    for fine in ("eval_accuracy", "loss", "eval_kd"):
        trainer(tmp_path, args=config(tmp_path, metric_for_best_model=fine, **best), eval_dataset=dataset())


@pytest.mark.usefixtures("no_compute")
def test_not_an_image_model(tmp_path, capsys, models):
    from hf_w2s.modeling import load_image_classifier

    code, line = cli(capsys, *train_argv(tmp_path / "o", "--model_name_or_path", models / "bert"))
    assert code == 2 and documented("not-an-image-model", line) and "'bert' model" in line
    assert trained_nothing(tmp_path / "o")
    code, line = cli(capsys, "demo", "--quick", "--model_name_or_path", models / "bert", "--output_dir", tmp_path / "d")
    assert code == 2 and documented("not-an-image-model", line) and trained_nothing(tmp_path / "d")
    with raises("not-an-image-model"):
        load_image_classifier(str(models / "bert"), DIGITS)


def test_weak_diverged(tmp_path, capsys):
    diverges = "{name: w, model: 'tiny:linear,width=4', num_train_epochs: 1, learning_rate: 1.0e+30%s}"
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--weak_supervisors", diverges % ", online: true"))
    assert code == 2 and documented("weak-diverged", line) and "weak supervisor 'w'" in line, line
    assert (tmp_path / "o" / "weak").exists() and not (tmp_path / "o" / "runs").exists()  # no student trained
    with raises("weak-diverged"):
        api(tmp_path / "a", "--weak_supervisors", diverges % "").run()
    assert not (tmp_path / "a" / "runs").exists()


@pytest.mark.usefixtures("no_compute")
def test_empty_split(tmp_path, capsys):
    from hf_w2s.data.loading import load_image_dataset

    digits = load_sklearn_digits()
    try:  # datasets 5 saves a split of 0 rows without a data file, which it then cannot load
        data = saved_splits(tmp_path / "data", train=digits.select(range(90)), test=digits.select([]))
    except ZeroDivisionError:  # datasets 4.0 cannot save an empty split of images at all: no such folder exists
        pytest.skip("this datasets cannot save an empty split of images (ZeroDivisionError in save_to_disk)")
    empty = ["--test_split", "test", "--split_sizes", "20", "30", "10", "0"]
    code, line = cli(capsys, *train_argv(tmp_path / "o", *empty, dataset=data))  # datasets: IndexError
    assert code == 2 and documented("empty-split", line) and "split 'test' is empty" in line
    assert trained_nothing(tmp_path / "o")
    with raises("empty-split"):
        load_image_dataset(str(data), "train")


@pytest.mark.usefixtures("no_compute")
def test_also_empty_split_a_split_the_run_reads_left_empty(tmp_path):
    from hf_w2s.experiment.given_labels import check_splits

    digits = load_sklearn_digits()  # refused before the splits are saved
    exp = api(tmp_path / "a")
    with pytest.raises(ValueError, match=r"the validation split is empty \(0 rows\), but every run evaluates on it"):
        check_splits(exp, {"weak_train": digits.select(range(5)), "strong_train": digits.select(range(5)),
                           "validation": digits.select([]), "test": digits.select(range(5))})


def test_label_preflight(tmp_path, capsys, models, labelled):
    from hf_w2s.data.weak_labels import load_weak_model
    from hf_w2s.experiment.preflight import check_labelling

    code, line = cli(capsys, "label", "--weak_model", models / "vit16", "--dataset", labelled / "digits", "--output",
                     tmp_path / "l")
    assert code == 2 and documented("label-preflight", line) and not (tmp_path / "l").exists()
    with raises("label-preflight"):
        check_labelling(load_weak_model(models / "vit16"), load_from_disk(str(labelled / "digits")))


# -- data identity ---------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_compute")
def test_weak_labels_by_position(tmp_path, capsys, labelled):
    ours = load_from_disk(str(labelled / "labels"))
    shuffled = ours.shuffle(seed=2).flatten_indices().select_columns(["weak_logits", "weak_label", "image_hash"])
    concatenate_datasets([ours.select_columns(["image", "label"]), shuffled], axis=1).save_to_disk(str(tmp_path / "w"))
    code, line = cli(capsys, *train_argv(tmp_path / "o", *given(tmp_path / "w"), dataset=labelled / "digits"))
    assert code == 2 and documented("weak-labels-by-position", line) and trained_nothing(tmp_path / "o")
    assert "of 400 rows" in line
    # the trainer refuses the same dataset: its weak logits are not its images'
    wrong = load_from_disk(str(tmp_path / "w")).select(range(8))
    with raises("weak-labels-by-position"):
        trainer(tmp_path, wrong, model=student(names=DIGITS))


@pytest.mark.usefixtures("no_compute")
def test_weak_labels_unmatched(tmp_path, capsys, labelled):
    from hf_w2s.data.identity import join_weak_labels

    other = load_sklearn_digits().select(range(400, 450))  # images that are not in the dataset
    load_from_disk(str(labelled / "labels")).select(range(20)).remove_columns("image").save_to_disk(
        str(tmp_path / "ok"))
    from hf_w2s.data.weak_labels import label_dataset

    weak = tiny_model("linear", DIGITS, seed=3)
    label_dataset(other, weak, processor(1)).remove_columns(["image", "label"]).save_to_disk(str(tmp_path / "w"))
    code, line = cli(capsys, *train_argv(tmp_path / "o", *given(tmp_path / "w"), dataset=labelled / "digits"))
    assert code == 2 and documented("weak-labels-unmatched", line) and "50 of 50 rows" in line, line
    with raises("weak-labels-unmatched"):
        join_weak_labels(load_from_disk(str(labelled / "digits")), load_from_disk(str(tmp_path / "w")))


@pytest.mark.usefixtures("no_compute")
def test_weak_labels_no_identity(tmp_path, capsys, labelled):
    from hf_w2s.data.identity import row_identities

    load_from_disk(str(labelled / "labels")).select_columns(["weak_logits"]).save_to_disk(str(tmp_path / "w"))
    code, line = cli(capsys, *train_argv(tmp_path / "o", *given(tmp_path / "w"), dataset=labelled / "digits"))
    assert code == 2 and documented("weak-labels-no-identity", line) and trained_nothing(tmp_path / "o")
    with raises("weak-labels-no-identity"):
        row_identities(load_from_disk(str(tmp_path / "w")))


def test_weak_labels_given(tmp_path, capsys, labelled):
    from hf_w2s.data.splits import example_hashes
    from hf_w2s.data.weak_labels import weak_logits_array

    labels = load_from_disk(str(labelled / "labels"))
    by_image = dict(zip(labels["image_hash"], weak_logits_array(labels)))
    # hf-w2s label's output with its images, as it was written: the strong split is its rows, joined by hash
    code, out, err = run_cli(train_argv(tmp_path / "o", *given(labelled / "labels"), dataset=labelled / "digits"),
                             capsys)
    assert code == 0, err
    notice = next(line for line in out.splitlines() if "weak-labelled rows" in line)
    assert documented("weak-labels-given", notice) and notice.startswith("notice: 100 of the 400")
    # through the API: the same labels shuffled and without their images give each image its own logits
    labels.shuffle(seed=5).flatten_indices().remove_columns(["image", "label"]).save_to_disk(str(tmp_path / "w"))
    exp = api(tmp_path / "a", *given(tmp_path / "w"), dataset_=labelled / "digits")
    exp.run()
    sup = exp.supervisors.of(exp.config.weak_supervisors[0]).train_dataset
    assert len(sup) == 300 and len(exp.splits()["strong_train"]) == 300
    np.testing.assert_array_equal(weak_logits_array(sup), np.stack([by_image[h] for h in example_hashes(sup)]))
    # the supervision is the same whichever way the labels came
    first = [r for r in map(json.loads, (tmp_path / "o" / "results.jsonl").read_text().splitlines())]
    again = [r for r in map(json.loads, (tmp_path / "a" / "results.jsonl").read_text().splitlines())]
    assert [r["supervision_accuracy"] for r in first if r["kind"] == "weak"] == [
        r["supervision_accuracy"] for r in again if r["kind"] == "weak"]
    # the default split sizes ask for 2,000 validation and test examples of these 400: said in those words
    argv = train_argv(tmp_path / "d", *given(labelled / "labels")[:2], dataset=labelled / "digits")
    code, line = cli(capsys, *[a for i, a in enumerate(argv) if i not in range(argv.index("--split_sizes"),
                                                                                 argv.index("--split_sizes") + 5)])
    assert code == 2 and "(split_sizes[1] is not used)" in line and "2000 examples, more than it has" in line, line


# -- where a run writes ----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_compute")
def test_output_holds_input(tmp_path, capsys, labelled):
    data, weak = labelled / "digits", labelled / "weak"
    student_dir = tmp_path / "exp" / "student"  # an experiment's saved student, started from
    tiny_model("linear", DIGITS).save_pretrained(student_dir)
    before = sorted(p.name for p in data.iterdir())
    (tmp_path / "exp" / "w2s_config.yaml").write_text("command: experiment\n")  # the experiment's folder
    cases = [(data, [], "is the dataset"), (data.parent, [], "contains the dataset"),
             (weak / "out", ["--weak_supervisors", f"{{name: w, model: '{weak}'}}"], "is inside the weak supervisor"),
             (tmp_path / "exp", ["--model_name_or_path", student_dir], "contains the student model"),
             (tmp_path / "exp" / "again", ["--model_name_or_path", student_dir], "is inside the output of the hf_w2s "
              f"run '{tmp_path / 'exp'}', which holds the student model")]
    for out, extra, relation in cases:
        code, line = cli(capsys, *train_argv(out, *extra, dataset=data))
        assert code == 2 and documented("output-holds-input", line) and relation in line, line
        with raises("output-holds-input"):
            api(out, *extra, dataset_=data)
    assert sorted(p.name for p in data.iterdir()) == before and not (weak / "out").exists()
    assert not (tmp_path / "exp" / "again").exists()


def test_label_output_weak_model(tmp_path, capsys, labelled):
    from hf_w2s.scripts.label import LabelConfig, run

    weak = tmp_path / "weak"
    shutil.copytree(labelled / "weak", weak)
    before = {p.name: p.read_bytes() for p in weak.iterdir()}
    for extra in ([], ["--overwrite"]):
        code, line = cli(capsys, "label", "--weak_model", weak, "--dataset", labelled / "digits", "--output", weak,
                         *extra)
        assert code == 2 and documented("label-output-weak-model", line)
    with raises("label-output-weak-model"):
        run(LabelConfig(weak_model=str(weak), dataset=str(labelled / "digits"), output=str(weak), overwrite=True))
    assert {p.name: p.read_bytes() for p in weak.iterdir()} == before  # the weak model is whole


def test_label_overwrite_not_labels(tmp_path, capsys, labelled):
    from hf_w2s.scripts.label import LabelConfig, run

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, line = cli(capsys, "label", "--weak_model", labelled / "weak", "--dataset", labelled / "digits", "--output",
                     mine, "--overwrite")
    assert code == 2 and documented("label-overwrite-not-labels", line)
    with raises("label-overwrite-not-labels"):
        run(LabelConfig(weak_model=str(labelled / "weak"), dataset=str(labelled / "digits"), output=str(mine),
                        overwrite=True))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "mine"


@pytest.mark.usefixtures("no_compute")
def test_output_dir_empty(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (train_argv(""), ["demo", "--output_dir", ""],
                 ["label", "--weak_model", "w", "--dataset", "hf_w2s:sklearn_digits", "--output", ""]):
        code, line = cli(capsys, *argv)
        assert code == 2 and documented("output-dir-empty", line), line
    with raises("output-dir-empty"):
        config(tmp_path, output_dir="")
    assert list(tmp_path.iterdir()) == []  # nothing in the working directory


@pytest.mark.usefixtures("no_compute")
def test_output_dir_another_run(tmp_path, capsys):
    import yaml

    out = tmp_path / "exp"
    api(out).claim_output_dir()  # the folder of a run of this very configuration ...
    claimed = yaml.safe_load((out / "w2s_config.yaml").read_text())
    (out / "w2s_config.yaml").write_text(yaml.safe_dump({**claimed, "command": "experiment"}))  # ... an experiment's
    (out / "results.jsonl").write_text(json.dumps({"key": "k", "kind": "w2s"}) + "\n")  # that finished a run
    code, line = cli(capsys, *train_argv(out))
    assert code == 2 and documented("output-dir-another-run", line) and "an hf-w2s experiment" in line
    with raises("output-dir-another-run", FileExistsError):  # through the API: a run of other data
        api(out, "--split_seed", "3").run()
    assert sorted(p.name for p in out.iterdir()) == ["results.jsonl", "w2s_config.yaml"]


# -- run identity on rerun -------------------------------------------------------------------------------------------


SAVES = ["--max_steps", "2", "--save_strategy", "steps", "--save_steps", "1"]


def test_rerun_unfinished(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    assert cli(capsys, *train_argv(out, *SAVES)) == (0, "")
    results = out / "results.jsonl"
    lines = results.read_text().splitlines()
    results.write_text("\n".join(r for r in lines if json.loads(r)["kind"] != "w2s") + "\n")  # killed before its record
    run_dir = out / "runs" / "weak" / "kd" / "seed0"
    checkpoints = {p.name: (p / "trainer_state.json").read_text() for p in run_dir.glob("checkpoint-*")}
    with monkeypatch.context() as m:
        m.setattr("hf_w2s.trainer.fit.fit", lambda *a, **k: pytest.fail("a preflight or a run started"))
        code, line = cli(capsys, *train_argv(out, *SAVES))
        assert code == 2 and documented("rerun-unfinished", line) and "runs/weak/kd/seed0" in line, line
        with raises("rerun-unfinished"):
            api(out, *SAVES).run()
    assert {p.name: (p / "trainer_state.json").read_text() for p in run_dir.glob("checkpoint-*")} == checkpoints
    code, printed, _ = run_cli(train_argv(out, *SAVES, "--overwrite_output_dir", "true"), capsys)
    assert code == 0 and "starting" in printed and "again from step 0" in printed
    assert len(results.read_text().splitlines()) == len(lines)


def test_trainer_unfinished(tmp_path):
    from transformers import TrainerCallback

    class Killed(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt

    args = config(tmp_path, max_steps=3, save_strategy="steps", save_steps=1)
    t = trainer(tmp_path, args=args, callbacks=[Killed()])
    with pytest.raises(KeyboardInterrupt):
        t.train()
    out = Path(args.output_dir)
    saved = sorted(p.name for p in out.glob("checkpoint-*"))
    assert saved == ["checkpoint-1"]  # killed at step 2, before its save
    with raises("trainer-unfinished"):
        trainer(tmp_path, args=args).train()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == saved
    t = trainer(tmp_path, args=config(tmp_path, max_steps=3, save_strategy="steps", save_steps=1,
                                      overwrite_output_dir=True))
    t.train()  # the second way out: started again
    assert t.state.global_step == 3


def test_resume_finished(tmp_path, capsys, caplog):
    # the trainer: a finished run resumed trains no step and rewrites nothing
    args = config(tmp_path, max_steps=2, save_strategy="steps", save_steps=1)
    trainer(tmp_path, args=args).train()
    out = Path(args.output_dir)
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with caplog.at_level(logging.WARNING, logger="hf_w2s"):
        t = trainer(tmp_path, args=config(tmp_path, max_steps=2, save_strategy="steps", save_steps=1,
                                          learning_rate=0.5))
        t.train(resume_from_checkpoint=True)
    assert t.state.global_step == 2 and any(documented("resume-finished", r.getMessage()) for r in caplog.records)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == files
    # the one schema: the finished run says so; its student, card, config and checkpoints are left as they were
    run = tmp_path / "run"
    assert cli(capsys, *train_argv(run, *SAVES)) == (0, "")
    kept = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and "report" not in p.parts}
    code, printed, _ = run_cli(train_argv(run, *SAVES, "--resume_from_checkpoint", "true"), capsys)
    line = next(line for line in printed.splitlines() if "is finished" in line)
    assert code == 0 and documented("resume-finished", line) and "(results.jsonl records all 2 of its runs)" in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and "report" not in p.parts} == kept
    assert sorted(p.name for p in (run / "runs/weak/kd/seed0").glob("checkpoint-*")) == ["checkpoint-1",
                                                                                         "checkpoint-2"]


# -- what is said is what runs ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_compute")
def test_noise_not_applied(tmp_path, capsys):
    noise = ["--weak_supervisors", "{name: n, source: noisy_labels, label_noise_rate: 0.3}", "--losses",
             "ground_truth"]
    code, line = cli(capsys, *train_argv(tmp_path / "o", *noise))
    assert code == 2 and documented("noise-not-applied", line) and not (tmp_path / "o").exists()
    with raises("noise-not-applied"):
        api(tmp_path / "a", *noise)


@pytest.mark.usefixtures("no_compute")
def test_weak_option_ignored(tmp_path, capsys):
    from hf_w2s.experiment.config import WeakSupervisorConfig

    code, line = cli(capsys, *train_argv(tmp_path / "o", "--weak_supervisors",
                                         "{name: n, source: noisy_labels, label_noise_rate: 0.3, num_train_epochs: 3}"))
    assert code == 2 and documented("weak-option-ignored", line) and "['num_train_epochs']" in line
    with raises("weak-option-ignored") as err:
        WeakSupervisorConfig.parse({"name": "m", "model": "some/model", "train_size": 10, "augment": True})
    assert "['augment', 'train_size'] do not apply to source model" in str(err.value)


@pytest.mark.usefixtures("no_compute")
def test_precision(tmp_path, capsys):
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--fp16", "true"))
    assert code == 2 and documented("precision", line) and not (tmp_path / "o").exists()
    with raises("precision"):
        trainer(tmp_path, args=config(tmp_path, fp16=True))


@pytest.mark.usefixtures("no_compute")
def test_list_scalar(tmp_path, capsys):
    from hf_w2s.experiment.config import ExperimentConfig

    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: hf_w2s:sklearn_digits\nlosses: weak_hard\nseeds: 0\nplots: false\n")
    code, printed, _ = run_cli(["experiment", "--config", cfg, "--dry_run", "true", "--output_dir", tmp_path / "o"],
                               capsys)
    assert code == 0 and "1 loss(es) x 1 seed(s)" in printed and "  weak_hard: weak_hard" in printed
    with raises("list-scalar"):
        ExperimentConfig(losses="weak_hard")


def test_metrics_not_numbers(tmp_path):
    for value in ("high", np.array([0.5, 0.7])):
        t = trainer(tmp_path, compute_metrics=lambda p, v=value: {"acc": v}, eval_dataset=dataset())
        with raises("metrics-not-numbers", TypeError) as err:
            t.evaluate()
        assert "'acc'" in str(err.value)
    t = trainer(tmp_path, compute_metrics=lambda p: {"acc": np.float32(0.5), "n": 3}, eval_dataset=dataset())
    metrics = t.evaluate()
    assert metrics["eval_acc"] == 0.5 and metrics["eval_n"] == 3  # numbers of any kind are numbers


@pytest.mark.usefixtures("no_compute")
def test_one_class(tmp_path, capsys):
    one = Dataset.from_dict({"image": testing_utils.images(40), "label": [0] * 40},
                            features=Features({"image": Image(), "label": ClassLabel(names=["only"])}))
    one.save_to_disk(str(tmp_path / "one"))
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--split_sizes", "5", "10", "5", "5",
                                         dataset=tmp_path / "one"))
    assert code == 2 and documented("one-class", line) and "['only']" in line
    with raises("one-class"):
        trainer(tmp_path, testing_utils.image_dataset(6, names=["only"]), model=student(names=["only"]))


@pytest.mark.usefixtures("no_compute")
def test_classes_absent(tmp_path, capsys, caplog):
    from hf_w2s.data.config import DataConfig, build_splits

    code, printed, _ = run_cli(train_argv(tmp_path / "o"), capsys)  # stops where training would start
    notice = next(line for line in printed.splitlines() if "has no example of" in line)
    assert code == 1 and documented("classes-absent", notice)
    assert notice == ("notice: the weak_train split of hf_w2s:sklearn_digits has no example of 2 of the 10 classes "
                      "(['7', '8']): what trains on it cannot learn them.")
    with caplog.at_level(logging.WARNING, logger="hf_w2s"):
        build_splits(DataConfig(dataset="hf_w2s:sklearn_digits", split_sizes=[20, 30, 10, 20]))
        trainer(tmp_path, dataset().filter(lambda y: y != 2, input_columns="label"))
    said = [r.getMessage() for r in caplog.records if "has no example of" in r.getMessage()]
    assert any("the training dataset has no example of 1 of the 3 classes (['owl'])" in m for m in said), said
    assert all(documented("classes-absent", m) for m in said) and len(said) == 2


# -- messages in the user's words ------------------------------------------------------------------------------------


def test_datasetdict_train(tmp_path):
    from datasets import DatasetDict

    with raises("datasetdict-train", TypeError) as err:
        trainer(tmp_path, DatasetDict({"train": dataset(), "test": dataset()}))
    assert "dataset['train']" in str(err.value)


def test_weak_model_argument(tmp_path):
    with raises("weak-model-argument", TypeError):
        trainer(tmp_path, dataset().remove_columns("weak_logits"), weak_model=3)
    weak = tmp_path / "weak"
    student(seed=1).save_pretrained(weak)
    processor(1).save_pretrained(weak)
    t = trainer(tmp_path, dataset().remove_columns("weak_logits"), weak_model=str(weak))  # a path: loaded
    t.train()
    assert t.state.global_step == 1 and isinstance(t.weak_model, torch.nn.Module)
    with pytest.raises(ValueError, match=r"^weak_model '.*nowhere/weak' does not exist \(no such local folder"):
        trainer(tmp_path, dataset().remove_columns("weak_logits"), weak_model=str(tmp_path / "nowhere" / "weak"))


def test_empty_dataset(tmp_path):
    with raises("empty-dataset") as err:
        trainer(tmp_path, dataset().select([]))
    assert str(err.value).startswith("train_dataset is empty")
    with raises("empty-dataset") as err:
        trainer(tmp_path, eval_dataset=dataset().select([]))
    assert str(err.value).startswith("eval_dataset is empty")


@pytest.mark.usefixtures("no_compute")
def test_truncated_weights(tmp_path, capsys, models, labelled):
    from hf_w2s.modeling import load_image_classifier

    for argv in (train_argv(tmp_path / "o", "--model_name_or_path", models / "cut"),
                 ["label", "--weak_model", models / "cut", "--dataset", labelled / "digits", "--output",
                  tmp_path / "l"]):
        code, line = cli(capsys, *argv)
        assert code == 2 and documented("truncated-weights", line), line
    with raises("truncated-weights"):
        load_image_classifier(str(models / "cut"), DIGITS)


def test_all_frozen(tmp_path):
    model = student()
    model.requires_grad_(False)
    with raises("all-frozen"):
        trainer(tmp_path, model=model)
    assert isinstance(trainer(tmp_path, model=student()), WeakToStrongTrainer)  # a trainable student is fine
