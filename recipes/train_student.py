#!/usr/bin/env python
"""Train a weak-to-strong student from a recipe: the same as ``hf-w2s train``.

    python recipes/train_student.py --config recipes/configs/cifar100_distillation_gt_offline.yaml
    python recipes/train_student.py --config recipes/configs/cifar100_distillation_gt.yaml --output_dir my-student \
        --push_to_hub true --hub_model_id me/cifar100-resnet50-adaptconf

Every key of the YAML file is an option; flags on the command line override it (``--help`` lists them all).
"""

import os
import sys

try:
    from hf_w2s.cli import main
except ImportError:  # a fresh clone without ``pip install -e .``
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from hf_w2s.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
