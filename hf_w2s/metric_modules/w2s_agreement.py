"""Student–weak agreement as an ``evaluate`` metric (hf_w2s):
``evaluate.load(hf_w2s.metric_modules.metric_path("agreement"))``.

The fraction of examples on which the student predicts the weak supervisor's class: predictions are the student's
class ids, references the weak supervisor's. The same function as ``hf_w2s.metrics.agreement``."""

from hf_w2s.metric_modules import class_ids_metric
from hf_w2s.metrics import agreement

_KWARGS = """
Args:
    predictions (`list[int]`): the student's class ids.
    references (`list[int]`): the weak supervisor's class ids.
Returns:
    agreement (`float`): the fraction of examples where the two agree.
Example:
    >>> metric.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2])
    {'agreement': 0.75}
"""

W2SAgreement = class_ids_metric(lambda predictions, references: {"agreement": agreement(predictions, references)},
                                __doc__, _KWARGS)
