"""Sharded training (FSDP2) of the student with two real CPU processes (gloo) against one process.

One launch per module (``fsdp_runs``): ``accelerate launch --config_file examples/accelerate/fsdp_cpu.yaml
tests/scripts/fsdp_worker.py OUT all`` (2 processes). It first trains with FSDP from the ``TrainingArguments`` alone
(the launcher's FSDP variables hidden): cached and online weak supervision, sharded checkpoints, ``save_model``, a
ConvNeXt student; then a fresh trainer and student resume from a sharded checkpoint with FSDP from the launcher's
config. The single-process references (1 process × batch 8, no FSDP) run in the test process with the same builders
(tests/scripts/fsdp_worker.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import fsdp_worker  # noqa: E402

from hf_w2s.distributed import adapt_model_to_fsdp2, enable_fsdp_on_cpu, own_fsdp_plugin, unshard_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ACCELERATE_FSDP_CPU = REPO / "examples" / "accelerate" / "fsdp_cpu.yaml"


def _launcher(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def _launch(out: Path, phase: str, accelerate_config: Path | None = None) -> dict:
    """``torchrun --standalone --nproc_per_node 2``, or ``accelerate launch --config_file`` (2 processes too);
    returns the worker's results."""
    if accelerate_config is None:
        launch = [_launcher("torchrun"), "--standalone", "--nproc_per_node", "2"]
    else:
        launch = [_launcher("accelerate"), "launch", "--config_file", str(accelerate_config)]
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": path,
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [*launch, str(SCRIPTS / "fsdp_worker.py"), str(out), phase],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, f"{launch[0]} {phase} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    results = json.loads((out / f"results-{phase}.json").read_text())
    print(f"{phase}: seconds per section of the launch {results['seconds']}")
    return results


@pytest.fixture(scope="module")
def fsdp_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    return out, _launch(out, "all", accelerate_config=ACCELERATE_FSDP_CPU)


def _load(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _max_abs_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _losses(log_history) -> list[float]:
    return [e["loss"] for e in log_history if "loss" in e]


def test_fsdp_is_really_on_and_shards_the_student(fsdp_runs):
    _, results = fsdp_runs
    assert results["fsdp_enabled"] and results["distributed_type"] == "DistributedType.FSDP"
    assert results["world_size"] == 2
    # training took FSDP from the TrainingArguments alone (the launcher's FSDP variables hidden), the resumed run
    # from the launcher's config file (it did set them)
    assert results["launcher_fsdp_vars_in_train"] == []
    assert results["fsdp_state_dict_type_from_launcher"] == "SHARDED_STATE_DICT"
    assert results["model_class"] == "FSDPViTForImageClassification"  # fully_shard, not DDP
    assert results["convnext_class"] == "FSDPConvNextForImageClassification"
    # each process holds about half of the parameters; together exactly the model
    full = sum(p.numel() for p in fsdp_worker.student().parameters())
    local = results["local_numel"]
    assert sum(local) == full and max(local) < 0.6 * full
    assert results["learned_under_fsdp"].startswith("weak_combination='learned' is not supported with FSDP2")
    # the online weak model stays a plain replicated model (inference only, never wrapped)
    assert results["weak_model_class"] == "ConvNextForImageClassification"
    # unshard_model: a plain replica of the trained student, with the sharded model's outputs
    assert results["unsharded_class"] == "ViTForImageClassification"
    assert results["unsharded_probe_max_diff"] < 1e-6


@pytest.mark.parametrize("run, mode, arch", [("cached", "cached", "vit"), ("online", "online", "vit"),
                                             ("convnext", "cached", "convnext")])
def test_two_fsdp_processes_of_batch_4_train_like_one_process_of_batch_8(fsdp_runs, run, mode, arch, tmp_path):
    out, results = fsdp_runs
    reference = fsdp_worker.trainer(mode, 2 * fsdp_worker.PER_DEVICE_BATCH, str(tmp_path / "ref"), fsdp=False,
                                    arch=arch)
    reference.train()
    ref_weights = {k: v.detach() for k, v in reference.model.state_dict().items()}
    fsdp_weights = _load(out / f"{run}.safetensors")
    diff = _max_abs_diff(fsdp_weights, ref_weights)
    print(f"{run}: max |w_fsdp - w_ref| after {fsdp_worker.STEPS} steps = {diff:.3g}")
    assert diff < 1e-6, diff
    initial = fsdp_worker.student(arch).state_dict()
    assert _max_abs_diff(ref_weights, initial) > 1e-2  # the steps really moved the weights
    # the same global batches in the same order (the seeded sampler, across the epoch boundary): same losses
    ref_losses = _losses(reference.state.log_history)
    assert len(ref_losses) == fsdp_worker.STEPS
    assert _losses(results[run]) == pytest.approx(ref_losses, rel=1e-5)


def test_resuming_a_sharded_checkpoint_ends_at_the_uninterrupted_weights(fsdp_runs):
    out, results = fsdp_runs
    checkpoint = out / "run-cached" / f"checkpoint-{fsdp_worker.SAVE_STEPS}"
    # a sharded checkpoint: one torch.distributed.checkpoint file per process for the model and the optimizer
    for part in ("pytorch_model_fsdp_0", "optimizer_0"):
        assert sorted(p.name for p in (checkpoint / part).glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert not (checkpoint / "model.safetensors").exists()
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    # the resumed run (a fresh trainer and student, FSDP from the launcher's config) trained only the remaining
    # steps, and they match the uninterrupted run's
    assert results["fsdp_from"] == "accelerate launch"
    assert results["resume_model_class"] == "FSDPViTForImageClassification"
    assert results["resume_state_dict_type"] == "StateDictType.SHARDED_STATE_DICT"  # the launcher's setting
    assert results["resumed_steps_run"] == list(range(fsdp_worker.SAVE_STEPS + 1, fsdp_worker.STEPS + 1))
    assert _losses(results["resumed"]) == pytest.approx(_losses(results["cached"]), rel=1e-6)
    diff = _max_abs_diff(_load(out / "resumed.safetensors"), _load(out / "cached.safetensors"))
    print(f"resume: max |w_resumed - w_uninterrupted| = {diff:.3g}")
    assert diff < 1e-7


def _saved_shapes(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def test_save_model_under_fsdp_writes_a_plain_transformers_checkpoint(fsdp_runs, tmp_path):
    from transformers import AutoModelForImageClassification

    out, _ = fsdp_runs
    saved = out / "saved"
    assert (saved / "model.safetensors").is_file() and (saved / "config.json").is_file()
    # full tensors under the same names as a plain save_pretrained of the student (not shards)
    fsdp_worker.student().save_pretrained(tmp_path)
    assert _saved_shapes(saved) == _saved_shapes(tmp_path)
    model = AutoModelForImageClassification.from_pretrained(str(saved)).eval()
    assert model.config.id2label == {i: n for i, n in enumerate(fsdp_worker.NAMES)}
    with torch.no_grad():
        logits = model(pixel_values=fsdp_worker.probe_pixels()).logits
    trained = _load(out / "probe.safetensors")["logits"]  # the FSDP-sharded model's own output
    torch.testing.assert_close(logits, trained, rtol=0, atol=1e-5)
    # and the weights are the trained ones (not the initial ones)
    assert _max_abs_diff(model.state_dict(), _load(out / "cached.safetensors")) < 1e-7
    # Trainer.push_to_hub's own save (to output_dir) writes them too; the checkpoint-N folders stay sharded
    assert _saved_shapes(out / "run-cached") == _saved_shapes(tmp_path)
    pushed = AutoModelForImageClassification.from_pretrained(str(out / "run-cached"))
    assert _max_abs_diff(pushed.state_dict(), _load(out / "cached.safetensors")) < 1e-7


def test_the_recipe_command_trains_a_weak_supervisor_then_the_student_under_fsdp(fsdp_runs):
    """``hf-w2s train --fsdp --fsdp_config examples/accelerate/fsdp_config.json`` on the ViT transfer recipe, in both
    processes: the weak supervisor is fine-tuned sharded, then the student on the same training arguments (a second
    trainer in the same processes) with the weak model online; both saved as plain checkpoints in ``student/``. The
    main process alone writes (the results, the student, the report) and prints; the other one reads what it wrote."""
    from transformers import AutoModelForImageClassification

    out, results = fsdp_runs
    assert results["recipe_exit_code"] == 0, results["recipe_errors"]
    recipe = out / "recipe"
    student = AutoModelForImageClassification.from_pretrained(str(recipe / "student"))
    weak = AutoModelForImageClassification.from_pretrained(str(recipe / "student" / "weak_model"))
    assert type(student).__name__ == "ViTForImageClassification"
    assert type(weak).__name__ == "ConvNextForImageClassification"
    assert student.config.id2label == weak.config.id2label and len(student.config.id2label) == 10
    summary = json.loads((recipe / "student" / "w2s_results.json").read_text())
    assert 0.0 <= summary["accuracy"] <= 1.0
    records = [json.loads(line) for line in (recipe / "results.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["weak", "w2s"]  # each run once: written by the main process only
    assert records[0]["num_train_examples"] == 64 and records[1]["test_accuracy"] == summary["accuracy"]
    main, other = ((out / f"recipe-stdout-{rank}.txt").read_text() for rank in (0, 1))
    assert json.loads(main.strip().splitlines()[-1])["accuracy"] == summary["accuracy"]  # the summary, once
    assert "[2/2]" in main  # the progress, the summary: the main process's (notices may come from either)
    assert not [line for line in other.splitlines() if line and not line.startswith("notice:")], other


def test_deepspeed_zero3_on_cpu_trains_like_one_process(tmp_path):
    """Optional: DeepSpeed is not a dependency (``pip install deepspeed`` brings its CPU accelerator, gloo)."""
    pytest.importorskip("deepspeed")
    results = _launch(tmp_path, "deepspeed")
    assert results["deepspeed_enabled"] and results["weak_model_class"] == "DeepSpeedEngine"  # weak: ZeRO-3 too
    reference = fsdp_worker.trainer("online", 2 * fsdp_worker.PER_DEVICE_BATCH, str(tmp_path / "ref"), fsdp=False)
    reference.train()
    diff = _max_abs_diff(_load(tmp_path / "deepspeed.safetensors"), reference.model.state_dict())
    print(f"deepspeed ZeRO-3: max |w_ds - w_ref| = {diff:.3g}")
    assert diff < 1e-6
    assert _losses(results["deepspeed"]) == pytest.approx(_losses(reference.state.log_history), rel=1e-5)


# -- single-process pieces ------------------------------------------------------------------------------------------


def _plugin(**kwargs):
    from accelerate.utils import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="TRANSFORMER_BASED_WRAP", **kwargs)


def test_vit_input_embeddings_inside_a_wrap_unit_are_not_carved_out_again():
    model = fsdp_worker.student()
    (change,) = adapt_model_to_fsdp2(model, _plugin())
    assert "vit.embeddings.patch_embeddings" in change and "ViTEmbeddings" in change
    assert model.get_input_embeddings() is None
    # wrapping only the encoder layers leaves the patch embedding free to be its own unit: left alone
    model = fsdp_worker.student()
    assert adapt_model_to_fsdp2(model, _plugin(transformer_cls_names_to_wrap=["ViTLayer"])) == []
    assert model.get_input_embeddings() is model.vit.embeddings.patch_embeddings


def test_cnn_without_input_embeddings_gets_none_instead_of_an_error(tmp_path):
    from transformers import AutoModelForImageClassification

    from hf_w2s.modeling import build_model

    model = build_model("resnet", fsdp_worker.NAMES, image_size=28, seed=0)
    with pytest.raises(NotImplementedError):
        model.get_input_embeddings()
    (change,) = adapt_model_to_fsdp2(model, _plugin())
    assert "NotImplementedError" in change
    assert model.get_input_embeddings() is None
    # the instance attribute does not leak into the saved model
    model.save_pretrained(tmp_path)
    with pytest.raises(NotImplementedError):
        AutoModelForImageClassification.from_pretrained(tmp_path).get_input_embeddings()


def _wrap_policy_of_accelerate_1_15(plugin, model):
    """Accelerate 1.15's ``set_auto_wrap_policy``: every ``_no_split_modules`` class becomes a wrap class, and one the
    model lacks is an error (1.16 leaves it out); the rest as the installed Accelerate does it."""
    if plugin.transformer_cls_names_to_wrap is None:
        plugin.transformer_cls_names_to_wrap = list(getattr(model, "_no_split_modules", None) or [])
    return _INSTALLED_SET_POLICY(plugin, model)


from accelerate.utils import FullyShardedDataParallelPlugin  # noqa: E402

_INSTALLED_SET_POLICY = FullyShardedDataParallelPlugin.set_auto_wrap_policy


@pytest.mark.parametrize("accelerate_behaviour", ["installed", "1.15: absent classes raise"])
def test_wrap_units_the_model_lacks_are_dropped(accelerate_behaviour, monkeypatch):
    """The linear weak supervisor is a ConvNeXt without blocks: whether or not the installed Accelerate refuses its
    absent wrap classes, after ``adapt_model_to_fsdp2`` the wrap policy shards exactly its one stage."""
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    from hf_w2s.distributed import accelerate_skips_absent_wrap_units

    if accelerate_behaviour != "installed":
        monkeypatch.setattr(FullyShardedDataParallelPlugin, "set_auto_wrap_policy", _wrap_policy_of_accelerate_1_15)
        assert not accelerate_skips_absent_wrap_units()  # the probe sees the behaviour, not a version number
    model = fsdp_worker.weak_model()
    assert set(model._no_split_modules) == {"ConvNextLayer", "ConvNextStage"}
    adapt_model_to_fsdp2(model, _plugin())
    plugin = _plugin()
    plugin.set_auto_wrap_policy(model)
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    assert [n for n, m in model.named_modules() if policy(m)] == ["convnext.encoder.stages.0"]
    assert set(type(model)._no_split_modules) == {"ConvNextLayer", "ConvNextStage"}  # the class is untouched


def test_each_trainer_gets_the_fsdp_plugin_as_configured_not_as_fitted_to_an_earlier_model():
    from types import SimpleNamespace

    configured = _plugin()
    accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=configured))
    assert own_fsdp_plugin(accelerator)
    first = accelerator.state.fsdp_plugin
    assert first is not configured and first.transformer_cls_names_to_wrap is None
    first.set_auto_wrap_policy(fsdp_worker.student("convnext"))  # Accelerate fits the plugin to the first model
    assert set(first.transformer_cls_names_to_wrap) == {"ConvNextLayer", "ConvNextStage"}
    # a second trainer given this fitted plugin would look for ConvNeXt classes in its ViT (accelerate <= 1.16 raise)
    own_fsdp_plugin(accelerator)  # the next trainer, same process and state
    second = accelerator.state.fsdp_plugin
    assert second is not first and second.transformer_cls_names_to_wrap is None
    assert configured.transformer_cls_names_to_wrap is None
    second.set_auto_wrap_policy(fsdp_worker.student())  # fits the ViT now (it has no ConvNeXt classes)
    assert set(second.transformer_cls_names_to_wrap) == {"ViTEmbeddings", "ViTLayer"}
    assert not own_fsdp_plugin(SimpleNamespace(state=SimpleNamespace()))


def test_the_example_launcher_configs_are_the_tested_settings():
    """examples/accelerate: fsdp.yaml (GPUs) shards exactly like fsdp_cpu.yaml and fsdp_config.json, which the tests
    run; ddp.yaml is plain data parallel. Read with accelerate's own config loader."""
    from accelerate.commands.config.config_args import ClusterConfig

    examples = REPO / "examples" / "accelerate"
    cpu, gpu, ddp = (ClusterConfig.from_yaml_file(str(examples / f"{n}.yaml")) for n in ("fsdp_cpu", "fsdp", "ddp"))
    as_json = json.loads((examples / "fsdp_config.json").read_text())
    assert as_json == fsdp_worker.FSDP_CONFIG
    expected = {f"fsdp_{k}": v for k, v in as_json.items()}
    for config in (cpu, gpu):
        assert str(config.distributed_type) == "DistributedType.FSDP"
        assert {k: config.fsdp_config[k] for k in expected} == expected
    assert cpu.fsdp_config == gpu.fsdp_config
    assert (cpu.num_processes, cpu.mixed_precision, gpu.mixed_precision) == (2, "no", "bf16")
    assert str(ddp.distributed_type) == "DistributedType.MULTI_GPU" and not ddp.fsdp_config


def test_enable_fsdp_on_cpu_leaves_a_single_process_alone():
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    acc = Accelerator(cpu=True)
    before = acc.state.distributed_type
    assert enable_fsdp_on_cpu(acc, {"fsdp_version": 2}) is False
    assert enable_fsdp_on_cpu(acc, None) is False
    assert acc.state.distributed_type == before != DistributedType.FSDP
    model = fsdp_worker.student()
    assert unshard_model(model) is model  # nothing sharded: the same model
