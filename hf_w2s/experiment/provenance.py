"""Where every figure comes from: the split it was computed on, identified by content, and what it is used for.

Each split the runner persists under ``data/splits-*`` has a fingerprint, kept next to it in ``fingerprints.json``:
the SHA-256 of its examples' content hashes (:func:`hf_w2s.data.splits.split_fingerprint`, from the very hashes the
disjointness check reads, so the images are read once for both); with ``check_disjoint: false`` (the images are not
read) the fingerprint of the persisted Arrow data instead (``"method": "arrow"``).

Every figure the runner writes carries ``{"split", "fingerprint", "role"}`` (a record's ``provenance``), stamped from
the dataset the figure was really computed on (:meth:`SplitRegistry.stamp`), never from a split's name. A dataset is
a split when it is the persisted split, is registered as derived from one (cached features, ``+weak_labels``: its
rows labelled by a supervisor), or holds its images (``+relabelled`` when its labels are not the split's). Roles:

* ``selection`` — it chooses something: a checkpoint and early stopping (``eval_*``, the evaluations during
  training), a row's candidate and the saved student (``validation_<selection_metric>``). It must be computed on a
  split of :func:`selection_splits` (the validation split; ``validation+weak_labels`` for the students of
  ``selection_protocol: weak_labels``).
* ``calibration`` — it fits a number training uses (a temperature, combination weights): anywhere but test.
* ``report`` — it is printed: the test figures, read once per run.

:func:`check_figures` refuses records that break this, naming the figure, the run and the split; the runner calls it
before it chooses a candidate, the report before it is written, the card before it is rendered.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..data.loading import column_array
from ..data.splits import example_hashes, split_fingerprint

__all__ = ["SELECTION", "CALIBRATION", "REPORT", "CHECKPOINTS", "WEAK_LABELS", "FINGERPRINTS_FILE", "ProvenanceError",
           "SplitRegistry", "registry", "selection_splits", "check_figures", "run_provenance", "card_provenance",
           "provenance_text", "split_provenance", "write_fingerprints",
           "persist_fingerprints"]

SELECTION, CALIBRATION, REPORT = "selection", "calibration", "report"
#: the figure name of a run's evaluations during training (its ``eval_*`` log entries)
CHECKPOINTS = "eval_*"
#: the tag of a split's rows labelled by a weak supervisor instead of their ground truth (``validation+weak_labels``)
WEAK_LABELS = "weak_labels"
FINGERPRINTS_FILE = "fingerprints.json"
_USES = {CHECKPOINTS: "chooses its checkpoint (load_best_model_at_end) and stops it early",
         "validation": "chooses its row's candidate and the saved student"}


class ProvenanceError(ValueError):
    """A figure that chooses something was not computed on a selection split (or one that fits was on test)."""


def selection_splits(exp, kind: str = "w2s") -> tuple[str, ...]:
    """The splits a figure that chooses may be computed on, for a run of ``kind`` — the one place that says so: the
    validation split with its ground truth; under ``selection_protocol: weak_labels`` (no ground truth to choose by)
    a student's choices are made on the validation split with its supervisor's labels instead, never on its ground
    truth (the ceiling, trained on ground truth, is the ground-truth reference either way)."""
    if kind == "w2s" and getattr(exp.config, "selection_protocol", "ground_truth") == "weak_labels":
        return (f"validation+{WEAK_LABELS}",)
    return ("validation",)


def registry(exp) -> "SplitRegistry":
    """The :class:`SplitRegistry` of an experiment's persisted splits (loaded with them)."""
    exp.splits()
    return exp.split_ids


def write_fingerprints(folder, fingerprints: dict[str, dict]) -> None:
    Path(folder, FINGERPRINTS_FILE).write_text(json.dumps(fingerprints, indent=1, sort_keys=True))


def persist_fingerprints(folder, splits, content: dict[str, str]) -> None:
    """Keep the content fingerprints computed while ``splits`` were built (``content``, by split name) next to the
    persisted splits in ``folder``; splits without one get theirs when they are loaded (:meth:`SplitRegistry.load`)."""
    entries = {name: _entry(ds, content.get(name), False) for name, ds in splits.items() if name in content and len(ds)}
    if entries:
        write_fingerprints(folder, entries)


def _labels_of(ds) -> str | None:
    if "label" not in ds.column_names:
        return None
    return hashlib.sha256(np.ascontiguousarray(column_array(ds, "label"), dtype=np.int64).tobytes()).hexdigest()[:20]


def _entry(ds, content: str | None, hashed: bool) -> dict:
    if content is None and hashed and "image" in ds.column_names:
        content = split_fingerprint(example_hashes(ds))
    if content is not None:
        return {"fingerprint": content, "examples": len(ds), "method": "content", "labels": _labels_of(ds)}
    return {"fingerprint": f"arrow:{ds._fingerprint}", "examples": len(ds), "method": "arrow",
            "labels": _labels_of(ds)}


class SplitRegistry:
    """The persisted splits' fingerprints, and which split a dataset is: by the identity of the persisted data, of
    a dataset registered as derived from a split (:meth:`derived`), or by content — its images those of a split, and
    its labels that split's ground truth (``<split>``) or not (``<split>+relabelled``)."""

    def __init__(self, entries: dict[str, dict], splits):
        self.entries = entries
        self._by_arrow = {ds._fingerprint: name for name, ds in splits.items()}

    @classmethod
    def load(cls, folder, splits, *, content: dict | None = None, hashed: bool = True,
             write: bool = False) -> "SplitRegistry":
        """The registry of the splits persisted in ``folder`` (loaded back as ``splits``): ``fingerprints.json``,
        completed (``content``: fingerprints computed while the splits were built; otherwise read now) and written
        back when ``write``."""
        path = Path(folder, FINGERPRINTS_FILE)
        entries = json.loads(path.read_text()) if path.is_file() else {}
        missing = [name for name in splits if name not in entries]
        for name in missing:
            entries[name] = _entry(splits[name], (content or {}).get(name), hashed)
        if missing and write:
            write_fingerprints(folder, entries)
        return cls(entries, splits)

    def fingerprint_of(self, name: str) -> str | None:
        """A split's fingerprint; ``<split>+<tag>`` (its rows with other labels) that of the split, tagged."""
        base, _, tag = name.partition("+")
        entry = self.entries.get(base)
        if entry is None:
            return None
        return entry["fingerprint"] + (f"+{tag}" if tag else "")

    def derived(self, dataset, source, tag: str | None = None):
        """Register ``dataset`` as ``source``'s rows, one for one, with columns changed (cached features) — or, with
        ``tag``, with other labels (e.g. ``weak_labels``: what a supervisor says of them): a figure computed on it is
        one of ``source``'s split (``<split>+<tag>``). ``source`` is a persisted split or a registered dataset.
        Returns ``dataset``."""
        name = self._by_arrow.get(getattr(source, "_fingerprint", None))
        if name is not None:
            self._by_arrow[dataset._fingerprint] = f"{name.partition('+')[0]}+{tag}" if tag else name
        return dataset

    def identify(self, dataset) -> tuple[str | None, str]:
        """``(split name or None, fingerprint)`` of the dataset a figure was computed on."""
        arrow = getattr(dataset, "_fingerprint", None)
        name = self._by_arrow.get(arrow)
        if name is None and "image" in dataset.column_names:  # built otherwise: by content
            own = split_fingerprint(example_hashes(dataset))
            name = next((split for split, entry in self.entries.items() if entry["fingerprint"] == own), None)
            if name is None:
                return None, own
            if _labels_of(dataset) not in (None, self.entries[name].get("labels")):
                name += "+relabelled"
            self._by_arrow[arrow] = name  # read once per dataset
        if name is None:
            return None, f"arrow:{arrow}"
        return name, self.fingerprint_of(name)

    def stamp(self, dataset, role: str, *figures: str) -> dict:
        """``{figure: {"split", "fingerprint", "role"}}`` for figures computed on ``dataset``."""
        name, fingerprint = self.identify(dataset)
        return {figure: {"split": name, "fingerprint": fingerprint, "role": role} for figure in figures}


def run_provenance(exp, trainer, test, record: dict) -> dict:
    """The provenance of a strong run's figures but the validation ones (stamped where they are computed): its test
    figures (``test``, the dataset they were read on), its evaluations during training and conf_select's student
    recalibration (the datasets the trainer really used)."""
    ids = registry(exp)
    out = ids.stamp(test, REPORT, *[k for k in record if k.startswith("test_")])
    if getattr(trainer, "eval_dataset", None) is not None:
        out.update(ids.stamp(trainer.eval_dataset, SELECTION, CHECKPOINTS))
    callback = getattr(trainer, "calibration_callback", None)
    if callback is not None:
        out.update(ids.stamp(callback.calibration_dataset, CALIBRATION, "student_calibration_temperature"))
    return out


# -- the check ----------------------------------------------------------------------------------------------------


def _run_name(record: dict) -> str:
    kind = record.get("kind")
    if kind == "weak":
        return f"weak supervisor {record.get('weak')!r}"
    what = "ceiling" if kind == "ceiling" else f"{record.get('weak')} / {record.get('loss')}"
    candidate = record.get("candidate", "default")
    return f"{what} seed {record.get('seed')}" + ("" if candidate == "default" else f" [{candidate}]") + \
        f" (key {record.get('key')})"


def _split_text(p: dict) -> str:
    return f"the {p['split']!r} split" if p.get("split") else "a dataset that is none of the run's splits"


def _choosing(exp, record: dict) -> list[str]:
    """The figures of ``record`` the runner chooses by."""
    if record.get("kind") not in ("ceiling", "w2s"):
        return []
    out = [f"validation_{exp.config.selection_metric}"]
    if any("eval_loss" in entry for entry in record.get("log_history") or []):
        out.append(CHECKPOINTS)
    return out


def check_figures(exp, records: list[dict], what: str = "the report") -> None:
    """Raise :class:`ProvenanceError` unless every figure of ``records`` that chooses something was computed on a
    split of :func:`selection_splits` and no figure that chooses or fits was computed on the test split."""
    ids = registry(exp)
    test = ids.fingerprint_of("test")
    for record in records:
        prov = record.get("provenance") or {}
        allowed = {ids.fingerprint_of(n): n for n in selection_splits(exp, record.get("kind")) if ids.fingerprint_of(n)}
        where = " or ".join(f"the {n!r} split (fingerprint {fp})" for fp, n in allowed.items()) or "a selection split"
        for figure in _choosing(exp, record):
            p = prov.get(figure)
            use = _USES.get(figure, _USES["validation"])
            if p is None:
                raise ProvenanceError(
                    f"{what} stops: the figure {figure!r} of {_run_name(record)} {use}, but the record does not say "
                    "which split it was computed on (written by an older hf_w2s or by hand); it cannot be checked. "
                    "Run it again (remove its line from results.jsonl).")
            if p.get("fingerprint") not in allowed:
                raise ProvenanceError(
                    f"{what} stops: the figure {figure!r} of {_run_name(record)} {use}, but it was computed on "
                    f"{_split_text(p)} (fingerprint {p.get('fingerprint')}); every choice is made on {where}.")
        for figure, p in prov.items():
            on_test = str(p.get("split")).partition("+")[0] == "test" or (
                test is not None and str(p.get("fingerprint")).partition("+")[0] == test)
            if p.get("role") != REPORT and on_test:
                raise ProvenanceError(
                    f"{what} stops: the figure {figure!r} of {_run_name(record)} is used to {p.get('role')} "
                    f"(role {p.get('role')!r}), but it was computed on the test split (fingerprint "
                    f"{p.get('fingerprint')}), which is read only for the reported figures.")


# -- what the report and the card say ---------------------------------------------------------------------------


def _described(exp, name: str) -> str:
    ids = registry(exp)
    entry = ids.entries.get(name.partition("+")[0])
    return f"`{name}` (fingerprint `{ids.fingerprint_of(name)}`, {entry['examples']} examples)" if entry else \
        f"`{name}`"


def provenance_text(exp) -> str:
    """The report's sentence on where its figures come from (after :func:`check_figures` passed)."""
    students, ceiling = selection_splits(exp, "w2s"), selection_splits(exp, "ceiling")
    chosen = ", ".join(_described(exp, n) for n in students)
    if ceiling != students:
        chosen += " (the ceiling's on " + ", ".join(_described(exp, n) for n in ceiling) + ")"
    return (f"Every figure that chose something (checkpoints, candidates, the saved student) was computed on "
            f"{chosen}, and every test figure on {_described(exp, 'test')}: each record of results.jsonl carries "
            "the fingerprint of the split its figures were computed on, checked before this report was written.")


def split_provenance(exp) -> dict:
    """``{"selection": [{"split", "fingerprint"}, ...], "report": {"split", "fingerprint"}}``: where an experiment's
    choices and its test figures come from (after :func:`check_figures` passed), for a summary file."""
    ids = registry(exp)
    return {"selection": [{"split": n, "fingerprint": ids.fingerprint_of(n)} for n in selection_splits(exp)],
            "report": {"split": "test", "fingerprint": ids.fingerprint_of("test")}}


def card_provenance(record: dict, weak: dict | None, ceiling: dict | None) -> dict:
    """The provenance of the figures of the saved student's ``w2s_results.json``."""
    prov = record.get("provenance") or {}
    out = {"accuracy": prov.get("test_accuracy"), "validation_accuracy": prov.get("validation_accuracy")}
    for name, other in (("weak_accuracy", weak), ("ceiling_accuracy", ceiling)):
        if other is not None and (other.get("provenance") or {}).get("test_accuracy"):
            out[name] = other["provenance"]["test_accuracy"]
    return {k: v for k, v in out.items() if v is not None}
