"""Sharded (FSDP2) training of the student on CPU, for tests/test_fsdp.py.

Run as ``accelerate launch --config_file examples/accelerate/fsdp_cpu.yaml tests/scripts/fsdp_worker.py OUT PHASE``
or ``torchrun --standalone --nproc_per_node 2 tests/scripts/fsdp_worker.py OUT PHASE`` (2 processes, gloo; set
``OMP_NUM_THREADS=1``). PHASE:

* ``train``: with ``TrainingArguments(fsdp=True, fsdp_config=FSDP_CONFIG, use_cpu=True)`` and 2 processes × batch 4,
  (a) ``STEPS`` optimizer steps with a cached ``weak_logits`` column, saving a sharded checkpoint every
  ``SAVE_STEPS`` steps, then ``trainer.save_model()`` to ``OUT/saved`` and the trained model's logits on
  :func:`probe_pixels`; (b) the same steps with an online weak model (``weak_model=``, replicated on every process);
  (c) learned supervisor weights (refused); (d) run (a) with a ConvNeXt student.
* ``recipe``: ``hf-w2s train`` with ``--fsdp`` on the ViT transfer recipe at tiny sizes (:data:`RECIPE_ARGS`): a
  weak supervisor fine-tuned, then the student on the same arguments with the weak model online; the saved student
  in ``OUT/recipe/student``, what each process printed in ``OUT/recipe-stdout-RANK.txt``.
* ``resume``: a fresh trainer and student resume run (a) from its ``checkpoint-SAVE_STEPS`` to the end; under
  ``accelerate launch`` with an FSDP config FSDP comes from the launcher (no ``fsdp`` in the TrainingArguments).
* ``all`` (what the tests launch, once): ``train`` and ``recipe`` with the launcher's FSDP variables hidden (FSDP
  from the TrainingArguments alone), then ``resume`` with them (FSDP from the launcher).
* ``deepspeed``: (b) under DeepSpeed ZeRO-3 instead of FSDP (needs ``pip install deepspeed``; use torchrun).
* ``online-sharded``: (b) with the weak model sharded TRL-style (``fully_shard`` on its root, evaluation mode)
  instead of replicated — an experiment, not used by the tests.

The main process writes full (gathered) state dicts as safetensors and ``results-PHASE.json`` to OUT. The test
imports the same builders and trains the single-process reference (1 process × batch 8, no FSDP) itself.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager

import torch
from datasets import Dataset
from tiny_data import labelled_images, random_images, tiny_run_args
from transformers import TrainerCallback

NAMES = ["a", "b", "c", "d"]
IMAGE_SIZE = 28
N_TRAIN = 24
PER_DEVICE_BATCH = 4  # × 2 processes = the reference's batch 8
STEPS = 4  # 3 steps per epoch: the run crosses an epoch boundary (the sampler reshuffles)
SAVE_STEPS = 2  # the checkpoint to resume from lies mid-epoch (the resumed run skips 2 batches)

#: the sharded-training switches as the docs give them (examples/accelerate/fsdp_config.json, for --fsdp_config or
#: TrainingArguments(fsdp=True, fsdp_config=...)): FSDP2; full_shard; units = the model's _no_split_modules
#: (ViTEmbeddings, ViTLayer); checkpoints as torch.distributed.checkpoint shards, one per process
FSDP_CONFIG_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "accelerate",
                                "fsdp_config.json")
with open(FSDP_CONFIG_FILE) as _f:
    FSDP_CONFIG = json.load(_f)


#: DeepSpeed ZeRO-3 as the Trainer takes it (TrainingArguments(deepspeed=...)); "auto" is filled from the arguments
DEEPSPEED_ZERO3 = {
    "train_micro_batch_size_per_gpu": "auto",
    "train_batch_size": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
}


def images(n: int, seed: int):
    return random_images(n, IMAGE_SIZE, seed)


def train_data(with_weak_logits: bool) -> Dataset:
    return labelled_images(images(N_TRAIN, 0), NAMES, with_weak_logits)


def student(arch: str = "vit"):
    from hf_w2s.modeling import build_model

    # ViT and ConvNeXt: layer norm, no batch norm, so 2 × 4 and 1 × 8 compute the same function of the weights
    # (a ResNet's batch norm would normalise over 4 examples per process instead of 8)
    return build_model(arch, NAMES, image_size=IMAGE_SIZE, num_channels=3, width=16, depth=2, seed=0)


def weak_model():
    from hf_w2s.modeling import build_model

    # label names in another order: the trainer must reorder the online weak logits by name
    return build_model("linear", NAMES[::-1], image_size=IMAGE_SIZE, num_channels=3, width=8, seed=1)


def processor():
    from hf_w2s.modeling import tiny_image_processor

    return tiny_image_processor(IMAGE_SIZE, 3)


def probe_pixels() -> torch.Tensor:
    from hf_w2s.data.images import pixel_values_from_images

    return pixel_values_from_images(images(5, 7), processor()).float()


def config(output_dir: str, per_device_batch: int, fsdp: bool, **overrides):
    from hf_w2s import WeakToStrongConfig

    # momentum: a resumed run needs the optimizer state
    kwargs = tiny_run_args(output_dir, per_device_batch, STEPS, optim_args="momentum=0.9", learning_rate=0.2)
    if fsdp:
        kwargs.update(fsdp=True, fsdp_config=dict(FSDP_CONFIG))
    kwargs.update(overrides)
    return WeakToStrongConfig(**kwargs)


def trainer(mode: str, per_device_batch: int, output_dir: str, fsdp: bool, arch: str = "vit", **overrides):
    """``mode``: ``cached`` (a weak_logits column) or ``online`` (weak_model=)."""
    from hf_w2s import WeakToStrongTrainer

    # the models first: under DeepSpeed ZeRO-3, a model built after the TrainingArguments is partitioned at
    # construction (deepspeed.zero.Init), which fails before the process group exists
    model, weak = student(arch), (weak_model() if mode != "cached" else None)
    return WeakToStrongTrainer(
        model=model,
        args=config(output_dir, per_device_batch, fsdp, **overrides),
        train_dataset=train_data(with_weak_logits=mode == "cached"),
        processing_class=processor(),
        weak_model=weak,
    )


class StepCounter(TrainerCallback):
    """The optimizer steps this process really ran (a resumed run's log history also holds the earlier ones)."""

    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def full_state_dict(tr) -> dict:
    """The trained weights, gathered to full tensors (a collective: every process calls it; the main one gets them)."""
    state = tr.accelerator.get_state_dict(tr.model)
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def shard_weak_model_like_trl(tr) -> None:
    """TRL's ``prepare_fsdp`` for FSDP2 teachers: ``fully_shard`` on the root with the plugin's settings, eval mode."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    plugin = tr.accelerator.state.fsdp_plugin
    weak = tr.weak_model
    fully_shard(weak, reshard_after_forward=plugin.reshard_after_forward, offload_policy=plugin.cpu_offload,
                mp_policy=plugin.mixed_precision_policy or MixedPrecisionPolicy())
    weak.eval()


_LAUNCHER_FSDP_PREFIXES = ("ACCELERATE_USE_FSDP", "FSDP_")


@contextmanager
def launcher_fsdp_hidden():
    """Hide ``accelerate launch``'s FSDP variables: FSDP must then come from the TrainingArguments alone."""
    hidden = {k: v for k, v in os.environ.items() if k.startswith(_LAUNCHER_FSDP_PREFIXES)}
    for k in hidden:
        del os.environ[k]
    try:
        yield
    finally:
        os.environ.update(hidden)


class Clock:
    """Wall seconds per section of the launch (reported in the results, printed by the tests)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 2)
        self._last = now


def phase_train(out_dir: str, results: dict, weights: dict, clock: Clock):
    """FSDP from ``TrainingArguments(fsdp=True, fsdp_config=...)``: cached and online runs, a ConvNeXt student,
    ``save_model``, ``unshard_model``, the refusal of learned supervisor weights."""
    from hf_w2s.distributed import unshard_model

    results["launcher_fsdp_vars_in_train"] = sorted(k for k in os.environ if k.startswith(_LAUNCHER_FSDP_PREFIXES))
    tr = trainer("cached", PER_DEVICE_BATCH, os.path.join(out_dir, "run-cached"), fsdp=True,
                 save_strategy="steps", save_steps=SAVE_STEPS)
    tr.train()
    results["fsdp_enabled"] = tr.is_fsdp_enabled
    results["distributed_type"] = str(tr.accelerator.distributed_type)
    results["world_size"] = tr.accelerator.num_processes
    results["model_class"] = type(tr.model).__name__
    # each process holds a shard: the local parameter pieces add up to the full model
    local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in tr.model.parameters())
    results["local_numel"] = tr.accelerator.gather(torch.tensor([local])).tolist()
    results["cached"] = tr.state.log_history
    weights["cached"] = full_state_dict(tr)
    tr.save_model(os.path.join(out_dir, "saved"))
    tr.save_model(_internal_call=True)  # what Trainer.push_to_hub saves (to output_dir) before it uploads
    tr.model.eval()
    with torch.no_grad():
        weights["probe"] = {"logits": tr.model(pixel_values=probe_pixels()).logits.detach().contiguous()}
        # a plain replica of the trained student on every process, for inference without collectives
        plain = unshard_model(tr.model)
        results["unsharded_class"] = type(plain).__name__
        logits = plain(pixel_values=probe_pixels()).logits
        results["unsharded_probe_max_diff"] = (logits - weights["probe"]["logits"]).abs().max().item()
    clock("cached")

    tr = trainer("online", PER_DEVICE_BATCH, os.path.join(out_dir, "run-online"), fsdp=True)
    results["weak_model_class"] = type(tr.weak_model).__name__
    tr.train()
    results["online"] = tr.state.log_history
    weights["online"] = full_state_dict(tr)
    clock("online")

    # learned weights of several weak supervisors are refused under FSDP2 (a clear error, not a bare KeyError)
    try:
        trainer("cached", PER_DEVICE_BATCH, os.path.join(out_dir, "run-learned"), fsdp=True,
                weak_logits_columns=["weak_logits"], weak_combination="learned")
        results["learned_under_fsdp"] = "no error"
    except ValueError as err:
        results["learned_under_fsdp"] = str(err)

    # a CNN student (ConvNeXt: no input embeddings, get_input_embeddings raises NotImplementedError)
    tr = trainer("cached", PER_DEVICE_BATCH, os.path.join(out_dir, "run-convnext"), fsdp=True, arch="convnext")
    tr.train()
    results["convnext_class"] = type(tr.model).__name__
    results["convnext"] = tr.state.log_history
    weights["convnext"] = full_state_dict(tr)
    clock("convnext")


#: a recipe end to end under FSDP: a linear weak supervisor fine-tuned, then the ViT student (layer decay, mixup)
#: on the same training arguments with the weak model online; tiny sizes
RECIPE_ARGS = ["--config", "recipes/configs/imagenet_transfer_mae_vitb_offline.yaml", "--use_cpu", "true",
               "--fsdp", "--fsdp_config", "examples/accelerate/fsdp_config.json", "--split_sizes", "64", "64", "64",
               "64", "--num_train_epochs", "1", "--weak_supervisors",
               "[{name: weak, model: 'tiny:linear,width=8', num_train_epochs: 1, learning_rate: 0.01, online: true}]",
               "--eval_strategy", "no", "--plots", "false"]


def phase_recipe(out_dir: str, results: dict, weights: dict, clock: Clock):
    """``hf-w2s train`` (= recipes/train_student.py) with ``--fsdp``: the user's command, inside this launch. What
    each process prints goes to ``recipe-stdout-RANK.txt`` (only the main one should print)."""
    import contextlib
    import io

    from hf_w2s.cli import main as cli

    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        results["recipe_exit_code"] = cli(["train", *RECIPE_ARGS, "--output_dir", os.path.join(out_dir, "recipe")])
    results["recipe_errors"] = errors.getvalue()[-3000:]
    with open(os.path.join(out_dir, f"recipe-stdout-{os.environ.get('RANK', '0')}.txt"), "w") as f:
        f.write(printed.getvalue())
    clock("recipe")


def phase_resume(out_dir: str, results: dict, weights: dict, clock: Clock):
    """A fresh trainer and a freshly built student resume the cached run from its sharded mid-run checkpoint; FSDP
    from ``accelerate launch``'s config when launched so, else from the TrainingArguments."""
    launcher = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    results["fsdp_state_dict_type_from_launcher"] = os.environ.get("FSDP_STATE_DICT_TYPE")
    results["fsdp_from"] = "accelerate launch" if launcher else "TrainingArguments"
    tr = trainer("cached", PER_DEVICE_BATCH, os.path.join(out_dir, "run-cached"), fsdp=not launcher,
                 save_strategy="steps", save_steps=SAVE_STEPS)
    counter = StepCounter()
    tr.add_callback(counter)
    tr.train(resume_from_checkpoint=os.path.join(out_dir, "run-cached", f"checkpoint-{SAVE_STEPS}"))
    results["resumed"] = tr.state.log_history
    results["resume_model_class"] = type(tr.model).__name__
    results["resumed_steps_run"] = counter.steps
    results["resume_state_dict_type"] = str(tr.accelerator.state.fsdp_plugin.state_dict_type)
    weights["resumed"] = full_state_dict(tr)
    clock("resume")


def phase_deepspeed(out_dir: str, results: dict, weights: dict, clock: Clock):
    """ZeRO-3 on CPU (deepspeed's CPU accelerator, gloo): the student and the online weak model both sharded."""
    tr = trainer("online", PER_DEVICE_BATCH, os.path.join(out_dir, "run-deepspeed"), fsdp=False,
                 deepspeed=DEEPSPEED_ZERO3)
    results["deepspeed_enabled"] = tr.is_deepspeed_enabled
    results["weak_model_class"] = type(tr.weak_model).__name__
    tr.train()
    results["deepspeed"] = tr.state.log_history
    state = tr.accelerator.get_state_dict(tr.model_wrapped) or {}  # gathered on the main process only
    weights["deepspeed"] = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    clock("deepspeed")


def phase_online_sharded(out_dir: str, results: dict, weights: dict, clock: Clock):
    """The online weak model sharded TRL-style instead of replicated (an experiment; no test uses it)."""
    tr = trainer("online", PER_DEVICE_BATCH, os.path.join(out_dir, "run-online-sharded"), fsdp=True)
    shard_weak_model_like_trl(tr)
    results["weak_model_class"] = type(tr.weak_model).__name__
    tr.train()
    results["online-sharded"] = tr.state.log_history
    weights["online-sharded"] = full_state_dict(tr)
    clock("online-sharded")


def main(out_dir: str, phase: str) -> None:
    import gc

    from safetensors.torch import save_file

    import hf_w2s.trainer  # noqa: F401 - imported now so that the freeze below covers it

    torch.set_num_threads(1)
    gc.collect()
    gc.freeze()  # each Trainer.train() collects garbage: the imports need not be walked again
    clock = Clock()
    results: dict = {}
    weights: dict = {}
    if phase == "all":  # one launch: train with FSDP from the TrainingArguments, then resume from the launcher's
        with launcher_fsdp_hidden():
            phase_train(out_dir, results, weights, clock)
            phase_recipe(out_dir, results, weights, clock)
        phase_resume(out_dir, results, weights, clock)
    elif phase in ("train", "recipe", "resume", "deepspeed", "online-sharded"):
        globals()[f"phase_{phase.replace('-', '_')}"](out_dir, results, weights, clock)
    else:
        raise SystemExit(f"unknown phase {phase!r}")
    results["seconds"] = clock.seconds
    from accelerate import PartialState

    processes = PartialState()  # the processes' state, which the trainers set up
    if processes.is_main_process:
        for name, state in weights.items():
            save_file(state, os.path.join(out_dir, f"{name}.safetensors"))
        with open(os.path.join(out_dir, f"results-{phase}.json"), "w") as f:
            json.dump(results, f)
    processes.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
