"""One test per row of docs/bad_input.md (``test_<id>``), each matching the message quoted there."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, List, Value

from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer
from hf_w2s.modeling import build_model, tiny_image_processor

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_input.md"
NAMES = ["cat", "dog", "owl"]
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


def raises(row: str):
    return pytest.raises(ValueError, match=re.compile(message(row), re.S))


def test_every_documented_row_has_a_test_and_every_row_test_is_documented():
    here = sys.modules[__name__]
    tests = {n[len("test_"):].replace("_", "-") for n in dir(here) if n.startswith("test_")}
    assert len(ROWS) >= 20
    missing = [r for r in ROWS if r not in tests]
    assert not missing, f"rows of docs/bad_input.md without a test: {missing}"
    extra = sorted(t for t in tests - set(ROWS) if not t.startswith(("every-", "also-")))
    assert not extra, f"tests without a row in docs/bad_input.md: {extra}"


# -- builders ------------------------------------------------------------------------------------------------------


def images(n=6, mode="L", seed=0):
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    shape = (n, SIZE, SIZE) if mode == "L" else (n, SIZE, SIZE, 3)
    return [PILImage.fromarray(a, mode=mode) for a in rng.integers(0, 256, shape, dtype=np.uint8)]


def dataset(n=6, *, weak_logits=True, labels=True, mode="L", image_column="image", width=len(NAMES)):
    rng = np.random.default_rng(1)
    data, features = {image_column: images(n, mode)}, {image_column: Image()}
    if labels:
        data["label"] = rng.integers(0, len(NAMES), n).tolist()
        features["label"] = ClassLabel(names=NAMES)
    if weak_logits:
        data["weak_logits"] = rng.standard_normal((n, width)).astype(np.float32).tolist()
        features["weak_logits"] = List(Value("float32"))
    return Dataset.from_dict(data, features=Features(features))


def student(channels=1, names=NAMES):
    return build_model("linear", names, image_size=SIZE, num_channels=channels, width=4, seed=0)


def config(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, max_steps=1,
                per_device_train_batch_size=3, save_strategy="no", disable_tqdm=True, w2s_loss="kd")
    return WeakToStrongConfig(**{**base, **kw})


def trainer(tmp_path, train=None, *, model=None, processor="default", args=None, **kw):
    return WeakToStrongTrainer(
        model=model if model is not None else student(),
        args=args or config(tmp_path),
        train_dataset=dataset() if train is None else train,
        processing_class=tiny_image_processor(SIZE, 1) if processor == "default" else processor,
        **kw,
    )


def with_bad_value(ds, row, col, value):
    logits = np.asarray(ds.with_format("numpy")["weak_logits"], dtype=np.float32).copy()
    logits[row, col] = value
    return ds.remove_columns("weak_logits").add_column(
        "weak_logits", logits.tolist(), feature=List(Value("float32"), length=len(NAMES)))


# -- WeakToStrongConfig ----------------------------------------------------------------------------------------------


def test_unknown_loss(tmp_path):
    with raises("unknown-loss"):
        config(tmp_path, w2s_loss="adaptconf")


@pytest.mark.parametrize("value", [0.0, -0.5])
def test_confidence_temperature(tmp_path, value):
    with raises("confidence-temperature"):
        config(tmp_path, confidence_temperature=value)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_kd_temperature(tmp_path, value):
    with raises("kd-temperature"):
        config(tmp_path, kd_temperature=value)


@pytest.mark.parametrize("knob,value", [("a_max", 1.5), ("a_ramp", -0.1), ("a_warmup", 2.0), ("a_max", float("nan"))])
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


# -- trainer: supervision and weak logits -------------------------------------------------------------------------


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
    from hf_w2s.trainer.validation import check_weak_logits

    ds = dataset(n=20)

    def boom(*a, **k):
        raise AssertionError("the check read rows into Python")

    monkeypatch.setattr(Dataset, "__getitem__", boom)
    monkeypatch.setattr(Dataset, "to_list", boom)
    check_weak_logits(ds, "weak_logits", len(NAMES))


def test_label_names(tmp_path):
    weak = build_model("linear", ["cat", "dog", "emu"], image_size=SIZE, num_channels=1, width=4, seed=1)
    with raises("label-names") as err:
        trainer(tmp_path, dataset(weak_logits=False), weak_model=weak)
    assert "missing from the weak model: ['owl']; missing from the student: ['emu']" in str(err.value)


# -- trainer: images ---------------------------------------------------------------------------------------------------


def test_no_image_column(tmp_path):
    with raises("no-image-column") as err:
        trainer(tmp_path, dataset(image_column="img"))
    assert "no image column 'image'" in str(err.value) and "'img'" in str(err.value)
    # naming the column fixes it
    trainer(tmp_path, dataset(image_column="img"), args=config(tmp_path, image_column="img"))


def test_no_image_processor(tmp_path):
    with raises("no-image-processor"):
        trainer(tmp_path, processor=None)


def test_processor_channels(tmp_path):
    with raises("processor-channels") as err:
        trainer(tmp_path, model=student(channels=3))  # 1-channel processor, 3-channel model
    assert "normalises 1 channel(s)" in str(err.value) and "expects 3" in str(err.value)


def test_weak_model_channels(tmp_path):
    weak = build_model("linear", NAMES, image_size=SIZE, num_channels=3, width=4, seed=1)
    with raises("weak-model-channels"):
        trainer(tmp_path, dataset(weak_logits=False), weak_model=weak)
    # with its own processor the weak model gets 3-channel weak_pixel_values and training runs
    t = trainer(tmp_path, dataset(weak_logits=False), weak_model=weak,
                weak_processing_class=tiny_image_processor(SIZE, 3))
    t.train()
    assert t.state.global_step == 1


def _trains_with_one_note(tmp_path, caplog, mode, channels, row):
    caplog.set_level(logging.WARNING, logger="hf_w2s")
    t = trainer(tmp_path, dataset(mode=mode), model=student(channels=channels),
                processor=tiny_image_processor(SIZE, channels))
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


# -- output directory ------------------------------------------------------------------------------------------------


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


# -- labelling and pushing (issue 3's checks; rows listed for completeness) --------------------------------------------


def test_undecodable_images(tmp_path):
    import io

    from hf_w2s.data.weak_labels import label_dataset

    rows = []
    for im in images(3):
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        rows.append({"bytes": buf.getvalue(), "path": None})
    rows[1] = {"bytes": b"not an image", "path": "broken.png"}
    ds = Dataset.from_dict({"image": rows}, features=Features({"image": Image()}))
    weak = build_model("linear", NAMES, image_size=SIZE, num_channels=1, width=4, seed=1)
    with raises("undecodable-images") as err:
        label_dataset(ds, weak, tiny_image_processor(SIZE, 1), batch_size=2)
    assert str(err.value).startswith("row 1: cannot decode the image in column 'image' (path 'broken.png')")


def test_failed_push(tmp_path_factory):
    from test_security import failing_push

    _, msg, kept = failing_push(str(tmp_path_factory.getbasetemp()))
    assert re.fullmatch(message("failed-push"), msg, re.S) and f"kept at {kept!r}" in msg


# -- loading -----------------------------------------------------------------------------------------------------------


def test_pickle_weights(tmp_path):
    from hf_w2s.modeling import load_image_classifier

    model = student()
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "m" / "pytorch_model.bin")
    with raises("pickle-weights"):
        load_image_classifier(str(tmp_path / "m"))
    loaded = load_image_classifier(str(tmp_path / "m"), allow_pickle=True)  # an explicit opt-in
    torch.testing.assert_close(loaded.state_dict()["classifier.weight"], model.state_dict()["classifier.weight"])


def test_remote_code(tmp_path):
    from hf_w2s.modeling import load_image_classifier

    from test_security import remote_code_checkpoint

    path, sentinel = remote_code_checkpoint(tmp_path)
    with raises("remote-code"):
        load_image_classifier(str(path))
    assert not sentinel.exists()  # the checkpoint's code never ran
