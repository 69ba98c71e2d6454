"""Training-time data augmentation on ``pixel_values`` with kornia (pure torch, no torchvision).

The image processor first does its plain transform (resize, rescale, normalise) — the same one used at evaluation.
:class:`TrainAugmentation` then works on that normalised batch: it undoes the processor's normalisation, applies a
random resized crop back to the processor's output size, a horizontal flip and optionally RandAugment, and
normalises again with the processor's mean and std. :class:`WeakToStrongCollator` applies it only while training
(the trainer switches it off for evaluation dataloaders).

Mixup and CutMix (:func:`mixup`, :func:`cutmix`, :class:`AugmentingCollator`) are kornia's ``RandomMixUpV2`` and
``RandomCutMixV2``, which return their mixing parameters (pairs and weights) with the images: the weak supervision is
mixed with them in probability space, ``log(λ·p_a + (1-λ)·p_b)``, per example. True labels keep the base image's
label in the batch; the batch carries ``mixup_lambda`` (per example) and ``mixup_index``, with which the trainer mixes
a ground-truth target like the images (``λ·y_a + (1-λ)·y_b``). With both on, each batch uses one of them, chosen with
probability 0.5 (as timm does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .collator import WeakToStrongCollator


def processor_normalization(image_processor) -> tuple[list[float], list[float]]:
    """The per-channel ``(mean, std)`` the processor normalises with (``0``/``1`` when it does not normalise)."""
    mean = getattr(image_processor, "image_mean", None)
    std = getattr(image_processor, "image_std", None)
    if not getattr(image_processor, "do_normalize", True) or mean is None or std is None:
        return [0.0], [1.0]
    return [float(m) for m in np.atleast_1d(mean)], [float(s) for s in np.atleast_1d(std)]


class TrainAugmentation(torch.nn.Module):
    """Random resized crop, horizontal flip and optional RandAugment on normalised ``(B, C, H, W)`` pixel values.

    Args:
        mean, std: the processor's normalisation (see :func:`processor_normalization`); one value per channel or a
            single value for all.
        crop_scale: area range of :class:`kornia.augmentation.RandomResizedCrop` (``None`` disables the crop). The
            crop is resized back to the input's ``H × W``, i.e. the processor's output size.
        crop_ratio: aspect-ratio range of the crop.
        hflip: flip horizontally with probability 0.5 (turn off for digits and text).
        randaugment_n, randaugment_m: RandAugment's number of operations and magnitude (kornia's scale, 1–29;
            ``n = 0`` disables it). Grayscale batches are augmented as RGB and averaged back to one channel.
        random_erasing: probability of erasing one random rectangle (2–33 % of the area, aspect 0.3–3.3) per image,
            filled with the processor's mean colour (0 after normalisation; 0 disables it).
        extra: further kornia augmentations, applied after the crop and flip: ``kornia.augmentation`` class names
            mapped to their keyword arguments, in order (lists become tuples), e.g. ``{"RandomAffine": {"degrees":
            10, "translate": [0.1, 0.1], "padding_mode": "border", "p": 1.0}}``.
    """

    def __init__(
        self,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        crop_scale: tuple[float, float] | None = (0.08, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: bool = True,
        randaugment_n: int = 0,
        randaugment_m: int = 9,
        random_erasing: float = 0.0,
        extra: dict | None = None,
    ):
        super().__init__()
        import kornia.augmentation as K
        from kornia.augmentation.auto import RandAugment

        if crop_scale is not None and not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {tuple(crop_scale)}")
        if randaugment_n < 0:
            raise ValueError(f"randaugment_n must be >= 0, got {randaugment_n}")
        if not 0.0 <= random_erasing <= 1.0:
            raise ValueError(f"random_erasing must be a probability in [0, 1], got {random_erasing}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))
        if torch.any(self.std <= 0):
            raise ValueError(f"image_std must be > 0, got {list(std)}")
        self.crop_scale = None if crop_scale is None else (float(crop_scale[0]), float(crop_scale[1]))
        self.crop_ratio = (float(crop_ratio[0]), float(crop_ratio[1]))
        self.flip = K.RandomHorizontalFlip(p=0.5) if hflip else None
        self.randaugment = RandAugment(n=randaugment_n, m=randaugment_m) if randaugment_n > 0 else None
        self.erasing = K.RandomErasing(p=random_erasing, value=0.0) if random_erasing > 0 else None
        self.extra = _kornia_sequence(extra) if extra else None
        self._crops: dict[tuple[int, int], torch.nn.Module] = {}

    @classmethod
    def from_image_processor(cls, image_processor, **kwargs) -> "TrainAugmentation":
        """Build with the processor's normalisation; ``kwargs`` as in the constructor."""
        mean, std = processor_normalization(image_processor)
        return cls(mean=mean, std=std, **kwargs)

    @classmethod
    def from_spec(cls, image_processor, spec: dict) -> "TrainAugmentation":
        """Build from a config's ``augmentation`` mapping (kornia class names -> arguments). Three entries are not
        plain kornia layers: ``RandomResizedCrop`` without ``size`` crops to the processor's output size (first);
        ``RandAugment`` (``n``, ``m``: kornia.augmentation.auto's) runs after the others; ``RandomErasing`` (``p``)
        after the normalisation, filling with the mean colour. The rest apply in order after the crop."""
        special, extra = _split_spec(spec)
        return cls.from_image_processor(image_processor, **special, extra=extra or None)

    def _crop(self, size: tuple[int, int]) -> torch.nn.Module:
        if size not in self._crops:
            import kornia.augmentation as K

            self._crops[size] = K.RandomResizedCrop(size, scale=self.crop_scale, ratio=self.crop_ratio)
        return self._crops[size]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.ndim != 4:
            raise ValueError(f"expected pixel_values of shape (B, C, H, W), got {tuple(pixel_values.shape)}")
        channels = pixel_values.shape[1]
        if self.mean.shape[1] not in (1, channels) or self.std.shape[1] not in (1, channels):
            raise ValueError(
                f"the processor normalises {self.mean.shape[1]} channels but pixel_values have {channels}"
            )
        dtype = pixel_values.dtype
        x = pixel_values.float() * self.std + self.mean  # back to [0, 1]
        if self.crop_scale is not None:
            x = self._crop(tuple(x.shape[-2:]))(x)
        if self.flip is not None:
            x = self.flip(x)
        if self.extra is not None:
            x = self.extra(x)
        if self.randaugment is not None:
            if channels == 1:
                x = self.randaugment(x.expand(-1, 3, -1, -1).contiguous()).mean(1, keepdim=True)
            else:
                x = self.randaugment(x)
        x = (x.clamp(0.0, 1.0) - self.mean) / self.std
        if self.erasing is not None:  # after normalisation, as in timm: the erased box is the mean colour
            x = self.erasing(x)
        return x.to(dtype)


#: entries of an ``augmentation`` mapping that are not plain kornia.augmentation layers (see :meth:`TrainAugmentation.
#: from_spec`)
SPECIAL = ("RandomResizedCrop", "RandAugment", "RandomErasing")


def _kornia_sequence(spec: dict, where: str = "augmentation") -> torch.nn.Module:
    """The ``kornia.augmentation`` layers of a mapping (class name -> keyword arguments), in order; an entry kornia
    refuses is a ``ValueError`` that names it."""
    import kornia.augmentation as K

    layers = []
    for name, kwargs in spec.items():
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in (kwargs or {}).items()}
        try:
            layers.append(getattr(K, name)(**kwargs))
        except Exception as err:  # noqa: BLE001 - kornia's own message (TypeError, ValueError, ...), named
            raise ValueError(f"{where}.{name}: {err}") from None
    return torch.nn.Sequential(*layers)


def _split_spec(spec: dict, where: str = "augmentation") -> tuple[dict, dict]:
    """``(the TrainAugmentation arguments of the special entries, the plain kornia layers)`` of a mapping."""
    kwargs, extra = {"crop_scale": None, "hflip": False}, {}
    for name, args in (spec or {}).items():
        args = dict(args or {})
        if name == "RandomResizedCrop" and "size" not in args:  # to the processor's own output size
            kwargs["crop_scale"] = tuple(args.pop("scale", (0.08, 1.0)))
            kwargs["crop_ratio"] = tuple(args.pop("ratio", (3 / 4, 4 / 3)))
        elif name == "RandAugment":
            kwargs["randaugment_n"], kwargs["randaugment_m"] = int(args.pop("n", 2)), int(args.pop("m", 9))
        elif name == "RandomErasing":
            kwargs["random_erasing"] = float(args.pop("p", 0.5))
        else:
            extra[name] = args
            continue
        if args:
            raise ValueError(f"{where}.{name}: unknown arguments {sorted(args)} (this entry takes "
                             f"{_SPECIAL_ARGS[name]})")
    return kwargs, extra


_SPECIAL_ARGS = {"RandomResizedCrop": "scale and ratio (without size: the processor's output size)",
                 "RandAugment": "n and m (kornia's scale 1-29)", "RandomErasing": "p"}


def check_augmentation(spec: dict | None, where: str = "augmentation") -> None:
    """An ``augmentation`` mapping (kornia class names -> keyword arguments) as a config gives it, checked when the
    config is read: kornia installed, every name a ``kornia.augmentation`` class (a close name suggested), every
    entry built with its arguments. Raises ``ImportError`` / ``ValueError`` naming the entry."""
    if not spec:
        return
    from ..import_utils import require

    require("kornia", f"{where} (kornia augmentations)", "aug")
    import difflib

    import kornia.augmentation as K

    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be a mapping of kornia.augmentation class names to their keyword arguments, "
                         f"got {spec!r}")
    for name, kwargs in spec.items():
        cls = getattr(K, str(name), None)
        if not isinstance(cls, type) and name not in SPECIAL:
            close = difflib.get_close_matches(str(name), [n for n in dir(K) if n[:1].isupper()], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: kornia.augmentation has no class {name!r}{hint}")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ValueError(f"{where}.{name}: its arguments must be a mapping, got {kwargs!r}")
    special, extra = _split_spec(spec, where)
    _kornia_sequence(extra, where)
    try:
        TrainAugmentation(**special)
    except Exception as err:  # noqa: BLE001 - the special entries' values (a crop scale outside (0, 1], ...)
        raise ValueError(f"{where}: {err}") from None


def mixup(batch: dict, alpha: float) -> dict:
    """Mix a collated batch with its own permutation (mixup, Zhang et al. 2018) with kornia's ``RandomMixUpV2``.

    Each image ``i`` becomes ``λ_i·x_i + (1−λ_i)·x_perm(i)`` with ``1 − λ_i ~ Beta(α, α)`` (timm's and the paper's
    draw; kornia's own generator draws uniformly), the same for ``weak_pixel_values``; ``weak_logits`` become
    ``log(λ·softmax(w) + (1−λ)·softmax(w[perm]))``. Returns a new dict with ``mixup_lambda`` (the ``(B,)`` weights
    of the original images) and ``mixup_index`` (the permutation). ``labels`` are kept (the trainer mixes a
    ground-truth target with these two). ``alpha <= 0`` returns the batch unchanged. Randomness comes from torch's
    global generator.
    """
    if alpha <= 0:
        return batch
    import kornia.augmentation as K

    op = K.RandomMixUpV2(data_keys=["input", "class"])
    x = batch["pixel_values"]
    params = op.forward_parameters(x.shape)
    params["mixup_lambdas"] = torch.distributions.Beta(alpha, alpha).sample((x.shape[0],))
    return _kornia_mix(batch, op, params, lambda_of_original=lambda cls: 1.0 - cls[:, 2])


def cutmix(batch: dict, alpha: float) -> dict:
    """CutMix a collated batch with its own permutation with kornia's ``RandomCutMixV2``.

    Each image gets one box of ``x_perm(i)`` pasted in, sized from ``Beta(α, α)`` (the CutMix paper), inside the
    image; ``weak_pixel_values`` get the same box at their own resolution. ``mixup_lambda`` is the exact share of each
    image left unchanged, and ``weak_logits`` are mixed with it as in :func:`mixup`; ``labels`` are kept.
    ``alpha <= 0`` returns the batch unchanged.
    """
    if alpha <= 0:
        return batch
    import kornia.augmentation as K

    op = K.RandomCutMixV2(beta=float(alpha), use_correct_lambda=True, data_keys=["input", "class"])
    params = op.forward_parameters(batch["pixel_values"].shape)
    return _kornia_mix(batch, op, params, lambda_of_original=lambda cls: cls[0, :, 2])


def _kornia_mix(batch: dict, op, params: dict, lambda_of_original) -> dict:
    """Apply kornia mix augmentation ``op`` with ``params`` to the images of ``batch`` (the weak model's view with
    the same parameters at its resolution) and mix the weak supervision in probability space with the mixing weights
    kornia returns for the labels ``0..B-1`` (whose permuted column is the permutation itself)."""
    x = batch["pixel_values"]
    index = torch.arange(x.shape[0])
    mixed, cls = op(x, index, params=params)
    lam, perm = lambda_of_original(cls).float(), (cls[..., 1].reshape(-1, x.shape[0])[0]).long()
    out = {**batch, "pixel_values": mixed.to(x.dtype)}
    if "weak_pixel_values" in batch:
        weak = batch["weak_pixel_values"]
        out["weak_pixel_values"] = op(weak, index, params=_at_resolution(params, x.shape, weak.shape))[0].to(
            weak.dtype)
    if "weak_logits" in batch:
        p = torch.softmax(batch["weak_logits"].float(), -1)
        out["weak_logits"] = torch.log((lam[:, None] * p + (1.0 - lam[:, None]) * p[perm]).clamp_min(1e-12))
    out["mixup_lambda"], out["mixup_index"] = lam, perm
    return out


def _at_resolution(params: dict, shape, other) -> dict:
    """CutMix boxes (corners in inclusive pixel coordinates) scaled from images of ``shape`` to images of ``other``
    (kornia draws them for one size); mixup parameters do not depend on the size."""
    if "crop_src" not in params:
        return params
    (h, w), (h2, w2) = shape[-2:], other[-2:]
    box = params["crop_src"]
    scale = torch.tensor([w2 / w, h2 / h], dtype=box.dtype)
    low = (box.amin(-2) * scale).round()  # (..., 2): x1, y1
    high = ((box.amax(-2) + 1) * scale).round() - 1  # x2, y2
    x1, y1, x2, y2 = low[..., 0], low[..., 1], high[..., 0], high[..., 1]
    corners = torch.stack([torch.stack(c, -1) for c in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], -2)
    return {**params, "crop_src": corners, "image_shape": torch.tensor([h2, w2], dtype=params["image_shape"].dtype)}


@dataclass
class AugmentingCollator(WeakToStrongCollator):
    """:class:`~hf_w2s.WeakToStrongCollator` plus batch-level mixup (``mixup_alpha > 0``) and/or CutMix
    (``cutmix_alpha > 0``) while ``training``; with both, each batch gets one of them with probability 0.5."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = super().__call__(features)
        if not self.training or (self.mixup_alpha <= 0 and self.cutmix_alpha <= 0):
            return batch
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or bool(torch.rand(()) < 0.5))
        # mixup_lambda / mixup_index stay in the batch: the trainer mixes the true labels of a ground-truth term
        # the same way (hf_w2s.losses.ground_truth_per_sample)
        return cutmix(batch, self.cutmix_alpha) if use_cutmix else mixup(batch, self.mixup_alpha)
