"""Top-1 accuracy as an ``evaluate`` metric (hf_w2s): ``evaluate.load(hf_w2s.metric_modules.metric_path("accuracy"))``.

Predictions are class ids (take the argmax of logits first); references equal to ``-100`` are ignored (the
Trainer's padding value); no valid reference gives ``nan``. The same function as ``hf_w2s.metrics.accuracy``."""

from hf_w2s.metric_modules import class_ids_metric
from hf_w2s.metrics import accuracy

_KWARGS = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids; -100 is ignored.
Returns:
    accuracy (`float`): the fraction of valid references predicted exactly.
Example:
    >>> metric.compute(predictions=[0, 1, 2], references=[0, 1, 1])
    {'accuracy': 0.6666666666666666}
"""

W2SAccuracy = class_ids_metric(lambda predictions, references: {"accuracy": accuracy(predictions, references)},
                               __doc__, _KWARGS)
