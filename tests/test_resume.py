"""Exact resume: a run killed after its step-3 checkpoint and resumed from it ends like an uninterrupted run.

Deterministic on CPU with a fixed seed: the same weights (bit for bit up to float noise), the same logged loss
components step by step — including the schedules that depend on training progress (AugConf's ramp of ``a``,
AdaptConf's warm-up of ``a``), which the trainer reads from ``self.state`` — and the same random augmentation noise
(the Trainer restores the RNG states of the checkpoint).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, List, Value
from transformers import TrainerCallback

from hf_w2s import WeakToStrongCollator, WeakToStrongConfig, WeakToStrongTrainer
from hf_w2s.modeling import build_model, tiny_image_processor

NAMES = ["a", "b", "c"]
N, SIZE, BATCH = 16, 8, 4  # 4 steps per epoch, 2 epochs = 8 steps; checkpoints at steps 3 and 6
KILL_AT = 5


class Killed(RuntimeError):
    pass


class KillAt(TrainerCallback):
    """Simulates the job being killed after step ``step`` finished but before anything after it was saved."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


class StepsRun(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def data() -> Dataset:
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (N, SIZE, SIZE), dtype=np.uint8)
    return Dataset.from_dict(
        {
            "image": [PILImage.fromarray(p, mode="L") for p in pixels],
            "label": rng.integers(0, len(NAMES), N).tolist(),
            "weak_logits": (2 * rng.standard_normal((N, len(NAMES)))).astype(np.float32).tolist(),
        },
        features=Features({"image": Image(), "label": ClassLabel(names=NAMES),
                           "weak_logits": List(Value("float32"), length=len(NAMES))}),
    )


def noise(pixel_values: torch.Tensor) -> torch.Tensor:
    """A random augmentation drawn from torch's global RNG (restored from the checkpoint on resume)."""
    return pixel_values + 0.2 * torch.randn_like(pixel_values)


def make_trainer(output_dir, loss: str, callbacks=()):
    knobs = {"aug_conf": {"a_max": 0.5, "a_ramp": 0.75}, "adapt_conf": {"a_warmup": 0.75}}[loss]
    args = WeakToStrongConfig(
        output_dir=str(output_dir),
        w2s_loss=loss,
        **knobs,
        per_device_train_batch_size=BATCH,
        num_train_epochs=2,
        learning_rate=1e-2,
        lr_scheduler_type="linear",
        warmup_steps=2,
        logging_steps=1,
        save_strategy="steps",
        save_steps=3,
        report_to="none",
        use_cpu=True,
        seed=0,
        data_seed=0,
        disable_tqdm=True,
    )
    processor = tiny_image_processor(SIZE, 1)
    return WeakToStrongTrainer(
        model=build_model("vit", NAMES, image_size=SIZE, num_channels=1, width=8, depth=1, seed=0),
        args=args,
        train_dataset=data(),
        processing_class=processor,
        data_collator=WeakToStrongCollator(image_processor=processor, train_transform=noise),
        callbacks=list(callbacks),
    )


def step_logs(trainer) -> dict[int, dict]:
    return {h["step"]: h for h in trainer.state.log_history if "loss" in h}


def weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _resume_of_transformers_48805(self, resume_from_checkpoint, model=None):
    """The resume path of transformers 5.24 (huggingface/transformers#48805): a plain, non-strict
    ``load_state_dict`` of the checkpoint, which silently skips every weight saved under another name."""
    from safetensors.torch import load_file

    model = self.model if model is None else model
    model.load_state_dict(load_file(f"{resume_from_checkpoint}/model.safetensors"), strict=False)


@pytest.mark.parametrize("loss,upstream", [("aug_conf", "installed"), ("adapt_conf", "installed"),
                                           ("adapt_conf", "transformers#48805")])
def test_killed_and_resumed_run_ends_like_an_uninterrupted_run(tmp_path, loss, upstream, monkeypatch):
    """Whether or not the installed transformers loads a ViT checkpoint's renamed weights back on resume, hf_w2s's
    resume ends at the uninterrupted run's weights."""
    if upstream != "installed":
        from transformers import Trainer

        monkeypatch.setattr(Trainer, "_load_from_checkpoint", _resume_of_transformers_48805)
    full = make_trainer(tmp_path / "full", loss)
    full.train()
    full_logs = step_logs(full)
    assert sorted(full_logs) == list(range(1, 9))

    killed = make_trainer(tmp_path / "killed", loss, callbacks=[KillAt(KILL_AT)])
    with pytest.raises(Killed):
        killed.train()
    assert (tmp_path / "killed" / "checkpoint-3").is_dir()
    assert not (tmp_path / "killed" / "checkpoint-6").exists()

    # the augmentation runs in the training step (the collator is prefetched one batch ahead by Accelerate, so its
    # randomness would not be restored)
    assert killed.train_transform is noise and killed.data_collator.train_transform is None

    steps = StepsRun()
    resumed = make_trainer(tmp_path / "killed", loss, callbacks=[steps])
    resumed.train(resume_from_checkpoint=True)  # the latest checkpoint: step 3
    assert steps.steps == [4, 5, 6, 7, 8]  # steps 4 and 5 are redone after the kill
    resumed_logs = step_logs(resumed)  # steps 1-3 come back from the checkpoint's trainer state
    assert sorted(resumed_logs) == list(range(1, 9))
    assert resumed.state.global_step == full.state.global_step == 8

    for name, value in weights(full).items():
        torch.testing.assert_close(weights(resumed)[name], value, rtol=1e-6, atol=1e-7, msg=name)
    for step in resumed_logs:
        for key in ("loss", "a", "kd", "ce_self", "agreement", "learning_rate", "grad_norm"):
            assert resumed_logs[step][key] == pytest.approx(full_logs[step][key], rel=1e-5, abs=1e-7), (step, key)

    # the schedule really moves over these steps, so a resume that restarted it (a from 0) would be caught
    a = [full_logs[s]["a"] for s in range(1, 9)]
    assert a[0] == pytest.approx(0.0, abs=1e-7)  # progress 0 at the first step
    assert a[3] > 0.1 and resumed_logs[4]["a"] > 0.1
    if loss == "aug_conf":
        # a = a_max * min(1, progress / a_ramp) with progress = (step - 1) / 8
        expected = [0.5 * min(1.0, (s / 8) / 0.75) for s in range(8)]
        assert a == pytest.approx(expected, abs=1e-6)
