"""One test per row of docs/bad_input.md (``test_<id>``), each matching the message quoted there (the rows of its
sections on the mechanisms of issue 29 are tested in tests/test_bad_input_mechanisms.py).

Commands run in this process (``hf_w2s.cli.main``, :func:`testing_utils.run_cli`); the one schema's rows at the
smallest size (:func:`testing_utils.train_argv`); the ``no_compute`` fixture makes any training an error, so a test
that uses it shows that the input was refused before any compute. Longer than ~400 lines because the table is: one
short test per row, in the table's order.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import testing_utils
import torch
from datasets import ClassLabel, Dataset, Features, Image, List, Value
from testing_utils import (
    error_line,
    image_dataset,
    image_rows,
    images,
    png,
    processor,
    remote_code_checkpoint,
    require_kornia,
    run_cli,
    saved_splits,
    tiny_model,
    train_argv,
    training_args,
)

from hf_w2s import WeakToStrongTrainer
from hf_w2s.data.packaged import load_sklearn_digits

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_input.md"
NAMES = ["cat", "dog", "owl"]
DIGITS = [str(i) for i in range(10)]
SIZE = 8


def _doc_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"[a-z][a-z0-9-]*", cells[0]) and cells[0] != "id":
            rows[cells[0]] = "|".join(cells[3:]).strip().strip("`").strip()
    return rows


ROWS = _doc_rows()


def message(row: str) -> str:
    """The documented message of ``row`` as a regex (``…`` matches anything)."""
    return ".*?".join(re.escape(part) for part in ROWS[row].split("…"))


def raises(row: str, kind=ValueError):
    return pytest.raises(kind, match=re.compile(message(row), re.S))


def documented(row: str, text: str) -> bool:
    """``text`` (an error printed by a command, or an exception's message) holds the documented message of ``row``."""
    return re.search(message(row), " ".join(text.split()), re.S) is not None


def cli(capsys, *argv) -> tuple[int, str]:
    """``hf-w2s ARGV`` in this process: ``(exit code, its one error line or "")``."""
    code, _, err = run_cli(list(argv), capsys)
    return code, error_line(err)


def test_every_documented_row_has_a_test_and_every_row_test_is_documented():
    import test_bad_input_mechanisms  # the rows of the mechanisms' sections (issue 29)

    here = sys.modules[__name__]
    tests = {n[len("test_"):].replace("_", "-") for module in (here, test_bad_input_mechanisms) for n in dir(module)
             if n.startswith("test_") and n != "test_bad_input_mechanisms"}
    assert len(ROWS) >= 20
    missing = [r for r in ROWS if r not in tests]
    assert not missing, f"rows of docs/bad_input.md without a test: {missing}"
    extra = sorted(t for t in tests - set(ROWS) if not t.startswith(("every-", "also-")))
    assert not extra, f"tests without a row in docs/bad_input.md: {extra}"


def test_every_test_the_mechanisms_name_exists_and_names_each_row():
    """Each mechanism's section of docs/bad_input.md names its tests (``Tests: `tests/FILE.py::test_x`, `::test_y```);
    every test named exists, and every row of those sections is among them."""
    text = DOC.read_text()
    mechanisms = text[text.index("## The mechanisms behind the rows"):]
    paragraphs = re.findall(r"^Tests: (.*?)(?:\n\n|\Z)", mechanisms, re.S | re.M)
    assert len(paragraphs) == mechanisms.count("\n### ")  # one per section
    named, module = [], None
    for paragraph in paragraphs:
        for file, name in re.findall(r"`(?:tests/(\w+)\.py)?::(test_\w+)`", paragraph):
            module = file or module
            named.append((module, name))
    tests = DOC.parents[1] / "tests"
    missing = [f"{m}.py::{n}" for m, n in named if not re.search(rf"^def {n}\(", (tests / f"{m}.py").read_text(), re.M)]
    assert not missing, f"tests named in docs/bad_input.md that do not exist: {missing}"
    rows = [r for r in ROWS if f"| {r} |" in mechanisms]
    unnamed = [r for r in rows if f"test_{r.replace('-', '_')}" not in {n for _, n in named}]
    assert rows and not unnamed, f"rows of the mechanisms' sections whose test their section does not name: {unnamed}"


# -- builders ------------------------------------------------------------------------------------------------------


def dataset(n=6, **kw):
    return image_dataset(n, names=NAMES, **kw)


def student(channels=1, names=NAMES, seed=0):
    return tiny_model("linear", names, channels=channels, seed=seed)


config = training_args


def trainer(tmp_path, train=None, *, model=None, processor_="default", args=None, **kw):
    return WeakToStrongTrainer(
        model=model if model is not None else student(),
        args=args or config(tmp_path),
        train_dataset=dataset() if train is None else train,
        processing_class=processor(1) if processor_ == "default" else processor_,
        **kw,
    )


def with_bad_value(ds, row, col, value):
    logits = np.asarray(ds.with_format("numpy")["weak_logits"], dtype=np.float32).copy()
    logits[row, col] = value
    return ds.remove_columns("weak_logits").add_column(
        "weak_logits", logits.tolist(), feature=List(Value("float32"), length=len(NAMES)))


def labelled(rows, labels, label_feature=None):
    return testing_utils.labelled(rows, labels, label_feature, names=NAMES)


def zeros(n=6):
    return np.zeros((n, len(NAMES))).tolist()


@pytest.fixture
def no_compute(monkeypatch):
    """Training must not start: any call of hf_w2s.trainer.fit.fit that trains (a weak supervisor, a ceiling, a
    student) fails; the preflight's trainers, built and never trained (``train=False``), are allowed."""
    from hf_w2s.trainer import fit

    real = fit.fit

    def guarded(*a, train=True, **k):
        if train:
            raise AssertionError("training started before the input was checked")
        return real(*a, train=False, **k)

    monkeypatch.setattr("hf_w2s.trainer.fit.fit", guarded)


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """A save_to_disk DatasetDict of 8x8 digits: train (90) and test (30), label a ClassLabel of '0'..'9'."""
    ds = load_sklearn_digits().select(range(120))
    return saved_splits(tmp_path_factory.mktemp("digits") / "dd", train=ds.select(range(90)),
                        test=ds.select(range(90, 120)))


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- options: each options class checks its own, in __post_init__ ------------------------------------------------


def test_unknown_loss(tmp_path):
    with raises("unknown-loss") as err:
        config(tmp_path, w2s_loss="adaptconf")
    assert str(err.value).startswith("w2s_loss must be one of ['adapt_conf', ") and "got 'adaptconf'" in str(err.value)


def test_unknown_loss_entry(tmp_path, capsys, no_compute):
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--losses", "adaptconf"))
    assert code == 2 and documented("unknown-loss-entry", line) and "'adapt_conf'" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", [0.0, -0.5])
def test_confidence_temperature(tmp_path, value):
    with raises("confidence-temperature"):
        config(tmp_path, confidence_temperature=value)


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_kd_temperature(tmp_path, capsys, no_compute, value):
    with raises("kd-temperature"):
        config(tmp_path, kd_temperature=value)
    # the same check for a loss entry of a config, named by its row
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--losses", f"{{name: kd, kd_temperature: {value}}}"))
    assert code == 2 and documented("kd-temperature", line) and f"error: loss 'kd[kd_temperature={value}]': " in line


@pytest.mark.parametrize("knob,value", [("a_max", 1.5), ("a_ramp", -0.1), ("a_warmup", 2.0)])
def test_fraction_out_of_range(tmp_path, knob, value):
    with raises("fraction-out-of-range") as err:
        config(tmp_path, **{knob: value})
    assert str(err.value).startswith(knob)


@pytest.mark.parametrize("knob", ["gt_loss_weight", "weak_loss_weight"])
def test_negative_weight(tmp_path, knob):
    with raises("negative-weight") as err:
        config(tmp_path, **{knob: -1.0})
    assert str(err.value).startswith(knob)


def test_also_knobs_are_rechecked_when_changed_after_construction(tmp_path):
    # the trainer validates again: a knob set after construction cannot slip through
    args = config(tmp_path)
    args.confidence_temperature = 0.0
    with raises("confidence-temperature"):
        trainer(tmp_path, args=args)


@pytest.mark.parametrize("knob,value", [("weak_loss_weight", float("nan")), ("kd_temperature", float("inf")),
                                        ("learning_rate", float("inf")), ("a_max", float("nan"))])
def test_not_finite(tmp_path, capsys, no_compute, knob, value):
    with raises("not-finite") as err:
        config(tmp_path, **{knob: value})
    assert str(err.value) == f"{knob} must be a finite number, got {value}."
    # the command line (and a YAML file, converted the same way) reaches the same check, before any compute
    code, line = cli(capsys, *train_argv(tmp_path / "o", f"--{knob}", value))
    assert code == 2 and documented("not-finite", line) and f"{knob} must be a finite number" in line
    cfg = write_yaml(tmp_path / "c.yaml", f"{knob}: {value}\n")
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--config", cfg))
    assert code == 2 and f"{knob} must be a finite number" in line and not (tmp_path / "o").exists()


def test_wrong_type(tmp_path, capsys, no_compute):
    for kw, expected in [({"learning_rate": "fast"}, "learning_rate must be a number, got 'fast' (str)."),
                         ({"num_train_epochs": True}, "num_train_epochs must be a number, got True (bool)."),
                         ({"per_device_train_batch_size": [8]},
                          "per_device_train_batch_size must be an integer, got [8] (list)."),
                         ({"kd_temperature": "2"}, "kd_temperature must be a number, got '2' (str)."),
                         ({"weak_logits_columns": "a"}, "weak_logits_columns must be a list of column names, got "
                                                        "'a' (str).")]:
        with raises("wrong-type") as err:
            config(tmp_path, **kw)
        assert str(err.value) == expected
    # the structured options of a config (YAML inside YAML: not converted by argparse) are checked the same way, by
    # the class that defines them, before any weak supervisor trains
    out = tmp_path / "o"
    for option, value, expected in [
            ("--weak_supervisors", "{name: w, num_train_epochs: ten}",
             "weak supervisor 'w': num_train_epochs must be a number, got 'ten' (str)."),
            ("--losses", "{name: kd, kd_temperature: two}",
             "loss 'kd[kd_temperature=two]': kd_temperature must be a number, got 'two' (str).")]:
        code, line = cli(capsys, *train_argv(out, option, value))
        assert code == 2 and documented("wrong-type", line) and line.endswith(expected) and not out.exists()


def test_cli_wrong_type(tmp_path, capsys, no_compute):
    cfg = write_yaml(tmp_path / "recipe.yaml", "model_name_or_path: tiny:linear\nlearning_rate: fast\n")
    code, line = cli(capsys, "train", "--config", cfg)
    assert code == 2 and documented("cli-wrong-type", line) and "--learning_rate" in line and "'fast'" in line
    exp = write_yaml(tmp_path / "exp.yaml", "dataset: hf_w2s:sklearn_digits\nseeds: [0, one]\n")
    code, line = cli(capsys, "experiment", "--config", exp)
    assert code == 2 and documented("cli-wrong-type", line) and "--seeds" in line and "hf-w2s experiment --help" in line
    code, line = cli(capsys, "demo", "--num_train_epochs", "many", "--output_dir", tmp_path / "d")
    assert code == 2 and documented("cli-wrong-type", line) and "--num_train_epochs" in line
    code, line = cli(capsys, "label", "--weak_model", "w", "--dataset", "d", "--output", tmp_path / "l",
                     "--batch_size", "all")
    assert code == 2 and documented("cli-wrong-type", line) and "--batch_size" in line


def test_cli_choice(tmp_path, capsys, no_compute):
    for option, value in [("--num_channels", "2"), ("--student_mode", "lora"), ("--selection_metric", "f1"),
                          ("--eval_strategy", "sometimes")]:
        code, line = cli(capsys, *train_argv(tmp_path / "o", option, value))
        assert code == 2 and documented("cli-choice", line) and option in line and value in line, line
    assert not (tmp_path / "o").exists()


def test_yaml_syntax(tmp_path, capsys):
    cfg = write_yaml(tmp_path / "bad.yaml", "learning_rate: 0.1\nsplit_sizes: [1, 2\n")
    for command in ("train", "experiment"):
        code, line = cli(capsys, command, "--config", cfg)
        assert code == 2 and documented("yaml-syntax", line) and "at line 3, column 1" in line


def test_old_key(tmp_path, capsys, no_compute):
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--dataset_name", "x"))
    assert code == 2 and documented("old-key", line) and "--dataset_name is gone in hf_w2s 0.3: use dataset" in line
    cfg = write_yaml(tmp_path / "old.yaml", "compute_ceiling: true\n")
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--config", cfg))
    assert code == 2 and documented("old-key", line) and "the key 'compute_ceiling' is gone" in line
    assert line.endswith("use ceiling")
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--weak_supervisors", "{name: w, epochs: 3}"))
    assert code == 2 and documented("old-key", line) and line.endswith("'epochs' is gone in hf_w2s 0.3: use "
                                                                        "num_train_epochs")


def test_runner_set(tmp_path, capsys, no_compute):
    for option, value, use in [("--w2s_loss", "kd", "losses"), ("--seed", "3", "seeds")]:
        code, line = cli(capsys, *train_argv(tmp_path / "o", option, value))
        assert code == 2 and documented("runner-set", line) and line.endswith(f"use {use}.")


def test_train_one_run(tmp_path, capsys, no_compute):
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--losses", "kd", "weak_hard"))
    assert code == 2 and documented("train-one-run", line) and "1 supervisor(s) x 2 loss(es) x 1 seed(s)" in line
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--seeds", "0", "1"))
    assert code == 2 and documented("train-one-run", line)


@pytest.mark.parametrize("epochs", [0, -1])
def test_no_training(tmp_path, capsys, no_compute, epochs):
    with raises("no-training"):
        config(tmp_path, max_steps=-1, num_train_epochs=epochs)
    config(tmp_path, max_steps=3, num_train_epochs=epochs)  # max_steps decides
    for command in ("train", "experiment"):
        argv = train_argv(tmp_path / "o", "--max_steps", "-1", "--num_train_epochs", epochs)
        code, line = cli(capsys, command, *argv[1:])
        assert code == 2 and documented("no-training", line) and not (tmp_path / "o").exists()


@pytest.mark.parametrize("steps", [0, -2])
def test_max_steps(tmp_path, steps):
    with raises("max-steps"):
        config(tmp_path, max_steps=steps)


def test_option_range(tmp_path, capsys, no_compute):
    from hf_w2s.experiment.config import WeakSupervisorConfig

    # the TrainingArguments numbers that torch / numpy would refuse only once training started
    for kw, expected in [({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be >= 1, got 0."),
                         ({"learning_rate": -0.1}, "learning_rate must be >= 0, got -0.1."),
                         ({"seed": -1}, "seed must be >= 0, got -1."),
                         ({"student_mode": "last_blocks", "trainable_blocks": 0},
                          "trainable_blocks must be >= 1, got 0.")]:
        with raises("option-range") as err:
            config(tmp_path, **kw)
        assert str(err.value) == expected
    with raises("option-range") as err:
        WeakSupervisorConfig.parse({"name": "w", "num_train_epochs": -1})
    assert str(err.value) == "weak supervisor 'w': num_train_epochs must be > 0, got -1."
    for argv, expected in [(["--seeds", "-1"], "seeds[0] must be >= 0, got -1."),
                           (["--use_peft", "true", "--lora_r", "0"], "lora_r must be >= 1, got 0."),
                           (["--split_sizes", "20", "-5", "10", "20"], "split_sizes[1] must be >= -1, got -5."),
                           (["--label_batch_size", "0"], "label_batch_size must be >= 1, got 0."),
                           (["--per_device_eval_batch_size", "0"], "per_device_eval_batch_size must be >= 1, got 0.")]:
        code, line = cli(capsys, *train_argv(tmp_path / "o", *argv))
        assert code == 2 and documented("option-range", line) and line.endswith(expected), line
    assert not (tmp_path / "o").exists()


def test_zero_loss(tmp_path, capsys, no_compute):
    with raises("zero-loss"):
        config(tmp_path, w2s_loss="kd", weak_loss_weight=0.0, gt_loss_weight=0.0)
    config(tmp_path, w2s_loss="kd", weak_loss_weight=0.0, gt_loss_weight=1.0)  # one term is enough
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--weak_loss_weight", "0"))
    assert code == 2 and documented("zero-loss", line)


def test_num_channels():
    from hf_w2s import ModelConfig

    with raises("num-channels"):
        ModelConfig(num_channels=4)
    assert ModelConfig(num_channels=3).num_channels == 3


def test_class_names_distinct(tmp_path, capsys, no_compute):
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--class_names", "0", "0", *DIGITS[2:]))
    assert code == 2 and documented("class-names-distinct", line) and "['0']" in line


def test_no_validation_split(tmp_path, capsys, no_compute):
    from hf_w2s import DataConfig

    with raises("no-validation-split"):
        DataConfig(dataset="hf_w2s:sklearn_digits", split_sizes=[20, 30, 0, 20])
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--split_sizes", "20", "30", "0", "20"))
    assert code == 2 and documented("no-validation-split", line)


def test_unknown_packaged(tmp_path, capsys, no_compute):
    from hf_w2s import DataConfig

    with raises("unknown-packaged"):
        DataConfig(dataset="hf_w2s:mnst")
    for argv in (train_argv(tmp_path / "o", dataset="hf_w2s:mnst"),
                 ["label", "--weak_model", "w", "--dataset", "hf_w2s:digits", "--output", tmp_path / "l"]):
        code, line = cli(capsys, *argv)
        assert code == 2 and documented("unknown-packaged", line), argv


def test_unknown_arch(tmp_path, capsys, no_compute):
    for override, expected in [(["--model_name_or_path", "tiny:resnett"], "error: model_name_or_path 'tiny:resnett'"),
                               (["--weak_supervisors", "{name: w, model: 'tiny:vitt,width=4'}"],
                                "error: weak supervisor 'w': model 'tiny:vitt,width=4'")]:
        code, line = cli(capsys, *train_argv(tmp_path / "o", *override))
        assert code == 2 and documented("unknown-arch", line) and expected in line, line
        assert not (tmp_path / "o").exists()  # before any supervisor trained


@require_kornia
def test_unknown_augmentation(tmp_path, capsys, no_compute):
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--augmentation", "{RandomAfine: {degrees: 10}}"))
    assert code == 2 and documented("unknown-augmentation", line) and "(did you mean 'RandomAffine'?)" in line


def test_not_a_model(tmp_path, capsys, no_compute):
    from hf_w2s.modeling import load_image_classifier

    saved = tmp_path / "saved"
    load_sklearn_digits().select(range(4)).save_to_disk(str(saved))
    with raises("not-a-model"):
        load_image_classifier(str(saved))
    for argv, option in [(["label", "--weak_model", saved, "--dataset", saved, "--output", tmp_path / "l"],
                          "--weak_model"),
                         (train_argv(tmp_path / "o", "--model_name_or_path", saved), "model_name_or_path"),
                         (train_argv(tmp_path / "o", "--weak_supervisors", f"{{name: w, model: '{saved}'}}"),
                          "weak supervisor 'w': model")]:
        code, line = cli(capsys, *argv)
        assert code == 2 and documented("not-a-model", line) and "(a saved dataset)" in line
        assert line.split(": error: ")[1].startswith(option)  # refused when the options are read


def test_also_every_options_class_declares_ranges_of_its_own_fields():
    # a RANGES entry that names no field would silently check nothing
    import dataclasses

    from hf_w2s import DataConfig, ModelConfig, WeakToStrongConfig
    from hf_w2s.experiment.config import ExperimentConfig, WeakSupervisorConfig
    from hf_w2s.scripts.label import LabelConfig

    for cls, ranges in [(WeakToStrongConfig, WeakToStrongConfig.RANGES),
                        (WeakToStrongConfig, WeakToStrongConfig.TRAINING_RANGES), (ExperimentConfig, None),
                        (WeakSupervisorConfig, None), (DataConfig, None), (ModelConfig, None), (LabelConfig, None)]:
        ranges = cls.RANGES if ranges is None else ranges
        names = {f.name for f in dataclasses.fields(cls)}
        assert ranges and set(ranges) <= names, (cls.__name__, set(ranges) - names)


# -- the trainer: supervision and weak logits ---------------------------------------------------------------------


@pytest.mark.parametrize("kw", [{"w2s_loss": "ground_truth"}, {"w2s_loss": "kd", "gt_loss_weight": 1.0}])
def test_no_labels(tmp_path, kw):
    with raises("no-labels"):
        trainer(tmp_path, dataset(labels=False), args=config(tmp_path, **kw))


def test_no_weak_supervision(tmp_path):
    with raises("no-weak-supervision"):
        trainer(tmp_path, dataset(weak_logits=False))


@pytest.mark.parametrize("width", [2, 5])
def test_weak_logits_width(tmp_path, width):
    with raises("weak-logits-width") as err:
        trainer(tmp_path, dataset(width=width))
    assert f"has {width} values per example but the student has 3 labels" in str(err.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_weak_logits_nan(tmp_path, value):
    ds = with_bad_value(dataset(n=6), 4, 1, value)
    with raises("weak-logits-nan") as err:
        trainer(tmp_path, ds)
    assert "in 1 example(s) (rows 4)" in str(err.value)
    # rows are counted in the dataset's own order, after a select/shuffle too
    with raises("weak-logits-nan") as err:
        trainer(tmp_path, ds.select([5, 4, 0]))
    assert "(rows 1)" in str(err.value)


def test_weak_logits_missing_rows(tmp_path):
    ds = dataset(n=4)
    logits = ds.with_format("numpy")["weak_logits"]
    rows = [list(map(float, logits[0])), None, list(map(float, logits[2])), None]
    ds = ds.remove_columns("weak_logits").add_column("weak_logits", rows, feature=List(Value("float32")))
    with raises("weak-logits-missing-rows") as err:
        trainer(tmp_path, ds)
    assert "for 2 example(s) (rows 1, 3)" in str(err.value)


def test_weak_logits_type(tmp_path):
    ds = dataset(weak_logits=False)
    ds = ds.add_column("weak_logits", ["0.1,0.2,0.7"] * len(ds))
    with raises("weak-logits-type"):
        trainer(tmp_path, ds)


def test_eval_weak_logits(tmp_path):
    with raises("eval-weak-logits"):
        trainer(tmp_path, eval_dataset=with_bad_value(dataset(), 0, 0, float("nan")))


def test_also_weak_logits_check_reads_arrow_not_python_lists(monkeypatch):
    # the check must not materialise the column as Python lists (Column.to_pylist / Dataset.__getitem__)
    from hf_w2s.data.checks import check_weak_logits

    ds = dataset(n=20)
    bad, wide = with_bad_value(dataset(n=20), 13, 2, float("nan")), dataset(n=20, width=len(NAMES) + 1)

    def boom(*a, **k):
        raise AssertionError("the check read rows into Python")

    monkeypatch.setattr(Dataset, "__getitem__", boom)
    monkeypatch.setattr(Dataset, "to_list", boom)
    check_weak_logits(ds, "weak_logits", len(NAMES))
    # and it still checks, reading the Arrow data: a NaN, a wrong width and a missing row are each found
    with raises("weak-logits-nan") as err:
        check_weak_logits(bad, "weak_logits", len(NAMES))
    assert "in 1 example(s) (rows 13)" in str(err.value)
    with pytest.raises(ValueError, match=f"{len(NAMES) + 1} values per example but the student has {len(NAMES)}"):
        check_weak_logits(wide, "weak_logits", len(NAMES))


def test_label_names(tmp_path):
    weak = student(names=["cat", "dog", "emu"], seed=1)
    with raises("label-names") as err:
        trainer(tmp_path, dataset(weak_logits=False), weak_model=weak)
    assert "missing from the weak model: ['owl']; missing from the student: ['emu']" in str(err.value)


# -- the trainer: images ------------------------------------------------------------------------------------------


def test_no_image_column(tmp_path):
    with raises("no-image-column") as err:
        trainer(tmp_path, dataset(image_column="img"))
    assert "no image column 'image'" in str(err.value) and "'img'" in str(err.value)
    # naming the column fixes it
    trainer(tmp_path, dataset(image_column="img"), args=config(tmp_path, image_column="img"))


def test_no_image_processor(tmp_path):
    with raises("no-image-processor"):
        trainer(tmp_path, processor_=None)


def test_processor_channels(tmp_path):
    with raises("processor-channels") as err:
        trainer(tmp_path, model=student(channels=3))  # 1-channel processor, 3-channel model
    assert "normalises 1 channel(s)" in str(err.value) and "expects 3" in str(err.value)


def test_weak_model_channels(tmp_path):
    weak = student(channels=3, seed=1)
    with raises("weak-model-channels"):
        trainer(tmp_path, dataset(weak_logits=False), weak_model=weak)
    # with its own processor the weak model gets 3-channel weak_pixel_values and training runs
    t = trainer(tmp_path, dataset(weak_logits=False), weak_model=weak, weak_processing_class=processor(3))
    t.train()
    assert t.state.global_step == 1


def _trains_with_one_note(tmp_path, caplog, mode, channels, row):
    caplog.set_level(logging.WARNING, logger="hf_w2s")
    t = trainer(tmp_path, dataset(mode=mode), model=student(channels=channels), processor_=processor(channels))
    t.train()  # converted, not a crash
    assert t.state.global_step == 1 and np.isfinite(t.state.log_history[-1]["train_loss"])
    notes = [r.getMessage() for r in caplog.records if r.name.startswith("hf_w2s") and "PIL mode" in r.getMessage()]
    assert len(notes) == 1, notes
    assert re.fullmatch(message(row), notes[0], re.S)


def test_grayscale_for_rgb(tmp_path, caplog):
    _trains_with_one_note(tmp_path, caplog, "L", 3, "grayscale-for-rgb")


def test_rgb_for_grayscale(tmp_path, caplog):
    _trains_with_one_note(tmp_path, caplog, "RGB", 1, "rgb-for-grayscale")


def test_also_matching_images_give_no_note(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hf_w2s")
    trainer(tmp_path)
    assert not [r for r in caplog.records if "PIL mode" in r.getMessage()]


def test_wide_images(tmp_path, caplog):
    from PIL import Image as PILImage

    from hf_w2s.data.images import pixel_values_from_images, to_8bit

    eight = images(4)
    arrays = [np.asarray(im) for im in eight]
    wide16 = [PILImage.fromarray(a.astype(np.uint16) * 257) for a in arrays]  # 0..255 -> 0..65535
    floats = [PILImage.fromarray(a.astype(np.float32) / 255.0) for a in arrays]  # 0..255 -> 0..1
    assert {im.mode for im in wide16} == {"I;16"} and {im.mode for im in floats} == {"F"}
    for wide in (wide16, floats):
        for a, im in zip(arrays, wide):
            np.testing.assert_array_equal(np.asarray(to_8bit(im)), a)
        for channels in (1, 3):
            proc = processor(channels)
            torch.testing.assert_close(pixel_values_from_images(wide, proc), pixel_values_from_images(eight, proc))
    # training on them logs the note once and trains
    caplog.set_level(logging.WARNING, logger="hf_w2s")
    ds = Dataset.from_dict({"image": [png(im) for im in wide16], "label": [0, 1, 2, 0], "weak_logits": zeros(4)},
                           features=Features({"image": Image(), "label": ClassLabel(names=NAMES),
                                              "weak_logits": List(Value("float32"))}))
    assert ds[0]["image"].mode == "I;16"
    t = trainer(tmp_path, ds)
    t.train()
    notes = [r.getMessage() for r in caplog.records if "scaled to 8 bits" in r.getMessage()]
    assert len(notes) == 1 and documented("wide-images", notes[0]) and "16-bit (PIL mode 'I;16')" in notes[0]


# -- data: columns, labels, images, streaming, paths --------------------------------------------------------------


def test_label_column(tmp_path, capsys, no_compute, digits_dir):
    from hf_w2s.data.checks import check_dataset

    code, line = cli(capsys, *train_argv(tmp_path / "o", "--label_column", "labell", dataset=digits_dir))
    assert code == 2 and documented("label-column", line) and "Did you mean 'label'?" in line
    # never a silent fallback: the test split has fine_label, the training pool only 'label'
    from datasets import load_from_disk

    dd = load_from_disk(str(digits_dir))
    data = saved_splits(tmp_path / "fine", train=dd["train"], test=dd["test"].rename_column("label", "fine_label"))
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--label_column", "fine_label", "--test_split", "test",
                                         dataset=data))
    assert code == 2 and documented("label-column", line)
    assert f"the {data} dataset has no label column 'fine_label'" in line
    with raises("label-column"):
        check_dataset(dd["test"], label_column="fine_label")


def test_labels_out_of_range(tmp_path, capsys, no_compute):
    ds = labelled(image_rows(), [0, 1, 2, 3, 0, 1], Value("int64"))  # 3 of 3 classes
    with raises("labels-out-of-range") as err:
        trainer(tmp_path, ds.add_column("weak_logits", zeros()))
    assert "outside 0..2 (the 3 classes) in 1 example(s) (rows 3: 3)" in str(err.value)
    # the one schema checks every split before a weak supervisor trains
    data = saved_splits(tmp_path / "ten", train=labelled(image_rows(6), [0, 1, 2, 10, 0, 1], Value("int64")))
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--split_sizes", "1", "3", "1", "1", "--class_names",
                                         *DIGITS, dataset=data))
    assert code == 2 and documented("labels-out-of-range", line) and "outside 0..9" in line and ": 10)" in line


def test_no_class_names(tmp_path, capsys, no_compute):
    data = saved_splits(tmp_path / "ints", train=labelled(image_rows(6), [0, 1, 2, 2, 0, 1], Value("int64")))
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--split_sizes", "1", "3", "1", "1", dataset=data))
    assert code == 2 and documented("no-class-names", line)
    # strings need them too: they are mapped to ids by name
    data = saved_splits(tmp_path / "strings", train=labelled(image_rows(6), NAMES * 2, Value("string")))
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--split_sizes", "1", "3", "1", "1", dataset=data))
    assert code == 2 and documented("no-class-names", line)


def test_labels_missing(tmp_path):
    ds = labelled(image_rows(), [0, -1, 2, 1, 0, 1], Value("int64"))
    with raises("labels-missing") as err:
        trainer(tmp_path, ds, args=config(tmp_path, w2s_loss="ground_truth"))
    assert "in 1 example(s) (rows 1)" in str(err.value)
    # weak supervision only: -1 means "no label" and is fine for training, but not for evaluation
    weak = ds.add_column("weak_logits", np.eye(3)[[0, 1, 2, 1, 0, 1]].tolist())
    t = trainer(tmp_path, weak)
    t.train()
    assert t.state.global_step == 1
    with raises("labels-missing"):
        trainer(tmp_path, weak, eval_dataset=ds)


def test_class_names(tmp_path):
    from hf_w2s.data.checks import check_dataset

    strings = ["owl", "cat", "dog", "cat", "owl", "dog"]
    ds = labelled(image_rows(), strings, Value("string"))
    for order in (NAMES, ["dog", "owl", "cat"]):
        out = check_dataset(ds, label_names=order)
        assert out.features["label"].names == order
        assert list(out["label"]) == [order.index(s) for s in strings]
    # the trainer maps them with the student's names and trains
    t = trainer(tmp_path, ds.add_column("weak_logits", zeros()))
    t.train()
    assert t.state.global_step == 1
    with raises("class-names") as err:
        check_dataset(labelled(image_rows(), ["cat", "cta", "dog", "owl", "dgo", "cat"], Value("string")),
                      label_names=NAMES)
    assert "in 2 example(s) (rows 1, 4: 'cta', 'dgo')" in str(err.value)


def test_class_names_needed():
    from hf_w2s.data.checks import check_dataset

    with raises("class-names-needed"):
        check_dataset(labelled(image_rows(), ["cat"] * 6, Value("string")))


def test_image_none(tmp_path):
    ds = labelled(image_rows(missing=2), [0, 1, 2, 0, 1, 2])
    with raises("image-none") as err:
        trainer(tmp_path, ds.add_column("weak_logits", zeros()))
    assert "for 1 example(s) (rows 2)" in str(err.value)


def test_undecodable_training_image(tmp_path, capsys, no_compute):
    ds = labelled(image_rows(broken=4), [0, 1, 2, 0, 1, 2]).add_column("weak_logits", zeros())
    with raises("undecodable-training-image") as err:
        trainer(tmp_path, ds)
    assert str(err.value).startswith("the training dataset's row 4: cannot decode the image in column 'image' (path "
                                     "'broken.png')")
    with raises("undecodable-training-image") as err:
        trainer(tmp_path, dataset(), eval_dataset=ds)
    assert str(err.value).startswith("the evaluation dataset's row 4")
    trainer(tmp_path, ds, args=config(tmp_path, check_images=False))  # opted out: not scanned
    # the one schema scans every split before a weak supervisor is fine-tuned
    data = saved_splits(tmp_path / "broken", train=labelled(image_rows(broken=4), [0, 1, 2, 0, 1, 2]))
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--split_sizes", "1", "3", "1", "1", dataset=data))
    assert code == 2 and documented("undecodable-training-image", line) and "(path 'broken.png')" in line


def test_streaming_training(tmp_path):
    stream = dataset().to_iterable_dataset()
    with raises("streaming-training"):
        trainer(tmp_path, stream, args=config(tmp_path, max_steps=-1, num_train_epochs=1))
    t = trainer(tmp_path, stream, args=config(tmp_path, max_steps=2))  # with max_steps it trains
    t.train()
    assert t.state.global_step == 2


def test_streaming_labelling(tmp_path):
    from hf_w2s.data.weak_labels import label_dataset

    weak = student(seed=1)
    stream = dataset(weak_logits=False).to_iterable_dataset()
    with raises("streaming-labelling"):
        label_dataset(stream, weak, processor(1))
    out = label_dataset(stream, weak, processor(1), output_dir=str(tmp_path / "s"), shard_size=4)
    assert len(out) == 6 and len(list((tmp_path / "s" / "data").glob("*.parquet"))) == 2  # legitimate with a folder


def test_stream_output_other(tmp_path):
    from hf_w2s.data.weak_labels import label_dataset

    weak = student(seed=1)
    stream = dataset(weak_logits=False).to_iterable_dataset()
    label_dataset(stream, weak, processor(1), output_dir=str(tmp_path / "s"), shard_size=4)
    other = student(seed=2)
    with raises("stream-output-other"):
        label_dataset(stream, other, processor(1), output_dir=str(tmp_path / "s"), shard_size=4)


def test_logits_storage(tmp_path):
    from hf_w2s.data.weak_labels import label_dataset
    from hf_w2s.scripts.label import parse_args

    weak = student(seed=1)
    with raises("logits-storage"):
        label_dataset(dataset(weak_logits=False), weak, processor(1), logits_storage="int8")
    with raises("logits-storage"):
        parse_args(["--weak-model", "w", "--dataset", "d", "--output", str(tmp_path / "o"), "--logits-storage", "int8"])


def test_missing_local_path(tmp_path, capsys, no_compute):
    from hf_w2s.data.loading import open_dataset
    from hf_w2s.modeling import load_image_classifier

    (tmp_path / "digits").mkdir()
    with raises("missing-local-path") as err:
        open_dataset(str(tmp_path / "digitz"))
    assert f"did you mean {str(tmp_path / 'digits')!r}?" in str(err.value)
    with raises("missing-local-path"):
        load_image_classifier(str(tmp_path / "weeak"))
    for argv, option in [(["label", "--weak_model", tmp_path / "weeak", "--dataset", "hf_w2s:sklearn_digits",
                           "--output", tmp_path / "out"], "--weak_model "),
                         (train_argv(tmp_path / "o", dataset=tmp_path / "digitz"), "dataset "),
                         (train_argv(tmp_path / "o", "--model_name_or_path", "./weeak"), "model_name_or_path ")]:
        code, line = cli(capsys, *argv)
        assert code == 2 and documented("missing-local-path", line)
        assert line.split(": error: ")[1].startswith(option)  # refused when the options are read


def test_not_local_not_hub(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    from hf_w2s.data.loading import open_dataset
    from hf_w2s.modeling import load_image_classifier

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    (tmp_path / "weak").mkdir()
    with raises("not-local-not-hub") as err:
        load_image_classifier("weeak")
    assert "did you mean 'weak'?" in str(err.value)
    with raises("not-local-not-hub") as err:
        open_dataset("weal")
    assert str(err.value).startswith("dataset 'weal' is not a local folder")


def test_generic_student_names(tmp_path):
    # weak labels in the order owl, cat, dog; ground truth cat, dog, owl; a student that only knows LABEL_0..2
    rng = np.random.default_rng(3)
    weak_order = ["owl", "cat", "dog"]
    logits = rng.standard_normal((6, 3)).astype(np.float32)
    labels = [0, 1, 2, 2, 1, 0]
    ds = Dataset.from_dict(
        {"image": image_rows(), "label": labels, "weak_logits": logits.tolist(),
         "weak_label": logits.argmax(1).tolist()},
        features=Features({"image": Image(), "label": ClassLabel(names=NAMES), "weak_logits": List(Value("float32")),
                           "weak_label": ClassLabel(names=weak_order)}))
    model = student()
    model.config.id2label = {i: f"LABEL_{i}" for i in range(3)}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    t = trainer(tmp_path, ds, model=model)
    got = np.asarray(t.train_dataset.with_format("numpy")["weak_logits"][:])
    expected = np.stack([logits[:, weak_order.index(n)] for n in NAMES], axis=1)  # column c = ground-truth class c
    np.testing.assert_allclose(got, expected)
    assert list(t.train_dataset["label"]) == labels


# -- files: nothing lost, nothing half-written, resume ------------------------------------------------------------


def _run(tmp_path, out, resume=None, **kw):
    t = trainer(tmp_path, args=config(tmp_path, output_dir=str(out), save_strategy="steps", save_steps=1, **kw))
    t.train(resume_from_checkpoint=resume)
    return t


def test_output_dir_other_run(tmp_path):
    out = tmp_path / "run"
    _run(tmp_path, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert (out / "checkpoint-1").is_dir() and (out / "w2s_run.json").is_file()
    with raises("output-dir-other-run") as err:
        _run(tmp_path, out, learning_rate=1e-3)
    assert "learning_rate: 5e-05 -> 0.001" in str(err.value)
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing touched
    # the same run again is fine; resuming is fine; overwrite replaces the old run's checkpoints
    _run(tmp_path, out)
    _run(tmp_path, out, resume=True, learning_rate=1e-3, max_steps=2)
    assert (out / "checkpoint-2").is_dir()
    _run(tmp_path, out, learning_rate=1e-3, overwrite_output_dir=True)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert json.loads((out / "w2s_run.json").read_text())["config"]["learning_rate"] == 1e-3


def test_output_dir_unknown_run(tmp_path):
    out = tmp_path / "old"
    (out / "checkpoint-500").mkdir(parents=True)
    (out / "trainer_state.json").write_text("{}")
    with raises("output-dir-unknown-run") as err:
        _run(tmp_path, out)
    assert "checkpoint-500, trainer_state.json" in str(err.value)
    assert (out / "checkpoint-500").is_dir()
    # unrelated files (e.g. the user's notes or logs) do not count as a run
    other = tmp_path / "notes"
    other.mkdir()
    (other / "README.txt").write_text("mine")
    _run(tmp_path, other)
    assert (other / "README.txt").read_text() == "mine"


def test_output_dir_file(tmp_path, capsys, no_compute):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with raises("output-dir-file"):
        config(tmp_path, output_dir=str(afile))
    with raises("output-dir-file") as err:
        config(tmp_path, output_dir=str(afile / "run"))
    assert "cannot be created" in str(err.value)
    for argv in (train_argv(afile), ["demo", "--output_dir", afile],
                 ["label", "--weak_model", "w", "--dataset", "hf_w2s:sklearn_digits", "--output", afile]):
        code, line = cli(capsys, *argv)
        assert code == 2 and documented("output-dir-file", line), argv
    assert afile.read_text() == "mine"


def test_output_dir_not_a_run(tmp_path, capsys, no_compute, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("# my notes\n")
    code, line = cli(capsys, *train_argv(out))
    assert code == 2 and documented("output-dir-not-a-run", line)
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]  # nothing written, nothing hidden left behind
    # with overwrite_output_dir the run writes into it, around the user's files: their README is never replaced (the
    # student's card is student/README.md)
    monkeypatch.undo()
    assert cli(capsys, *train_argv(out, "--overwrite_output_dir", "true")) == (0, "")
    assert (out / "README.md").read_text() == "# my notes\n" and "hf_w2s" in (out / "student" / "README.md").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    # an hf_w2s run's folder is its own: the same command again needs no overwrite (its finished run is skipped)
    code, out_text, _ = run_cli(train_argv(out), capsys)
    assert code == 0 and "done before, skipped" in out_text


@pytest.fixture
def label_source(tmp_path):
    """A weak model folder and an imagefolder source inside tmp_path/parent/src."""
    weak = student(seed=1)
    weak.save_pretrained(tmp_path / "weak")
    processor(1).save_pretrained(tmp_path / "weak")
    for i, im in enumerate(images(6)):
        folder = tmp_path / "parent" / "src" / NAMES[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{i}.png")
    return tmp_path / "weak", tmp_path / "parent" / "src"


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_label_output_contains_source(tmp_path, capsys, label_source):
    weak, src = label_source
    before = _tree(src.parent)
    code, line = cli(capsys, "label", "--weak_model", weak, "--dataset", src, "--output", src.parent, "--overwrite")
    assert code == 2 and documented("label-output-contains-source", line)
    assert _tree(src.parent) == before


def test_label_output_inside_source(tmp_path, capsys, label_source):
    weak, src = label_source
    before = _tree(src)
    code, line = cli(capsys, "label", "--weak_model", weak, "--dataset", src, "--output", src / "labels")
    assert code == 2 and documented("label-output-inside-source", line) and _tree(src) == before


def test_also_labelling_writes_nothing_into_the_source_folder(tmp_path, capsys):
    from datasets import load_from_disk

    from hf_w2s.data.weak_labels import label_dataset

    load_sklearn_digits().select(range(20)).save_to_disk(str(tmp_path / "saved"))
    before = _tree(tmp_path / "saved")
    weak = student(names=DIGITS, seed=1)
    source = load_from_disk(str(tmp_path / "saved"))
    labelled_ = label_dataset(source.select([5, 1, 3]), weak, processor(1))  # a row mapping too
    assert labelled_.num_rows == 3 and _tree(tmp_path / "saved") == before
    weak.save_pretrained(tmp_path / "weak")
    processor(1).save_pretrained(tmp_path / "weak")
    assert cli(capsys, "label", "--weak_model", tmp_path / "weak", "--dataset", tmp_path / "saved", "--output",
               tmp_path / "out")[0] == 0
    assert _tree(tmp_path / "saved") == before and load_from_disk(str(tmp_path / "out")).num_rows == 20


def test_disk_full(tmp_path, capsys, monkeypatch, label_source):
    import errno

    # 1. `hf-w2s label` saving: a half-written save is removed, the message names the output
    weak, src = label_source
    real_save = Dataset.save_to_disk

    def full_disk(self, path, *a, **k):
        (Path(path) / "data-00000-of-00001.arrow").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Dataset, "save_to_disk", full_disk)
    code, line = cli(capsys, "label", "--weak_model", weak, "--dataset", src, "--output", tmp_path / "out")
    assert code == 1 and documented("disk-full", line) and str(tmp_path / "out") in line
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(Dataset, "save_to_disk", real_save)

    # 2. a checkpoint: the half-written checkpoint-2 is removed, the message names the last complete one
    real = WeakToStrongTrainer._save_rng_state

    def full_at_step_2(self, output_dir):
        real(self, output_dir)
        if self.state.global_step == 2:
            raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(WeakToStrongTrainer, "_save_rng_state", full_at_step_2)
    out = tmp_path / "run"
    with pytest.raises(OSError) as err:
        _run(tmp_path, out, max_steps=3)
    assert documented("disk-full", str(err.value)) and "checkpoint-2" in str(err.value)
    assert f"the last complete checkpoint is {out / 'checkpoint-1'}" in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1", "w2s_run.json"]
    monkeypatch.setattr(WeakToStrongTrainer, "_save_rng_state", real)
    t = _run(tmp_path, out, resume=True, max_steps=3)  # and resuming continues from it
    assert t.state.global_step == 3


def test_resume(tmp_path, capsys, monkeypatch):
    from safetensors.torch import load_file

    steps = ["--max_steps", "4", "--save_strategy", "steps", "--save_steps", "1", "--learning_rate", "0.05",
             "--lr_scheduler_type", "constant"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    # resume_from_checkpoint true in a fresh folder: every run without a checkpoint starts from step 0
    assert cli(capsys, *train_argv(straight, *steps, "--resume_from_checkpoint", "true")) == (0, "")
    real_step = WeakToStrongTrainer.training_step

    def killed_at_step_4(self, *a, **k):
        if self.args.w2s_loss == "kd" and self.state.global_step == 3:
            raise KeyboardInterrupt  # the student's run is killed after saving checkpoint-3
        return real_step(self, *a, **k)

    monkeypatch.setattr(WeakToStrongTrainer, "training_step", killed_at_step_4)
    assert cli(capsys, *train_argv(interrupted, *steps))[0] == 130
    monkeypatch.setattr(WeakToStrongTrainer, "training_step", real_step)
    run_dir = interrupted / "runs" / "weak" / "kd" / "seed0"
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    (run_dir / "checkpoint-3" / "trainer_state.json").unlink()  # killed while saving checkpoint-3
    code, out, _ = run_cli(train_argv(interrupted, *steps, "--resume_from_checkpoint", "true"), capsys)
    assert code == 0
    notices = [line for line in out.splitlines() if "not resuming from" in line]  # hf-w2s prints its notices
    assert len(notices) == 1 and documented("resume", notices[0]) and "checkpoint-3" in notices[0]
    assert json.loads((run_dir / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    # steps 3 and 4 continued from checkpoint-2: the same student as the run that was never interrupted
    a, b = (load_file(folder / "student" / "model.safetensors") for folder in (straight, interrupted))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_resume_nothing(tmp_path, capsys, no_compute):
    with raises("resume-nothing"):
        config(tmp_path, resume_from_checkpoint=str(tmp_path / "no-such-checkpoint"))
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--resume_from_checkpoint", tmp_path / "no-such"))
    assert code == 2 and documented("resume-nothing", line)


def test_resume_no_checkpoint(tmp_path):
    t = trainer(tmp_path, args=config(tmp_path, output_dir=str(tmp_path / "empty")))
    with raises("resume-no-checkpoint"):
        t.train(resume_from_checkpoint=True)
    assert t.state.global_step == 0 and not list((tmp_path / "empty").glob("*"))  # nothing trained or written


def test_push_not_possible(tmp_path, capsys, monkeypatch, no_compute):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--push_to_hub", "true", "--hub_model_id", "me/x",
                                         "--hub_token", "hf_not_a_token"))
    assert code == 2 and documented("push-not-possible", line) and "hf_not_a_token" not in line


# -- labelling and pushing (the labelling's own tests are in tests/test_weak_labels.py, tests/test_label_hub.py) ------


def test_undecodable_images(tmp_path):
    from hf_w2s.data.weak_labels import label_dataset

    rows = [png(im) for im in images(3)]
    rows[1] = {"bytes": b"not an image", "path": "broken.png"}
    ds = Dataset.from_dict({"image": rows}, features=Features({"image": Image()}))
    with raises("undecodable-images") as err:
        label_dataset(ds, student(seed=1), processor(1), batch_size=2)
    assert str(err.value).startswith("row 1: cannot decode the image in column 'image' (path 'broken.png')")


def test_failed_push(tmp_path, monkeypatch):
    from datasets import load_from_disk

    from hf_w2s.hub import WeakLabelsPushError, push_weak_labels

    def refused(self, *a, **k):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(Dataset, "push_to_hub", refused)
    ds = Dataset.from_dict({"weak_logits": zeros(3), "weak_label": [0, 1, 0]}, features=Features(
        {"weak_logits": List(Value("float32"), length=len(NAMES)), "weak_label": ClassLabel(names=NAMES)}))
    with raises("failed-push", WeakLabelsPushError) as err:
        push_weak_labels(ds, "me/labels")
    assert str(err.value).startswith("push of weak labels to 'me/labels' failed while pushing the data")
    kept = err.value.local_dir
    assert f"kept at {kept!r}" in str(err.value) and load_from_disk(kept).num_rows == 3  # the local copy is whole


# -- loading models safely -------------------------------------------------------------------------------------------


def test_pickle_weights(tmp_path, capsys, no_compute):
    from hf_w2s.modeling import load_image_classifier

    model = student()
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "m" / "pytorch_model.bin")
    with raises("pickle-weights"):
        load_image_classifier(str(tmp_path / "m"))
    loaded = load_image_classifier(str(tmp_path / "m"), allow_pickle=True)  # an explicit opt-in
    torch.testing.assert_close(loaded.state_dict()["classifier.weight"], model.state_dict()["classifier.weight"])
    code, line = cli(capsys, *train_argv(tmp_path / "o", "--model_name_or_path", tmp_path / "m"))
    assert code == 2 and documented("pickle-weights", line)  # when the options are read


def test_remote_code(tmp_path):
    from hf_w2s.modeling import load_image_classifier

    path, sentinel = remote_code_checkpoint(tmp_path)
    with raises("remote-code"):
        load_image_classifier(str(path))
    assert not sentinel.exists()  # the checkpoint's code never ran
