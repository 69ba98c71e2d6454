"""A student strong enough for weak-to-strong to mean something (issue 28): cached-feature students whose saved model
predicts what their head predicted, the student's setting chosen on validation by the ceiling, supervisors at a lower
resolution, the no-ground-truth selection protocol, and comparisons that can tell (paired intervals, misfit)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from testing_utils import experiment, saved_bands, tiny_experiment

from hf_w2s import stats


@pytest.fixture(scope="module")
def bands(tmp_path_factory):
    return saved_bands(tmp_path_factory.mktemp("bands") / "data")


def probe_config(bands, out, **over):
    return tiny_experiment(bands, out, **{
        "model_name_or_path": "tiny:resnet,width=8,depth=2", "cache_features": True, "student_mode": "linear_probe",
        "num_train_epochs": 3, "learning_rate": 0.05, **over})


# -- cached features ------------------------------------------------------------------------------------------------


def test_a_cached_feature_student_saves_a_whole_model_that_predicts_what_its_head_did(bands, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from hf_w2s.data.images import pixel_values_from_images

    exp = experiment(probe_config(bands, tmp_path / "out", losses=["weak_hard", "kd"]))
    exp.run()
    saved = json.loads((tmp_path / "out" / "student" / "w2s_results.json").read_text())
    record = next(r for r in exp.results() if r["key"] == saved["key"])
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "out" / "student").eval()
    processor = AutoImageProcessor.from_pretrained(tmp_path / "out" / "student")
    test = exp.splits()["test"]
    with torch.no_grad():
        logits = model(pixel_values=pixel_values_from_images(list(test["image"]), processor)).logits
    assert logits.argmax(-1).tolist() == record["test_predictions"]  # the head's predictions, from the whole model
    assert record["train_misfit"] is not None and 0 <= record["train_misfit"] <= 1


def test_features_are_computed_once_for_every_loss_and_seed(bands, tmp_path, monkeypatch):
    """The backbone runs over each split once per backbone: the ceiling and a second loss read the cached features
    (a tiny student's backbone is initialised by its seed, so each seed has its own; a pretrained one's is shared).
    The preflight checks each run's head on a batch of features, the backbone run once for all of them."""
    import datasets

    from hf_w2s.data import features
    from hf_w2s.experiment import preflight

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))  # no other test's features
    rows, where = {"run": [], "preflight": []}, ["run"]
    real, real_check = features.head_features, preflight.check_models

    def check_models(*args, **kwargs):
        where[0] = "preflight"
        try:
            return real_check(*args, **kwargs)
        finally:
            where[0] = "run"

    monkeypatch.setattr(features, "head_features", lambda m, pv: rows[where[0]].append(len(pv)) or real(m, pv))
    monkeypatch.setattr(preflight, "check_models", check_models)
    exp = experiment(probe_config(bands, tmp_path / "out", losses=["weak_hard", "kd"], seeds=[0, 1]))
    exp.run()
    split_rows = sum(len(exp.splits()[s]) for s in ("strong_train", "validation", "test"))
    assert sum(rows["run"]) == 2 * split_rows  # each split once per seed's backbone
    assert rows["preflight"] == [2 * preflight.PREFLIGHT_ROWS]  # a batch of the strong and validation splits, once


def test_a_probe_on_cached_features_learns_the_task(bands, tmp_path):
    exp = experiment(probe_config(bands, tmp_path / "a", ceiling=True, losses=["weak_hard"]))
    exp.run()
    ceiling = next(r for r in exp.results() if r["kind"] == "ceiling")
    assert ceiling["validation_accuracy"] > 0.5  # a probe on a random small ResNet still learns the bands


@pytest.mark.parametrize("over,match", [
    ({"student_mode": "full"}, "student_mode is 'full'"),
    ({"augmentation": {"RandomHorizontalFlip": {"p": 0.5}}}, "augmentation"),
    ({"use_peft": True, "lora_target_modules": ["convolution"]}, "use_peft"),
])
def test_what_cached_features_cannot_honour_is_refused_before_any_compute(bands, tmp_path, over, match):
    with pytest.raises(ValueError, match=match):
        experiment(probe_config(bands, tmp_path / "out", **over))
    assert not (tmp_path / "out").exists()


# -- the setting chosen on validation --------------------------------------------------------------------------------


def test_the_setting_is_chosen_by_the_ceiling_on_validation_and_every_student_trains_in_it(bands, tmp_path):
    settings = [{"label": "probe", "cache_features": True, "student_mode": "linear_probe", "num_train_epochs": 1,
                 "learning_rate": 1e-4},
                {"label": "full", "num_train_epochs": 2}]
    exp = experiment(tiny_experiment(bands, tmp_path / "out", setting_candidates=settings, ceiling=True))
    exp.run()
    record = next(r for r in exp.results() if r["kind"] == "setting")
    means = {label: np.mean(v) for label, v in record["validation"].items()}
    assert record["chosen"] == max(means, key=means.get)  # the validation figures chose
    chosen = exp.setting_label
    assert chosen == record["chosen"]
    assert (tmp_path / "out" / "runs" / f"setting-{chosen}" / "lin" / "weak_hard" / "seed0").is_dir()
    assert "Setting chosen on validation" in exp.report()


def test_setting_candidates_need_the_ceiling(bands, tmp_path):
    with pytest.raises(ValueError, match="ceiling: true"):
        experiment(tiny_experiment(bands, tmp_path / "out", ceiling=False,
                                   setting_candidates=[{"num_train_epochs": 1}, {"num_train_epochs": 2}]))


# -- supervisors with other errors -----------------------------------------------------------------------------------


def test_a_low_resolution_supervisor_sees_its_own_resolution(bands, tmp_path):
    supervisors = [{"name": "low", "model": "tiny:linear,width=4", "image_size": 4, "num_train_epochs": 2}]
    exp = experiment(tiny_experiment(bands, tmp_path / "out", weak_supervisors=supervisors))
    exp.run()
    from transformers import AutoConfig, AutoImageProcessor

    saved = exp.supervisors.model_dir("low")
    assert AutoConfig.from_pretrained(saved).patch_size == 4  # the linear model is built for 4 px
    size = AutoImageProcessor.from_pretrained(saved).size
    assert (size["height"], size["width"]) == (4, 4)


# -- no ground truth to choose by ----------------------------------------------------------------------------------


def test_the_weak_label_protocol_chooses_by_agreement_with_the_supervisor(bands, tmp_path):
    noisy = [{"name": "lin", "model": "tiny:linear,width=4", "num_train_epochs": 2, "per_device_train_batch_size": 16,
              "label_noise_rate": 0.6}]  # a supervisor that errs
    exp = experiment(tiny_experiment(bands, tmp_path / "out", selection_protocol="weak_labels", weak_supervisors=noisy,
                                     load_best_model_at_end=True, save_strategy="epoch", num_train_epochs=2))
    exp.run()
    record = next(r for r in exp.results() if r["kind"] == "w2s")
    sup = exp.supervisors.of(exp.config.weak_supervisors[0])
    weak_labels = np.asarray(sup.validation_logits).argmax(-1)
    validation = exp.splits()["validation"]
    truth = np.asarray(validation["label"])
    assert (weak_labels != truth).any()  # the supervisor errs on validation: the two protocols differ
    assert exp.supervisors.weak_labelled_validation(sup)["label"] == weak_labels.tolist()
    # the same run under ground truth has another key (it may choose another checkpoint)
    gt = experiment(tiny_experiment(bands, tmp_path / "out", weak_supervisors=noisy, load_best_model_at_end=True,
                                    save_strategy="epoch", num_train_epochs=2))
    w, spec = gt.config.weak_supervisors[0], gt.config.losses[0]
    assert gt.w2s_key(w, spec, 0) != record["key"]
    assert "No ground truth was used to choose a student" in exp.report()


def test_the_weak_label_protocol_refuses_a_supervisor_it_cannot_ask(bands, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    with pytest.raises(ValueError, match="weak-label datasets without their model"):
        experiment(tiny_experiment(bands, tmp_path / "out", selection_protocol="weak_labels",
                                   weak_supervisors=[{"name": "given", "weak_labels": str(labels)}]))


# -- statistics ------------------------------------------------------------------------------------------------------


def test_paired_difference_by_hand():
    a = {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.93}
    b = {0: 0.88, 1: 0.91, 2: 0.90, 3: 0.90, 4: 0.5}  # seed 4 has no pair: left out
    t = stats.paired_difference(a, b, method="t")
    d = np.array([0.02, 0.01, 0.01, 0.03])
    half = 3.182446305284263 * d.std(ddof=1) / 2  # t(0.975, 3) * sd / sqrt(4)
    assert t.n == 4 and math.isclose(t.mean, d.mean()) and math.isclose(t.high - t.mean, half, rel_tol=1e-6)
    assert t.excludes_zero and t.verdict == "better"
    boot = stats.paired_difference(a, b)
    assert boot.low >= d.min() - 1e-12 and boot.high <= d.max() + 1e-12 and boot.excludes_zero
    noisy = stats.paired_difference({0: 0.9, 1: 0.8}, {0: 0.85, 1: 0.85}, method="t")
    assert not noisy.excludes_zero and noisy.verdict == "no difference shown"


def test_misfit_and_its_correlation():
    assert stats.misfit([0, 1, 2, 2], [0, 1, 1, 0]) == 0.5
    with pytest.raises(ValueError, match="same rows"):
        stats.misfit([0, 1], [0])
    r, n = stats.correlation([0.1, 0.2, 0.3, None], [1.0, 2.0, 3.1, 5.0])
    assert n == 3 and r > 0.99


def test_the_report_warns_when_the_gap_is_too_small_for_pgr():
    from hf_w2s.experiment.comparison import gap_warning
    from hf_w2s.experiment.report import Row, WeakSummary

    near = WeakSummary("w", "train", 0.90, "test", 10, Row("ceiling", accuracies=[0.91, 0.92]), [])
    far = WeakSummary("w", "train", 0.70, "test", 10, Row("ceiling", accuracies=[0.91, 0.92]), [])
    assert "PGR is unreliable" in gap_warning(near)
    assert gap_warning(far) is None


def test_the_weak_strength_curve_orders_supervisors_and_pools_the_misfit(tmp_path):
    from hf_w2s.experiment.comparison import strength_lines
    from hf_w2s.experiment.plots import plot_strength
    from hf_w2s.experiment.report import Row, WeakSummary

    def summary(name, weak, pgrs, misfits):
        records = [{"seed": i, "test_accuracy": weak + 0.1 * p, "train_misfit": m} for i, (p, m) in
                   enumerate(zip(pgrs, misfits))]
        return WeakSummary(name, "train", weak, "test", 10, Row("ceiling", accuracies=[weak + 0.1] * 3),
                           [Row("weak_hard", pgrs=pgrs, records=records)])

    strong = summary("strong", 0.85, [0.2, 0.3, 0.4], [0.05, 0.06, 0.07])
    weak = summary("weak", 0.60, [0.5, 0.5, 0.5], [0.30, 0.30, 0.30])
    lines = strength_lines([strong, weak])
    assert lines[4] == "| loss | weak (60.0 %) | strong (85.0 %) |"  # weakest first, whatever the config's order
    assert lines[6] == "| gap (points) | 10.0 | 10.0 |"
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(3)
    assert lines[7] == f"| weak_hard | 0.50 [0.50, 0.50] | 0.30 [{0.3 - half:.2f}, {0.3 + half:.2f}] |"
    gains = [0.02, 0.03, 0.04, 0.05, 0.05, 0.05]
    r = np.corrcoef([0.05, 0.06, 0.07, 0.30, 0.30, 0.30], gains)[0, 1]
    assert lines[-2].endswith(f"r = {r:.2f} over 6 student runs.")
    plot_strength([strong, weak], tmp_path / "strength.png")
    assert (tmp_path / "strength.png").stat().st_size > 1000


def test_paired_intervals_reads_an_earlier_harness_results_file(tmp_path):
    """benchmarks/paired_intervals.py: each loss minus weak_hard, paired by seed, from a results.jsonl alone."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    rows = [{"kind": "weak", "weak": "w", "test_accuracy": 0.70}]
    rows += [{"kind": "ceiling", "seed": s, "test_accuracy": 0.90} for s in range(3)]
    rows += [{"kind": "w2s", "weak": "w", "loss": "weak_hard", "seed": s, "test_accuracy": a}
             for s, a in enumerate([0.75, 0.76, 0.74])]
    rows += [{"kind": "w2s", "weak": "w", "loss": "product", "seed": s, "test_accuracy": a}
             for s, a in enumerate([0.78, 0.78, 0.78])]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "paired_intervals.py"
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, check=True).stdout
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # differences 3, 2, 4 points: sd 1, t(0.975, 2)
    assert f"| product | 78.0 ± 0.0 | 0.40 | +3.00 [{3 - half:+.2f}, {3 + half:+.2f}]" in out, out
    assert "| weak_hard | 75.0 ± 1.0 | 0.25 | 0 |" in out and "gap 20.0 points" in out, out


def test_every_setting_candidate_passes_the_preflight_before_any_training(bands, tmp_path):
    settings = [{"label": "fine", "num_train_epochs": 1},
                {"label": "broken", "student_mode": "last_blocks", "trainable_blocks": 100}]
    exp = experiment(tiny_experiment(bands, tmp_path / "out", setting_candidates=settings, ceiling=True))
    with pytest.raises(ValueError, match="trainable_blocks"):
        exp.run()
    assert not list((tmp_path / "out").glob("runs/*/*")), "a run trained before the broken setting was found"


def test_cached_features_are_reused_only_for_the_same_backbone_resolution_and_data(tmp_path, monkeypatch):
    """The features' cache key follows what they depend on — the backbone's weights, the processor (resolution), the
    data — and not the head, whose weights the features do not see; a second call with the same key is a cache hit."""
    from datasets import load_from_disk

    from hf_w2s.data import features as module
    from hf_w2s.data.features import FEATURE_COLUMN, cache_features, features_fingerprint
    from hf_w2s.data.packaged import load_sklearn_digits
    from hf_w2s.modeling import build_model, tiny_image_processor

    load_sklearn_digits().select(range(12)).save_to_disk(str(tmp_path / "digits"))
    data = load_from_disk(str(tmp_path / "digits"))  # on disk: its features are cached beside it
    names = [str(i) for i in range(10)]
    model, processor = build_model("resnet", names, image_size=8, width=4, depth=1, seed=0), tiny_image_processor(8)
    key = features_fingerprint(data, model, processor, "image")
    other_head = build_model("resnet", names, image_size=8, width=4, depth=1, seed=0)
    torch.nn.init.normal_(other_head.classifier[-1].weight)
    assert features_fingerprint(data, other_head, processor, "image") == key  # the head is not what they depend on
    other_backbone = build_model("resnet", names, image_size=8, width=4, depth=1, seed=1)
    assert features_fingerprint(data, other_backbone, processor, "image") != key
    assert features_fingerprint(data, model, tiny_image_processor(16), "image") != key  # another resolution
    assert features_fingerprint(data.select(range(11)), model, processor, "image") != key  # other data
    calls = []
    real = module.head_features
    monkeypatch.setattr(module, "head_features", lambda *a: calls.append(1) or real(*a))
    first = cache_features(data, model, processor, batch_size=4)
    computed = len(calls)
    second = cache_features(data, model, processor, batch_size=4)
    assert computed == 3 and len(calls) == computed  # 12 rows in batches of 4, then read back, not computed again
    assert first._fingerprint == second._fingerprint and first.cache_files and second.cache_files == first.cache_files
    np.testing.assert_array_equal(np.asarray(first[FEATURE_COLUMN]), np.asarray(second[FEATURE_COLUMN]))
