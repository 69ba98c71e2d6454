"""The weak-to-strong metrics as local ``evaluate`` modules, loadable offline with ``evaluate.load(<path>)``:

* ``hf_w2s.metric_modules.w2s_accuracy`` — top-1 accuracy (labels ``-100`` ignored);
* ``hf_w2s.metric_modules.w2s_agreement`` — how often the student's class is the weak supervisor's;
* ``hf_w2s.metric_modules.w2s_pgr`` — performance gap recovered, ``(student − weak) / (ceiling − weak)``.

    import evaluate
    from hf_w2s.metric_modules import metric_path

    pgr = evaluate.load(metric_path("pgr"))
    pgr.compute(predictions=student_ids, references=labels, weak_accuracy=0.6, ceiling_accuracy=0.9)

Each script wraps the function of :mod:`hf_w2s.metrics` of the same name (one implementation) in a metric class
made by :func:`class_ids_metric`; the trainer's ``compute_metrics`` and the experiment harness compute their
accuracies through these modules.
"""

from __future__ import annotations

import os

__all__ = ["METRIC_MODULES", "metric_path", "class_ids_metric"]

#: metric name -> script file in this folder
METRIC_MODULES = {"accuracy": "w2s_accuracy.py", "agreement": "w2s_agreement.py", "pgr": "w2s_pgr.py"}


def metric_path(name: str) -> str:
    """The path of the ``evaluate`` script of metric ``name`` (``accuracy``, ``agreement``, ``pgr``)."""
    if name not in METRIC_MODULES:
        raise ValueError(f"unknown metric module {name!r}; choose one of {sorted(METRIC_MODULES)}")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), METRIC_MODULES[name])


def class_ids_metric(compute, description: str, inputs_description: str, citation: str = ""):
    """An ``evaluate.Metric`` class whose inputs are class ids (``predictions``, ``references``: int64 per example)
    and whose result is ``compute(predictions, references, **kwargs)`` (a dict), on numpy arrays."""
    import datasets
    import evaluate

    class ClassIdsMetric(evaluate.Metric):
        __doc__ = description + inputs_description

        def _info(self):
            return evaluate.MetricInfo(
                description=description, citation=citation, inputs_description=inputs_description, format="numpy",
                features=datasets.Features({"predictions": datasets.Value("int64"),
                                            "references": datasets.Value("int64")}),
            )

        def _compute(self, predictions, references, **kwargs):
            return compute(predictions, references, **kwargs)

    return ClassIdsMetric
