"""Every figure knows the split it was computed on (``hf_w2s.experiment.provenance``): real runs on data whose
validation and test splits rank the candidates the other way round, so a choice made on test cannot pass for one
made on validation; a figure that chooses computed on test, by any path, stops the card and the report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from datasets import ClassLabel, DatasetDict
from testing_utils import band_dataset, experiment, tiny_experiment

from hf_w2s.data.images import pixel_values_from_images
from hf_w2s.data.splits import example_hashes, split_fingerprint
from hf_w2s.experiment import Experiment
from hf_w2s.experiment.provenance import ProvenanceError, check_figures
from hf_w2s.modeling import tiny_image_processor

CANDIDATES = [{"label": "frozen", "learning_rate": 0.0}, {"label": "learns", "learning_rate": 0.05}]


def bands(n: int, seed: int, flipped: bool = False):
    """``n`` band images of two classes (:func:`band_dataset`'s first two), their labels swapped with ``flipped``."""
    ds = band_dataset(n, seed).filter(lambda label: label < 2, input_columns="label")
    labels = [1 - y if flipped else y for y in ds["label"]]
    return ds.remove_columns("label").add_column("label", labels, feature=ClassLabel(names=["a", "b"]))


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """Band images of two classes with their own train / validation / test splits; the test split's labels are
    swapped, so a model's test accuracy is one minus its accuracy on those images: the more accurate of two models
    on validation is the less accurate on test."""
    path = tmp_path_factory.mktemp("shifted") / "ds"
    DatasetDict({"train": bands(180, 0), "validation": bands(90, 1), "test": bands(90, 2, flipped=True)}
                ).save_to_disk(str(path))
    return str(path)


def config(dataset, out, **over) -> dict:
    """One weak supervisor (label noise: nothing to train), linear students evaluated on validation each epoch."""
    return tiny_experiment(dataset, out, **{
        "split_sizes": [0, 120, 0, 0], "validation_split": "validation", "test_split": "test", "ceiling": False,
        "weak_supervisors": [{"name": "noisy", "source": "noisy_labels", "label_noise_rate": 0.1}],
        "model_name_or_path": "tiny:linear,width=4", "num_train_epochs": 3, "learning_rate": 0.05,
        "losses": [{"name": "weak_hard", "label": "hard"}], **over})


def by_hand_accuracy(model_dir, split) -> float:
    """A saved model's accuracy on a split: an evaluation-mode forward written here, not the runner's."""
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        logits = model(pixel_values=pixel_values_from_images(split["image"], tiny_image_processor(8, 1))).logits
    return float((logits.argmax(-1).numpy() == np.asarray(split["label"])).mean())


def fingerprint(split) -> str:
    return split_fingerprint(example_hashes(split))


@pytest.fixture(scope="module")
def chosen(shifted, tmp_path_factory):
    """Two candidates on seed 0, the one chosen on validation on seed 1, each student saved; every training the
    runner did (its arguments and data), seen through a wrapper that calls the real ``fit``."""
    out = tmp_path_factory.mktemp("chosen") / "o"
    values = config(shifted, out, seeds=[0, 1], selection_seeds=[0], save_students=True,
                    losses=[{"name": "weak_hard", "label": "hard", "candidates": CANDIDATES}])
    fits, real = [], Experiment.fit

    def spy(self, model, processor, train, args, **kw):
        if not kw.get("build_only"):  # the preflight's trainers are built, never trained
            fits.append((args.run_name, train.column_names))
        return real(self, model, processor, train, args, **kw)

    exp, report, error = experiment(values), None, None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Experiment, "fit", spy)
        try:
            exp.run()
            report = exp.report()
        except ProvenanceError as err:  # the runner refused its own records: each test below fails on it
            error = err
    return exp, fits, report, error


def ran(chosen):
    """``(experiment, its trainings, its report)`` of the run, which must have finished."""
    exp, fits, report, error = chosen
    assert error is None, f"the run refused its own figures: {error}"
    return exp, fits, report


def test_the_candidate_and_its_figure_are_those_of_the_validation_split(chosen):
    exp, fits, _ = ran(chosen)
    splits = exp.splits()
    students = {(r["candidate"], r["seed"]): r for r in exp.results() if r["kind"] == "w2s"}
    assert set(students) == {("frozen", 0), ("learns", 0), ("learns", 1)}  # only the chosen one ran on seed 1
    runs = exp.out / "runs" / "noisy" / "hard"
    val = {c: by_hand_accuracy(runs / c / f"seed{s}" / "model", splits["validation"]) for c, s in students}
    test = {c: by_hand_accuracy(runs / c / "seed0" / "model", splits["test"]) for c in ("frozen", "learns")}
    # the data tell the splits apart: validation prefers the learner, test the frozen model
    assert val["learns"] > val["frozen"] + 0.3 and test["frozen"] > test["learns"] + 0.3, (val, test)
    for (candidate, seed), record in students.items():  # the recorded figures are the validation split's
        model = runs / candidate / f"seed{seed}" / "model"
        assert record["validation_accuracy"] == pytest.approx(by_hand_accuracy(model, splits["validation"]))
        assert record["test_accuracy"] == pytest.approx(by_hand_accuracy(model, splits["test"]))
    # the students saw the strong split through weak labels only
    assert [columns for name, columns in fits if name.startswith("student")] and all(
        "label" not in columns for name, columns in fits if name.startswith("student"))


def test_every_record_names_the_split_of_each_figure_by_content(chosen):
    exp, _, _ = ran(chosen)
    splits = exp.splits()
    val, test = fingerprint(splits["validation"]), fingerprint(splits["test"])
    assert val != test
    on_validation = {"split": "validation", "fingerprint": val, "role": "selection"}
    on_test = {"split": "test", "fingerprint": test, "role": "report"}
    for record in exp.results():
        prov = record["provenance"]
        if record["kind"] == "weak":
            assert prov["supervision_accuracy"]["split"] == "strong_train"
            continue
        assert prov["validation_accuracy"] == prov["validation_loss"] == prov["eval_*"] == on_validation
        assert prov["test_accuracy"] == prov["test_predictions"] == on_test
    kept = json.loads(next((exp.out / "data").glob("splits-*/fingerprints.json")).read_text())
    assert kept["validation"]["fingerprint"] == val and kept["test"]["examples"] == 60


def test_the_report_and_the_card_carry_the_fingerprints(chosen):
    exp, _, report = ran(chosen)
    splits = exp.splits()
    val, test = fingerprint(splits["validation"]), fingerprint(splits["test"])
    assert "| hard | learns |" in report
    assert f"`validation` (fingerprint `{val}`, 60 examples)" in report and f"`test` (fingerprint `{test}`" in report
    students = [r for r in exp.results() if r["kind"] == "w2s"]
    best = max(students, key=lambda r: r["validation_accuracy"])
    saved = json.loads((exp.out / "student" / "w2s_results.json").read_text())
    assert (saved["seed"], saved["accuracy"]) == (best["seed"], best["test_accuracy"])
    assert saved["provenance"]["accuracy"]["fingerprint"] == test
    assert saved["provenance"]["validation_accuracy"]["fingerprint"] == val
    card = yaml.safe_load((exp.out / "student" / "README.md").read_text().split("---")[1])
    (result,) = card["model-index"][0]["results"]
    assert result["dataset"]["args"] == {"w2s_split": "test", "w2s_fingerprint": test, "w2s_role": "report"}


def _tampered(exp, tmp_path, change):
    """A copy of ``exp``'s folder whose results.jsonl ends with a changed copy of its first student's record; the
    :class:`Experiment` of that folder."""
    out = tmp_path / "copy"
    shutil.copytree(exp.out, out)
    record = json.loads(json.dumps(next(r for r in exp.results() if r["kind"] == "w2s")))
    change(record)
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    return Experiment(exp.config, exp.data, exp.model, exp.training.__class__(
        **{**exp.training.to_dict(), "output_dir": str(out)}), log=lambda *_: None, given=exp.given)


def test_a_record_whose_choosing_figure_was_read_on_test_stops_the_report(chosen, tmp_path):
    exp, _, _ = ran(chosen)

    def on_test(record):
        record["provenance"]["validation_accuracy"] = record["provenance"]["test_accuracy"]

    copy = _tampered(exp, tmp_path, on_test)
    before = (copy.out / "report" / "report.md").read_text()
    with pytest.raises(ProvenanceError, match=r"the report stops: the figure 'validation_accuracy' of noisy / hard "
                                              r"seed 0 \[frozen\] .* computed on the 'test' split"):
        copy.report()
    assert (copy.out / "report" / "report.md").read_text() == before  # nothing written

    def unstamped(record):
        del record["provenance"]

    with pytest.raises(ProvenanceError, match="does not say which split it was computed on"):
        _tampered(exp, tmp_path / "2", unstamped).report()


def test_the_check_names_each_kind_of_figure_and_split(chosen):
    exp, _, _ = ran(chosen)
    records = json.loads(json.dumps(exp.results()))
    check_figures(exp, records)  # as the runner wrote them
    student = next(r for r in records if r["kind"] == "w2s")
    weak = next(r for r in records if r["kind"] == "weak")
    test = dict(student["provenance"]["test_accuracy"])
    student["provenance"]["eval_*"] = {**test, "role": "selection"}
    with pytest.raises(ProvenanceError, match=r"'eval_\*' .* chooses its checkpoint .* computed on the 'test' split"):
        check_figures(exp, [student])
    student["provenance"]["eval_*"] = {"split": None, "fingerprint": "arrow:other", "role": "selection"}
    with pytest.raises(ProvenanceError, match="a dataset that is none of the run's splits"):
        check_figures(exp, [student])
    weak["provenance"]["calibration_temperature"] = {**test, "role": "calibration"}
    with pytest.raises(ProvenanceError, match=r"'calibration_temperature' of weak supervisor 'noisy' .* the test"):
        check_figures(exp, [weak], "the card")


def test_without_ground_truth_students_choose_on_the_weak_labelled_validation_split(chosen, shifted, tmp_path):
    exp, _, _ = ran(chosen)
    blind = experiment(config(shifted, tmp_path / "o", selection_protocol="weak_labels"))
    blind.splits()
    val = blind.split_ids.fingerprint_of("validation")
    student = json.loads(json.dumps(next(r for r in exp.results() if r["kind"] == "w2s")))
    with pytest.raises(ProvenanceError, match=r"'validation_accuracy' .* computed on the 'validation' split .* "
                                              r"every choice is made on the 'validation\+weak_labels' split"):
        check_figures(blind, [student])  # ground truth chose it: not in this protocol
    relabelled = blind.splits()["validation"].map(lambda label: {"label": 1 - label}, input_columns="label")
    assert blind.split_ids.identify(relabelled) == ("validation+relabelled", val + "+relabelled")  # by content
    weak = blind.split_ids.derived(relabelled, blind.splits()["validation"], tag="weak_labels")
    for figure in ("validation_accuracy", "validation_loss", "eval_*"):
        student["provenance"].update(blind.split_ids.stamp(weak, "selection", figure))
    check_figures(blind, [student])
    assert student["provenance"]["eval_*"]["fingerprint"] == val + "+weak_labels"


def test_without_the_disjointness_check_splits_are_named_by_their_persisted_data(shifted, tmp_path):
    exp = experiment(config(shifted, tmp_path / "o", check_disjoint=False))
    splits = exp.splits()  # the images are not read: no content fingerprint
    kept = json.loads(next((exp.out / "data").glob("splits-*/fingerprints.json")).read_text())
    assert {e["method"] for e in kept.values()} == {"arrow"} and set(kept) == set(splits)
    name, fp = exp.split_ids.identify(splits["validation"])
    assert (name, fp) == ("validation", f"arrow:{splits['validation']._fingerprint}") == (
        "validation", kept["validation"]["fingerprint"])
    copy = splits["test"].flatten_indices(keep_in_memory=True)  # the test images, not the persisted data
    assert exp.split_ids.identify(copy) == (None, fingerprint(splits["test"]))


# ----------------------------------------------------------------------------------------------------------------
# a figure that chooses computed on test, through the runner's own paths: the run stops at its card


def test_validation_figures_computed_on_test_stop_the_card_and_the_report(shifted, tmp_path, monkeypatch):
    real = Experiment._validation_figures
    monkeypatch.setattr(Experiment, "_validation_figures",
                        lambda self, trainer, validation: real(self, trainer, self.splits()["test"]))
    exp = experiment(config(shifted, tmp_path / "o", num_train_epochs=1, eval_strategy="no"))
    with pytest.raises(ProvenanceError, match=r"the card stops: the figure 'validation_accuracy' of noisy / hard "
                                              r"seed 0 .* chooses .* the saved student, but it was computed on the "
                                              r"'test' split"):
        exp.run()
    assert not (exp.out / "student" / "README.md").exists()
    monkeypatch.undo()
    with pytest.raises(ProvenanceError, match="the report stops: the figure 'validation_accuracy'"):
        exp.report()
    assert not (exp.out / "report" / "report.md").exists()


def test_checkpoints_evaluated_on_test_stop_the_card(shifted, tmp_path, monkeypatch):
    real = Experiment.fit

    def on_test(self, model, processor, train, args, **kw):
        if kw.get("eval_dataset") is not None:
            kw["eval_dataset"] = self.splits()["test"]
        return real(self, model, processor, train, args, **kw)

    monkeypatch.setattr(Experiment, "fit", on_test)
    exp = experiment(config(shifted, tmp_path / "o", num_train_epochs=1))
    with pytest.raises(ProvenanceError, match=r"the card stops: the figure 'eval_\*' .* chooses its checkpoint"):
        exp.run()
