"""Plant realistic bugs one at a time in a scratch copy of the project and check that the tests catch each by an
assertion.

    python benchmarks/mutation_check.py            # every bug (a few minutes on 2 cores)
    python benchmarks/mutation_check.py --list     # the bugs and the tests that should catch them
    python benchmarks/mutation_check.py kd_without_tau_squared split_overlap   # some of them

Not run in CI. The project's files (``git ls-files``: tracked and untracked-but-not-ignored, as they are in the
working tree) are copied into a temporary folder; each bug is an exact ``(file, old text, new text)`` replacement
(several for one bug when the bug spans lines), applied to that copy alone, and the script fails loudly when an old
text is not found exactly once, so the list cannot rot silently when the code moves. For each bug the few tests
named with it run in a fresh ``pytest`` against the copy (``PYTHONPATH`` = the copy; the script checks that the
copy's ``hf_w2s`` is the one imported), then the file is restored. A first run without any bug checks that all
those tests pass.

A bug counts as **caught** only when a test fails on an assertion (``AssertionError``, which includes a
``pytest.raises(..., match=...)`` whose message does not match, or pytest's ``Failed``, e.g. ``DID NOT RAISE``).
A test that fails with any other exception has only **crashed** on the bug; a bug whose tests all pass is **not
caught**. Exit status 0 when every bug is caught.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Bug:
    name: str
    what: str
    edits: tuple[tuple[str, str, str], ...]  # (file relative to the repository root, old text, new text)
    tests: tuple[str, ...]  # pytest node ids


def bug(name, what, edits, tests):
    if isinstance(edits[0], str):
        edits = (edits,)
    return Bug(name, what, tuple(tuple(e) for e in edits), tuple(tests))


LOSSES, TRAINER, LABELS = "hf_w2s/losses.py", "hf_w2s/trainer/trainer.py", "hf_w2s/labels.py"
WEAK_LABELS, MULTI = "hf_w2s/data/weak_labels.py", "hf_w2s/trainer/combiner.py"
T_LOSSES, T_TRAINER, T_WEAK, T_MULTI = ("tests/test_losses.py", "tests/test_trainer.py", "tests/test_weak_labels.py",
                                        "tests/test_multi_weak.py")

BUGS = [
    # -- the seven the issue found uncaught ------------------------------------------------------------------------
    bug("gt_loss_weight_ignored", "the trainer adds the ground-truth term at weight 1 whatever gt_loss_weight is",
        (TRAINER, "gt_loss_weight=self.args.gt_loss_weight,",
         "gt_loss_weight=float(self.args.gt_loss_weight > 0),"),
        [f"{T_TRAINER}::test_one_step_follows_the_weighted_loss_by_hand"]),
    bug("gt_term_unweighted", "compute_w2s_loss adds the ground-truth term without its weight",
        (LOSSES, "loss = loss + gt_loss_weight * ce_gt_mean", "loss = loss + ce_gt_mean"),
        [f"{T_LOSSES}::test_gt_loss_weight_scales_the_ground_truth_term"]),
    bug("labelling_weak_model_not_in_eval", "label_dataset runs the weak model in training mode",
        (WEAK_LABELS, "        with predicting(model):\n            logits = model(",
         "        with torch.inference_mode():\n            logits = model("),
        [f"{T_WEAK}::test_columns_equal_a_direct_forward"]),
    bug("learned_weights_sum_normalised", "the learned supervisor weights are normalised by a sum, not a softmax",
        (MULTI, "F.softmax(self.logit_weights, dim=0)",
         "(self.logit_weights + 1) / (self.logit_weights + 1).sum()"),
        [f"{T_MULTI}::test_combiner_modes_and_gradients",
         f"{T_MULTI}::test_learned_weights_move_toward_the_better_supervisor"]),
    bug("cross_process_means_unweighted", "metrics gathered over processes are the mean of the processes' means",
        ("hf_w2s/distributed.py", "packed = torch.cat([local * count, torch.tensor([float(count)], device=device)])",
         "packed = torch.cat([local, torch.tensor([1.0], device=device)])"),
        ["tests/test_distributed.py::test_gather_weighted_means_weights_each_process_by_its_batch_size",
         "tests/test_distributed.py::test_logged_metrics_are_gathered_over_both_processes"]),
    bug("weak_labels_aligned_with_forward_permutation",
        "align_weak_labels maps the weak_label ids with the forward instead of the inverse permutation",
        (WEAK_LABELS, "WEAK_LABEL_COLUMN: inverse[np.asarray(weak_label)]",
         "WEAK_LABEL_COLUMN: index[np.asarray(weak_label)]"),
        [f"{T_WEAK}::test_align_weak_labels_reorders_for_the_student"]),
    bug("labelling_without_inference_mode", "the weak model's labelling forward runs with autograd on",
        (WEAK_LABELS, "        with predicting(model):\n            logits = model(",
         "        with torch.no_grad():\n            logits = model("),
        [f"{T_WEAK}::test_labelling_forward_runs_without_autograd"]),
    bug("online_weak_ignores_weak_pixel_values", "the online weak model sees the student's pixel values",
        (TRAINER, 'pixel_values = inputs.get("weak_pixel_values", inputs["pixel_values"])',
         'pixel_values = inputs["pixel_values"]'),
        [f"{T_TRAINER}::test_online_weak_model_uses_its_own_preprocessing"]),
    # -- losses ------------------------------------------------------------------------------------------------------
    bug("adapt_conf_a_with_gradient", "AdaptConf's a is computed without stop-gradient",
        (LOSSES, "a = adaptive_confidence(student_logits, weak_logits, confidence_temperature, log_probs=log_p)",
         "a = torch.sigmoid((_nll(log_p, student_logits.argmax(-1)) - _nll(log_p, weak_logits.argmax(-1)))"
         " / confidence_temperature)"),
        [f"{T_LOSSES}::test_adapt_conf_a_carries_no_gradient"]),
    bug("kd_without_tau_squared", "KD drops the tau^2 factor",
        (LOSSES, "return (tau**2) * kl", "return kl"),
        [f"{T_LOSSES}::test_kd"]),
    bug("adapt_conf_a_inverted", "AdaptConf weighs the KD term by a and the self term by 1 - a",
        (LOSSES, "loss = (1 - a) * kd_l + a * ce_self\n    return W2SLossOutput(loss, {\"kd\": kd_l.detach(), "
                 "\"ce_self\": ce_self.detach(), \"a\": a})",
         "loss = a * kd_l + (1 - a) * ce_self\n    return W2SLossOutput(loss, {\"kd\": kd_l.detach(), "
         "\"ce_self\": ce_self.detach(), \"a\": a})"),
        [f"{T_LOSSES}::test_adapt_conf_matches_hand_computation"]),
    bug("aux_conf_warmup_continuous", "aux_conf's coefficient keeps warming up past aux_warmup (no jump)",
        (LOSSES, "coef = openai_warmup(progress, aux_warmup, a_max)",
         "coef = linear_schedule(progress, aux_warmup, a_max)"),
        [f"{T_LOSSES}::test_aux_conf_warmup_jumps_at_ten_percent",
         f"{T_LOSSES}::test_aux_conf_is_openai_logconf_loss"]),
    bug("product_target_not_detached", "the product loss lets gradient flow through its target",
        (LOSSES, "log_target = product_beta * log_p_s.detach()", "log_target = product_beta * log_p_s"),
        [f"{T_LOSSES}::test_product_target_carries_no_gradient"]),
    bug("mixup_labels_swapped", "the ground-truth term weighs the mixed-in labels by lambda",
        (LOSSES, "pairs = [(lam, labels), (1.0 - lam, labels[perm])]",
         "pairs = [(lam, labels[perm]), (1.0 - lam, labels)]"),
        [f"{T_LOSSES}::test_ground_truth_term_under_mixup_and_label_smoothing"]),
    bug("conf_select_ties_to_student", "conf_select gives ties to the student",
        (LOSSES, "return (weak_confidence >= student).float()", "return (weak_confidence > student).float()"),
        ["tests/test_conf_select.py::test_hard_selection",
         "tests/test_conf_select.py::test_warmup_starts_as_weak_hard_and_ramps_linearly"]),
    # -- metrics and label spaces ------------------------------------------------------------------------------------
    bug("pgr_formula", "PGR divides by the ceiling instead of the gap",
        ("hf_w2s/metrics.py", "return (w2s - weak) / gap", "return (w2s - weak) / ceiling"),
        ["tests/test_metrics.py::test_pgr"]),
    bug("accuracy_counts_ignored_labels", "accuracy counts the -100 (ignored) labels",
        ("hf_w2s/metrics.py", "    valid = labels != -100\n    if not valid.any():\n        return float(\"nan\")\n"
         "    return float((preds[valid]", "    valid = labels == labels\n    if not valid.any():\n"
         "        return float(\"nan\")\n    return float((preds[valid]"),
        ["tests/test_metrics.py::test_accuracy_and_agreement"]),
    bug("label_permutation_forward", "label_permutation returns the permutation the other way round",
        (LABELS, "    pos = {n: i for i, n in enumerate(source_names)}\n    return [pos[n] for n in target_names]",
         "    pos = {n: i for i, n in enumerate(target_names)}\n    return [pos[n] for n in source_names]"),
        ["tests/test_metrics.py::test_label_permutation_by_name",
         f"{T_WEAK}::test_reordered_weak_labels_are_remapped_by_name"]),
    bug("labels_matched_by_index", "weak and strong label spaces are matched by index, not by name",
        (LABELS, "    pos = {n: i for i, n in enumerate(source_names)}\n    return [pos[n] for n in target_names]",
         "    return None"),
        [f"{T_TRAINER}::test_online_weak_model_equals_cached_logits_and_remaps_names",
         f"{T_WEAK}::test_reordered_weak_labels_are_remapped_by_name"]),
    bug("weak_accuracy_forward_permutation", "weak_label_accuracy maps the ground truth with the forward permutation",
        (WEAK_LABELS, "inverse = np.argsort(np.asarray(perm))  # ground-truth id -> weak-label id",
         "inverse = np.asarray(perm)"),
        [f"{T_WEAK}::test_weak_label_accuracy_by_hand"]),
    # -- training --------------------------------------------------------------------------------------------------
    bug("loss_scaling_under_accumulation_dropped", "the trainer lets transformers rescale the per-batch mean loss",
        (TRAINER, "    loss_is_scaled_for_ga = False\n", ""),
        [f"{T_TRAINER}::test_gradient_accumulation_matches_full_batch"]),
    bug("online_weak_logits_not_reordered", "the online weak model's logits are used in its own label order",
        (TRAINER, "logits = reorder_logits(self.weak_model(pixel_values=pixel_values).logits.float(), self._weak_perm)",
         "logits = self.weak_model(pixel_values=pixel_values).logits.float()"),
        [f"{T_TRAINER}::test_online_weak_model_equals_cached_logits_and_remaps_names"]),
    bug("layer_decay_off_by_one", "layer-wise learning-rate decay gives the head a decayed rate",
        ("hf_w2s/trainer/optim.py", "scale = decay ** (num_layers + 1 - layer)",
         "scale = decay ** (num_layers + 2 - layer)"),
        ["tests/test_optim.py::test_each_layer_trains_at_its_decayed_rate"]),
    bug("calibration_temperature_multiplies", "conf_select's calibrated confidence multiplies the logits by T",
        (LOSSES, "probs = F.softmax(logits.detach().float() / temperature, dim=-1)",
         "probs = F.softmax(logits.detach().float() * temperature, dim=-1)"),
        ["tests/test_conf_select.py::test_calibrated_confidence", "tests/test_conf_select.py::test_hard_selection"]),
    bug("short_tokens_not_redacted", "tokens are redacted only when longer than the usual length",
        ("hf_w2s/security.py", 'TOKEN_PATTERN = re.compile(r"\\bhf_(?:oauth_)?[A-Za-z0-9]{20,}\\b")',
         'TOKEN_PATTERN = re.compile(r"\\bhf_(?:oauth_)?[A-Za-z0-9]{40,}\\b")'),
        ["tests/test_security.py::test_redact_hides_env_passed_and_token_shaped_strings"]),
    bug("online_weak_model_not_in_eval", "the online weak model is left in training mode",
        ("hf_w2s/distributed.py", "    weak_model.eval()\n    weak_model.requires_grad_(False)",
         "    weak_model.requires_grad_(False)"),
        ["tests/test_distributed.py::test_prepare_weak_model_is_inference_only_and_unwrapped",
         f"{T_TRAINER}::test_online_weak_model_uses_its_own_preprocessing"]),
    bug("progress_from_epochs", "the schedules' progress counts epochs, not steps",
        (TRAINER, "return float(self.state.global_step) / max_steps if max_steps > 0 else 1.0",
         "return float(self.state.epoch or 0.0) / max(self.args.num_train_epochs, 1.0)"),
        [f"{T_TRAINER}::test_schedule_progress_comes_from_trainer_state"]),
    # -- data ------------------------------------------------------------------------------------------------------
    bug("split_overlap", "consecutive w2s splits share an example",
        ("hf_w2s/data/splits.py", "        start += int(size)\n", "        start += max(int(size) - 1, 0)\n"),
        ["tests/test_data.py::test_w2s_splits_are_disjoint_and_seeded"]),
    bug("shots_per_class_off_by_one", "few-shot draws one example fewer per class",
        ("hf_w2s/data/splits.py", "chosen.append(rng.choice(idx, size=k, replace=False))",
         "chosen.append(rng.choice(idx, size=k - 1, replace=False))"),
        ["tests/test_experiment.py::test_shots_per_class"]),
    bug("noise_rate_off", "symmetric noise may 'flip' a label to itself, so the realised rate is below the rate",
        ("hf_w2s/data/noise.py", "offsets = rng.integers(1, num_classes, size=n_flip)",
         "offsets = rng.integers(0, num_classes, size=n_flip)"),
        ["tests/test_noise.py::test_symmetric_flips_exactly_rate_to_other_classes_uniformly"]),
    bug("accuracy_weights_ignore_chance", "accuracy-weighted supervisors are weighted by raw accuracy",
        (MULTI, "above = (acc - 1.0 / num_classes).clamp_min(0.0)", "above = acc"),
        [f"{T_MULTI}::test_accuracy_weights_above_chance"]),
]



# -- issue 31: every figure knows its split, and a model predicts for a decision in evaluation mode ----------------
RUNNER, REPORT, CARD, PROV = ("hf_w2s/experiment/runner.py", "hf_w2s/experiment/report.py", "hf_w2s/experiment/card.py",
                              "hf_w2s/experiment/provenance.py")
T_PROV, T_CONF = "tests/test_provenance.py", "tests/test_conf_select.py"
PROV_RUN = [f"{T_PROV}::test_the_candidate_and_its_figure_are_those_of_the_validation_split",
            f"{T_PROV}::test_every_record_names_the_split_of_each_figure_by_content"]
PREDICTING = ("hf_w2s/predicting.py", "tests/test_predicting.py")

BUGS += [
    bug("selection_figures_on_test", "the figures that choose candidates and the saved student are read on test",
        (RUNNER, "validation = self._validation_figures(trainer, validation_ds)",
         "validation = self._validation_figures(trainer, test_ds)"), PROV_RUN),
    bug("checkpoints_chosen_on_test", "strong runs evaluate (checkpoints, early stopping) on the test split",
        (RUNNER, "eval_dataset=validation_ds if self.evaluates else None",
         "eval_dataset=test_ds if self.evaluates else None"), PROV_RUN),
    bug("candidate_chosen_by_test_figure", "the candidate with the best test figure is chosen",
        (REPORT, 'values = [r[f"validation_{metric}"] for r in records if r.get(f"validation_{metric}") is not None]',
         'values = [r[f"test_{metric}"] for r in records if r.get(f"test_{metric}") is not None]'), PROV_RUN[:1]),
    bug("provenance_check_removed", "check_figures lets every record through",
        (PROV, '    ids = registry(exp)\n    test = ids.fingerprint_of("test")\n',
         '    return\n    ids = registry(exp)\n    test = ids.fingerprint_of("test")\n'),
        [f"{T_PROV}::test_a_record_whose_choosing_figure_was_read_on_test_stops_the_report",
         f"{T_PROV}::test_validation_figures_computed_on_test_stop_the_card_and_the_report"]),
    bug("report_without_provenance_check", "the report is written without checking its records",
        (REPORT, '    check_figures(exp, results, "the report")', "    pass"),
        [f"{T_PROV}::test_a_record_whose_choosing_figure_was_read_on_test_stops_the_report"]),
    bug("card_without_provenance_check", "the card is rendered without checking the records",
        (CARD, '    check_figures(exp, results, "the card")', "    pass"),
        [f"{T_PROV}::test_validation_figures_computed_on_test_stop_the_card_and_the_report"]),
    bug("stamped_by_split_name", "validation figures are stamped with the validation split, whatever they read",
        (RUNNER, 'self.split_ids.stamp(validation, SELECTION, "validation_accuracy"',
         'self.split_ids.stamp(self.splits()["validation"], SELECTION, "validation_accuracy"'),
        [f"{T_PROV}::test_validation_figures_computed_on_test_stop_the_card_and_the_report"]),
    bug("checkpoint_figures_unstamped", "the evaluations during training carry no provenance",
        (PROV, "        out.update(ids.stamp(trainer.eval_dataset, SELECTION, CHECKPOINTS))", "        pass"),
        PROV_RUN[1:] + [f"{T_PROV}::test_checkpoints_evaluated_on_test_stop_the_card"]),
    bug("relabelled_split_counts_as_the_split", "a split's images with other labels count as that split",
        (PROV, '                name += "+relabelled"', "                pass"),
        [f"{T_PROV}::test_without_ground_truth_students_choose_on_the_weak_labelled_validation_split"]),
    bug("recalibration_in_training_mode", "conf_select refits the student's temperature on training-mode logits",
        ("hf_w2s/calibration.py", "    with predicting(model):\n        for start",
         "    with torch.no_grad():\n        for start"),
        [f"{T_CONF}::test_predict_logits_and_callback_refit",
         f"{T_CONF}::test_trainer_refits_the_student_temperature"]),
    bug("predicting_without_eval", "predicting leaves the model in training mode",
        (PREDICTING[0], "        for model in models:\n            model.eval()\n", ""),
        [f"{PREDICTING[1]}::test_predicts_in_evaluation_mode_without_autograd_and_gives_each_module_its_mode_back",
         f"{T_WEAK}::test_columns_equal_a_direct_forward"]),
    bug("predicting_keeps_eval_mode", "predicting does not give the modules their modes back",
        (PREDICTING[0], "                module.training = training", "                pass"),
        [f"{PREDICTING[1]}::test_predicts_in_evaluation_mode_without_autograd_and_gives_each_module_its_mode_back",
         f"{T_CONF}::test_predict_logits_and_callback_refit"]),
    bug("predicting_with_autograd", "predicting runs under no_grad instead of inference_mode",
        (PREDICTING[0], "else torch.inference_mode()", "else torch.no_grad()"),
        [f"{PREDICTING[1]}::test_predicts_in_evaluation_mode_without_autograd_and_gives_each_module_its_mode_back",
         f"{T_WEAK}::test_labelling_forward_runs_without_autograd"]),
    # -- token redaction, layer by layer ---------------------------------------------------------------------------
    bug("card_not_redacted", "the model card is rendered without redaction",
        ("hf_w2s/hub.py", "    return card if redact(text) == text else type(card)(redact(text))", "    return card"),
        ["tests/test_redaction_layers.py::test_a_card_rendered_from_free_text_holding_a_token_shows_none"]),
    bug("token_keys_not_masked", "values of *token keys are masked only when they look like a token",
        ("hf_w2s/security.py", 'if isinstance(key, str) and key.lower().endswith("token")',
         'if isinstance(key, str) and key.lower() == "token"'),
        ["tests/test_redaction_layers.py::test_json_written_to_files_masks_token_keys_and_token_shaped_values"]),
    bug("stream_not_redacted", "the redacting stream writes what it is given",
        ("hf_w2s/security.py", "        self._stream.write(TOKEN_PATTERN.sub(MASK, clean))",
         "        self._stream.write(text)"),
        ["tests/test_redaction_layers.py::test_printed_streams_are_redacted_and_given_back"]),
]

# -- issue 29: the preflight, data identity, where a run writes, reruns ----------------------------------------------
T_MECH = "tests/test_bad_input_mechanisms.py"
BUGS += [
    bug("weak_labels_joined_by_position", "weak labels are put next to the images in their own row order",
        ("hf_w2s/data/identity.py", "    if IDENTITY_COLUMN in columns:\n        return [str(v) for v in",
         "    if IDENTITY_COLUMN in columns or image_column in columns:\n        return [str(v) for v in range(len("
         "dataset))] or ["),
        [f"{T_MECH}::test_weak_labels_given"]),
    bug("preflight_skipped", "the runner trains without its preflight",
        ("hf_w2s/experiment/runner.py", "        preflight(self, done)  # reruns", "        pass  # reruns"),
        [f"{T_MECH}::test_preflight_student", f"{T_MECH}::test_rerun_unfinished"]),
    bug("output_containing_an_input_allowed", "an output folder that holds an input is taken",
        ("hf_w2s/outputs.py", "        elif out in src.parents:", "        elif False:"),
        [f"{T_MECH}::test_output_holds_input"]),
    bug("unfinished_run_restarted", "an interrupted run is started again from step 0 without a word",
        ("hf_w2s/experiment/preflight.py", "        if found:", "        if False:"),
        [f"{T_MECH}::test_rerun_unfinished"]),
    bug("label_overwrite_deletes_anything", "hf-w2s label --overwrite replaces any folder",
        ("hf_w2s/scripts/label.py", "        if config.overwrite and not _labelled_output(output):",
         "        if False:"),
        [f"{T_MECH}::test_label_overwrite_not_labels"]),
]


# -- the run -----------------------------------------------------------------------------------------------------

PLUGIN = '''
"""pytest plugin of benchmarks/mutation_check.py: how each test ended (assertion or another exception)."""
import json, os
import pytest

_RESULTS = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        exc = call.excinfo
        assertion = exc is not None and (exc.errisinstance(AssertionError)
                                         or exc.errisinstance(pytest.fail.Exception))
        kind = "assertion" if assertion and report.when == "call" else "crash"
        name = exc.typename if exc is not None else "?"
        line = str(exc.value).strip().splitlines()[0][:160] if exc is not None and str(exc.value).strip() else ""
        _RESULTS[item.nodeid] = {"outcome": kind, "when": report.when, "error": f"{name}: {line}"}
    elif report.when == "call" and item.nodeid not in _RESULTS:
        _RESULTS[item.nodeid] = {"outcome": "passed" if report.passed else report.outcome}


def pytest_sessionfinish(session):
    import hf_w2s
    with open(os.environ["MUTATION_RESULTS"], "w") as f:
        json.dump({"tests": _RESULTS, "hf_w2s": hf_w2s.__file__}, f)
'''


def project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return sorted({f for f in out.split("\0") if f and (REPO / f).is_file()})


def make_scratch() -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="hf_w2s-mutation-"))
    for rel in project_files():
        target = scratch / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    (scratch / "mutation_plugin.py").write_text(PLUGIN)
    return scratch


def check_edits(bugs: list[Bug]) -> None:
    """Every old text is found exactly once in the repository's file: fail loudly otherwise."""
    problems = []
    for b in bugs:
        for rel, old, new in b.edits:
            path = REPO / rel
            count = path.read_text().count(old) if path.is_file() else -1
            if count != 1 or old == new:
                where = "file missing" if count < 0 else f"found {count} times"
                problems.append(f"{b.name}: {rel}: old text {old!r} ({where})")
    if problems:
        raise SystemExit("mutation_check: these planted bugs no longer apply; update the list:\n  " +
                         "\n  ".join(problems))


def run_tests(scratch: Path, node_ids, timeout: int) -> dict:
    results = scratch / "mutation_results.json"
    results.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(scratch), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "MUTATION_RESULTS": str(results), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "mutation_plugin", "-p", "no:cacheprovider", "-o",
           "addopts=", *node_ids]
    try:
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"tests": {}, "timeout": True}
    if not results.is_file():
        return {"tests": {}, "output": proc.stdout[-2000:] + proc.stderr[-2000:]}
    data = json.loads(results.read_text())
    if not Path(data["hf_w2s"]).resolve().is_relative_to(scratch.resolve()):
        raise SystemExit(f"mutation_check: the tests imported {data['hf_w2s']}, not the scratch copy in {scratch}")
    data["output"] = proc.stdout[-2000:]
    return data


def verdict(data: dict, node_ids) -> tuple[str, str]:
    tests = data.get("tests", {})
    if data.get("timeout"):
        return "crashed", "timed out"
    failed = {k: v for k, v in tests.items() if v["outcome"] in ("assertion", "crash")}
    asserted = [f"{k.split('::', 1)[-1]}: {v['error']}" for k, v in failed.items() if v["outcome"] == "assertion"]
    if asserted:
        return "caught", asserted[0]
    if failed:
        k, v = next(iter(failed.items()))
        return "crashed", f"{k.split('::', 1)[-1]}: {v['error']}"
    if not tests:
        return "crashed", "no test ran: " + data.get("output", "")[-300:]
    return "not caught", f"{len(tests)} test(s) passed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="only these bugs (default: all)")
    parser.add_argument("--list", action="store_true", help="list the bugs and their tests, run nothing")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per pytest run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args(argv)
    names = [b.name for b in BUGS]
    assert len(set(names)) == len(names), "duplicate bug names"
    unknown = [n for n in args.names if n not in names]
    if unknown:
        parser.error(f"unknown bugs {unknown}; see --list")
    bugs = [b for b in BUGS if not args.names or b.name in args.names]
    check_edits(bugs)
    if args.list:
        for b in bugs:
            print(f"{b.name}: {b.what}\n    " + "\n    ".join(b.tests))
        return 0
    scratch = make_scratch()
    start = time.time()
    try:
        all_ids = list(dict.fromkeys(t for b in bugs for t in b.tests))
        base = run_tests(scratch, all_ids, args.timeout * 2)
        bad = {k: v for k, v in base.get("tests", {}).items() if v["outcome"] != "passed"}
        missing = [t for t in all_ids if not any(k == t or k.startswith(t + "[") for k in base.get("tests", {}))]
        if bad or missing or base.get("timeout"):
            raise SystemExit("mutation_check: without any planted bug these tests must pass first:\n  " +
                             "\n  ".join([f"{k}: {v}" for k, v in bad.items()] + [f"{t}: not run" for t in missing])
                             + "\n" + base.get("output", "")[-1500:])
        print(f"baseline: {len(base['tests'])} tests pass on the unchanged copy ({time.time() - start:.0f} s)")
        counts = {"caught": 0, "crashed": 0, "not caught": 0}
        for b in bugs:
            originals = {}
            for rel, old, new in b.edits:
                path = scratch / rel
                originals.setdefault(path, path.read_text())
                path.write_text(path.read_text().replace(old, new, 1))
            t0 = time.time()
            try:
                state, detail = verdict(run_tests(scratch, b.tests, args.timeout), b.tests)
            finally:
                for path, text in originals.items():
                    path.write_text(text)
            counts[state] += 1
            print(f"{state.upper():11s} {b.name} ({time.time() - t0:.0f} s) -- {b.what}\n            {detail}",
                  flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    total = len(bugs)
    print(f"\ncaught {counts['caught']} / {total} by an assertion ({counts['crashed']} only by a crash, "
          f"{counts['not caught']} not caught) in {time.time() - start:.0f} s")
    return 0 if counts["caught"] == total else 1


if __name__ == "__main__":
    sys.exit(main())
