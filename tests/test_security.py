"""Security defaults: no remote code unless asked, safetensors only by default, tokens never in logs/cards/errors."""

from __future__ import annotations

import logging
import shutil
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from testing_utils import remote_code_checkpoint

from hf_w2s.modeling import build_model, load_image_classifier, load_image_processor, tiny_image_processor
from hf_w2s.security import RedactedError, install_log_redaction, redact, redacted

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_" + "Qx7Lm2" * 6  # shaped like a user access token, never valid
OTHER = "tok-" + "9" * 20  # a token that does not look like one: redacted because it is passed in / in HF_TOKEN


def test_remote_code_runs_only_when_the_user_passes_trust_remote_code(tmp_path):
    path, sentinel = remote_code_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        load_image_classifier(str(path))
    assert not sentinel.exists()
    model = load_image_classifier(str(path), trust_remote_code=True)  # the user's explicit choice
    assert sentinel.exists() and type(model).__name__ == "RemoteModel"


def test_loaders_pass_safe_defaults(monkeypatch):
    import transformers

    seen = {}

    def fake(kind, value):
        def from_pretrained(name, **kwargs):
            seen[kind] = kwargs
            if kwargs.get("output_loading_info"):  # (model, what was not in the checkpoint)
                return value, {"missing_keys": [], "mismatched_keys": []}
            return value

        return from_pretrained

    config = transformers.ConvNextConfig(id2label={0: "a", 1: "b"})
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", fake("config", config))
    monkeypatch.setattr(transformers.AutoModelForImageClassification, "from_pretrained",
                        fake("model", build_model("linear", ["a", "b"], image_size=4, num_channels=1)))
    monkeypatch.setattr(transformers.AutoImageProcessor, "from_pretrained", fake("processor", "processor"))
    load_image_classifier("org/model", dtype="float32")
    load_image_processor("org/model")
    assert seen["config"]["trust_remote_code"] is False
    assert seen["model"]["trust_remote_code"] is False and seen["model"]["use_safetensors"] is True
    assert seen["model"]["dtype"] == "float32"
    assert seen["processor"]["trust_remote_code"] is False
    load_image_classifier("org/model", allow_pickle=True, trust_remote_code=True)
    assert seen["model"]["use_safetensors"] is None and seen["model"]["trust_remote_code"] is True
    assert seen["config"]["trust_remote_code"] is True


def test_safetensors_checkpoint_round_trips(tmp_path):
    model = build_model("vit", ["a", "b", "c"], image_size=8, num_channels=1, width=8, depth=1, seed=0)
    model.save_pretrained(tmp_path / "m")
    tiny_image_processor(8, 1).save_pretrained(tmp_path / "m")
    loaded = load_image_classifier(str(tmp_path / "m"))
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(loaded(pixel_values=x).logits, model(pixel_values=x).logits)
    assert list(load_image_processor(str(tmp_path / "m")).image_mean) == [0.5]


def test_redact_hides_env_passed_and_token_shaped_strings(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OTHER)
    text = f"auth {OTHER} then Bearer {TOKEN} and hf_short ok"
    out = redact(text)
    assert OTHER not in out and TOKEN not in out and out.count("***") == 2 and "hf_short ok" in out
    assert redact("x=abcdefgh12", tokens=["abcdefgh12"]) == "x=***"


def _push_like(token):
    """A failing push that leaks the token everywhere it could: logs, the error, and the error's cause."""
    logging.getLogger("hf_w2s.push").warning("pushing to https://hub.example/api with token %s", token)
    logging.getLogger("huggingface_hub.test").error("401 for Authorization: Bearer %s", token)
    try:
        raise ConnectionError(f"connection reset while sending header 'Bearer {token}'")
    except ConnectionError as err:
        raise OSError(f"push to me/model failed (token {token}); the local save is in ./out") from err


def _all_text(caplog, capfd, err):
    out, errs = capfd.readouterr()
    return caplog.text + out + errs + "".join(traceback.format_exception(type(err), err, err.__traceback__))


@pytest.mark.parametrize("token", [TOKEN, OTHER])
def test_token_in_hf_token_never_appears_in_logs_or_errors_of_a_failing_push(monkeypatch, caplog, capfd, token):
    monkeypatch.setenv("HF_TOKEN", token)
    caplog.set_level(logging.INFO)
    stream = logging.StreamHandler()  # a handler like a script's logging.basicConfig
    logging.getLogger().addHandler(stream)
    try:
        # the unprotected call really leaks: the check below is meaningful
        with pytest.raises(OSError) as raw:
            _push_like(token)
        assert token in _all_text(caplog, capfd, raw.value)
        caplog.clear()

        with pytest.raises(OSError) as err:
            with redacted():
                _push_like(token)
        text = _all_text(caplog, capfd, err.value)
        assert token not in text
        assert "push to me/model failed (token ***); the local save is in ./out" in str(err.value)
        assert "Bearer ***" in caplog.text  # the records are still there, only redacted
        assert err.value.__suppress_context__ and err.value.__cause__ is None
    finally:
        logging.getLogger().removeHandler(stream)


def test_redacted_leaves_clean_errors_alone_and_wraps_odd_ones():
    class Odd(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a} {b}")

    with pytest.raises(KeyError) as err:
        with redacted():
            raise KeyError("missing")
    assert err.value.args == ("missing",)
    with pytest.raises(RedactedError, match=r"^Odd: \*\*\* x$"):
        with redacted([OTHER]):
            raise Odd(OTHER, "x")


def test_real_hub_call_errors_carry_no_token(monkeypatch, caplog, capfd):
    from huggingface_hub import HfApi, constants

    # the environment this test depends on, whatever the shell says (HF_HUB_OFFLINE=1 would refuse the call itself)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    import httpx2  # huggingface_hub's HTTP client

    # nothing listens on port 9: the client's own connection error comes through (not wrapped), without the token
    with pytest.raises(httpx2.ConnectError, match="Connection refused") as err:
        with redacted():
            HfApi(endpoint="http://127.0.0.1:9").create_repo("me/model", token=TOKEN)
    assert TOKEN not in _all_text(caplog, capfd, err.value)


def test_a_failing_weak_label_push_names_the_local_copy_and_never_the_token(local_hub, monkeypatch, caplog, capfd):
    """The token only in HF_TOKEN; the server refuses the upload with an error that echoes the request's
    Authorization header (as a proxy might): not in any log record (DEBUG included), the printed output, the
    traceback or the message, which names the local copy."""
    from datasets import ClassLabel, Dataset, Features, List, Value, load_from_disk

    from hf_w2s.hub import WeakLabelsPushError, push_weak_labels

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    local_hub.add_user(TOKEN, "me")
    caplog.set_level(logging.DEBUG)
    ds = Dataset.from_dict(
        {"weak_logits": np.zeros((3, 2), np.float32).tolist(), "weak_label": [0, 1, 0]},
        features=Features({"weak_logits": List(Value("float32"), length=2),
                           "weak_label": ClassLabel(names=["a", "b"])}),
    )
    rule = local_hub.fail("POST", "/api/datasets/me/labels/preupload/main", status=400,
                          message=f"bad request (Authorization: Bearer {TOKEN})")
    try:
        with pytest.raises(WeakLabelsPushError) as err:
            push_weak_labels(ds, "me/labels")
    finally:
        local_hub.faults.remove(rule)
    assert rule["seen"] >= 1  # the data push reached the server and was refused there
    assert TOKEN not in _all_text(caplog, capfd, err.value)
    message = str(err.value)
    assert message.startswith("push of weak labels to 'me/labels' failed while pushing the data"), message
    assert load_from_disk(err.value.local_dir).num_rows == 3  # the local copy is complete


def test_install_log_redaction_filters_handlers(caplog):
    flt = install_log_redaction([OTHER])
    try:
        logging.getLogger("hf_w2s.x").warning("using %s", OTHER)
    finally:
        for h in logging.getLogger().handlers:
            h.removeFilter(flt)
    assert OTHER not in caplog.text and "using ***" in caplog.text


def test_training_with_a_hub_token_writes_it_nowhere(tmp_path, monkeypatch, capfd, caplog):
    """Logs, model card, run file, trainer state and the pickled training_args.bin carry no token."""
    import transformers
    from datasets import ClassLabel, Dataset, Features, Image, List, Value
    from PIL import Image as PILImage

    from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer

    monkeypatch.setenv("HF_TOKEN", OTHER)
    rng = np.random.default_rng(0)
    ds = Dataset.from_dict(
        {"image": [PILImage.fromarray(a, mode="L") for a in rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)],
         "label": [0, 1, 0, 1], "weak_logits": rng.standard_normal((4, 2)).astype(np.float32).tolist()},
        features=Features({"image": Image(), "label": ClassLabel(names=["a", "b"]),
                           "weak_logits": List(Value("float32"), length=2)}),
    )
    args = WeakToStrongConfig(output_dir=str(tmp_path / "out"), hub_token=TOKEN, report_to="none", use_cpu=True,
                              max_steps=2, save_steps=1, per_device_train_batch_size=2, logging_steps=1,
                              disable_tqdm=False)
    import io

    log = io.StringIO()
    handler = logging.StreamHandler(log)  # transformers' own loggers do not propagate to the root
    for name in ("transformers", "hf_w2s"):
        logging.getLogger(name).addHandler(handler)
    transformers.logging.set_verbosity_info()
    caplog.set_level(logging.INFO, logger="hf_w2s")
    try:
        trainer = WeakToStrongTrainer(model=build_model("linear", ["a", "b"], image_size=8, num_channels=1, width=4,
                                                        seed=0),
                                      args=args, train_dataset=ds, processing_class=tiny_image_processor(8, 1))
        trainer.train()
        trainer.save_model()
        trainer.create_model_card(model_name="w2s-test")
        logging.getLogger("hf_w2s").info("config: %r", args)
    finally:
        transformers.logging.set_verbosity_warning()
        for name in ("transformers", "hf_w2s"):
            logging.getLogger(name).removeHandler(handler)
    out, err = capfd.readouterr()
    err += log.getvalue() + caplog.text
    assert "Running training" in err and "config: WeakToStrongConfig(" in err  # the logs were captured
    assert args.hub_token == TOKEN  # still usable for the push itself
    assert TOKEN not in out + err and TOKEN not in repr(args) and TOKEN not in str(args)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in files) and any(p.name == "README.md" for p in files)
    for path in files:
        data = path.read_bytes()
        assert TOKEN.encode() not in data and OTHER.encode() not in data, path
    restored = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert restored.hub_token is None and restored.w2s_loss == args.w2s_loss
    shutil.rmtree(tmp_path / "out")
