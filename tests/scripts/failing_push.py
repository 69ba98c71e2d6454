"""A weak-label push to a Hub endpoint that refuses connections (run in a fresh process: HF_ENDPOINT is read at
import). Logs at DEBUG to stderr; prints ``MESSAGE: <error>`` and ``KEPT: <local copy>``."""

import logging
import sys
import traceback

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)

import numpy as np  # noqa: E402
from datasets import ClassLabel, Dataset, Features, List, Value  # noqa: E402

from hf_w2s.hub import push_weak_labels  # noqa: E402

ds = Dataset.from_dict(
    {"weak_logits": np.zeros((3, 2), np.float32).tolist(), "weak_label": [0, 1, 0]},
    features=Features({"weak_logits": List(Value("float32"), length=2), "weak_label": ClassLabel(names=["a", "b"])}),
)
try:
    push_weak_labels(ds, "me/labels")
except Exception as err:
    traceback.print_exc()
    print("MESSAGE:", err)
    print("KEPT:", getattr(err, "local_dir", None))
