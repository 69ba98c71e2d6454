"""Images → ``pixel_values`` for an image processor: the one conversion used by labelling and training batches, and
the one way an image that does not decode is reported (its row, column and path).

Wide images are scaled, never clipped: 16-bit images (PIL modes ``I;16*``, and ``I`` holding 16-bit values, as
16-bit PNGs open) are mapped from 0..65535 to 0..255 (``value / 257``), and float images (mode ``F``) from 0..1 to
0..255 when their values lie in [0, 1] (otherwise they are taken as 0..255 values, or 0..65535 above 255), before the
conversion to the processor's mode (``L`` or ``RGB``) — a plain ``convert`` would clip every value above 255, turning
16-bit photographs all white and [0, 1] float images all black.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["processor_channels", "convert_images", "pixel_values_from_images", "to_8bit", "WIDE_MODES",
           "undecodable_image_error", "decode_image", "verify_image"]

#: PIL modes whose values go beyond 8 bits; :func:`to_8bit` scales them to 0..255
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def processor_channels(image_processor) -> int | None:
    """Channels an image processor normalises for (1 for grayscale stats), or ``None`` if unknown."""
    mean = getattr(image_processor, "image_mean", None)
    if mean is None:
        return None
    return 1 if np.ndim(mean) == 0 or len(mean) == 1 else len(mean)


def wide_scale(mode: str, low: float, high: float) -> float:
    """The factor that maps a ``mode`` image whose values lie in ``[low, high]`` to 0..255 (see the module doc)."""
    if mode == "F" and low >= 0 and high <= 1:
        return 255.0
    if mode.startswith("I;16") or high > 255:
        return 255.0 / 65535.0
    return 1.0


def to_8bit(image):
    """A PIL image of a wide mode (:data:`WIDE_MODES`) as an 8-bit ``L`` image, scaled (not clipped); other images are
    returned as they are."""
    from PIL import Image

    if getattr(image, "mode", None) not in WIDE_MODES:
        return image
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    scaled = np.nan_to_num(values * wide_scale(image.mode, low, high), nan=0.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def convert_images(images: list, image_processor) -> list:
    """Convert PIL images to the mode the processor expects (``L`` for 1-channel stats, ``RGB`` otherwise); wide
    images (16-bit, float) are scaled to 8 bits first (:func:`to_8bit`)."""
    channels = processor_channels(image_processor)
    mode = "L" if channels == 1 else "RGB"
    out = []
    for im in images:
        if hasattr(im, "mode") and im.mode != mode:
            im = to_8bit(im)
            if im.mode != mode:
                im = im.convert(mode)
        out.append(im)
    return out


def pixel_values_from_images(images: list, image_processor) -> torch.Tensor:
    """``image_processor(images)``'s ``pixel_values`` as a tensor, images first converted to its channel mode."""
    images = convert_images(images, image_processor)
    return torch.as_tensor(np.asarray(image_processor(images=images, return_tensors="np")["pixel_values"]))


# -- images that do not decode ---------------------------------------------------------------------------------------


def undecodable_image_error(row: int, column: str, path, err: BaseException) -> ValueError:
    """The error for the image of ``row`` that does not decode: the row, the column, the file and why."""
    where = f" (path {path!r})" if path else ""
    reason = " ".join(f"{type(err).__name__}: {err}".split())
    return ValueError(f"row {row}: cannot decode the image in column {column!r}{where}: {reason}")


def decode_image(value, row: int, column: str, decoder):
    """``decoder.decode_example(value)`` (a ``datasets.Image`` feature), or :func:`undecodable_image_error`."""
    try:
        return decoder.decode_example(value)
    except Exception as err:  # PIL raises several kinds (UnidentifiedImageError, OSError, SyntaxError, ...)
        path = value.get("path") if isinstance(value, dict) else None
        raise undecodable_image_error(row, column, path, err) from err


def verify_image(data: bytes | None, path: str | None) -> None:
    """Decode one encoded image fully (from its bytes, else its file), as training will; raises what PIL raises. A
    JPEG is decoded at reduced scale (``draft``), which reads every byte of it but costs a fraction of the time."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data) if data is not None else path) as image:
        if image.format == "JPEG":
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
