"""Performance gap recovered (PGR, Burns et al. 2023) as an ``evaluate`` metric (hf_w2s):
``evaluate.load(hf_w2s.metric_modules.metric_path("pgr"))``.

``PGR = (student − weak) / (ceiling − weak)`` on accuracies: 0 means the student is no better than its weak
supervisor, 1 means it reaches the ceiling (the same model trained on ground truth); ``nan`` when the ceiling does not
exceed the weak accuracy. The student's accuracy is computed from its predictions and the references; the weak and
ceiling accuracies are given. The same function as ``hf_w2s.metrics.performance_gap_recovered``."""

from hf_w2s.metric_modules import class_ids_metric
from hf_w2s.metrics import accuracy, performance_gap_recovered

_CITATION = """@article{burns2023weak,
  title={Weak-to-Strong Generalization: Eliciting Strong Capabilities With Weak Supervision},
  author={Burns, Collin and others}, journal={arXiv:2312.09390}, year={2023}}"""
_KWARGS = """
Args:
    predictions (`list[int]`): the student's class ids.
    references (`list[int]`): true class ids (-100 ignored).
    weak_accuracy (`float`): the weak supervisor's accuracy on the same examples.
    ceiling_accuracy (`float`): the ground-truth ceiling's accuracy on the same examples.
Returns:
    pgr (`float`), accuracy (`float`, the student's).
Example:
    >>> metric.compute(predictions=[0, 1, 1, 1], references=[0, 1, 1, 0], weak_accuracy=0.5, ceiling_accuracy=1.0)
    {'pgr': 0.5, 'accuracy': 0.75}
"""


def _pgr(predictions, references, weak_accuracy: float, ceiling_accuracy: float) -> dict:
    student = accuracy(predictions, references)
    return {"pgr": performance_gap_recovered(float(weak_accuracy), student, float(ceiling_accuracy)),
            "accuracy": student}


W2SPGR = class_ids_metric(_pgr, __doc__, _KWARGS, _CITATION)
