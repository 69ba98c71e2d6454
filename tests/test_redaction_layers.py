"""Each layer of token redaction on its own, called directly (the end-to-end commands in test_cli_security.py pass
through several at once, so one layer could break unseen): the model card, the files' JSON, the printed streams,
the reproduce command. Each test first shows the token leaking without the layer, so its check can fail."""

from __future__ import annotations

import io
import sys

import pytest

import hf_w2s.hub as hub
from hf_w2s.hub import command_line, render_student_card
from hf_w2s.security import RedactingStream, redact_obj, redacting_output

TOKEN = "hf_" + "Zp4Wk9" * 6  # shaped like a user access token, never valid
OTHER = "tok-" + "7" * 20  # not shaped like one: hidden because it is HF_TOKEN's value


def _card(**text):
    return str(render_student_card(
        model_name="m", repo_id="me/m", architecture="ResNetForImageClassification", label_names=["a", "b"],
        loss="kd", knobs={"kd_temperature": 2.0}, hyperparameters={"learning_rate": 0.1}, base_model="tiny:resnet",
        weak_supervisor="tiny:linear", dataset="hf_w2s:mnist", train_split="strong_train", eval_split="train",
        accuracy=0.9, **text))


def test_a_card_rendered_from_free_text_holding_a_token_shows_none(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OTHER)
    text = {"command": f"hf-w2s train --hub_token {TOKEN}", "weak_desc": f"labels from a run with {OTHER}",
            "dataset_desc": f"data at https://user:{TOKEN}@example.com", "augmentation_desc": f"none {TOKEN}"}
    monkeypatch.setattr(hub, "_clean", lambda card: card)  # without the layer, the token reaches the card
    leaked = _card(**text)
    assert TOKEN in leaked and OTHER in leaked
    monkeypatch.undo()
    monkeypatch.setenv("HF_TOKEN", OTHER)
    card = _card(**text)
    assert TOKEN not in card and OTHER not in card
    assert "hf-w2s train --hub_token ***" in card and "labels from a run with ***" in card


def test_json_written_to_files_masks_token_keys_and_token_shaped_values(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OTHER)
    obj = {"hub_token": "short-secret", "run": {"args": ["--x", TOKEN], "note": f"from {OTHER}"},
           "pair": (TOKEN, 1), "push_token": None, "use_token": True, "n": 3}
    assert TOKEN in str(obj) and OTHER in str(obj)
    clean = redact_obj(obj)
    assert clean == {"hub_token": "***", "run": {"args": ["--x", "***"], "note": "from ***"}, "pair": ("***", 1),
                     "push_token": None, "use_token": True, "n": 3}
    assert obj["hub_token"] == "short-secret"  # a copy: the caller's object is left alone


def test_printed_streams_are_redacted_and_given_back(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OTHER)
    raw = io.StringIO()
    stream = RedactingStream(raw)
    assert stream.write(f"token {TOKEN} and {OTHER}\n") == len(f"token {TOKEN} and {OTHER}\n")
    assert raw.getvalue() == "token *** and ***\n"
    saved = sys.stdout, sys.stderr
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stdout", captured)
    with redacting_output(["given-on-the-command-line"]):
        print(f"{TOKEN} given-on-the-command-line")
    assert captured.getvalue() == "*** ***\n" and sys.stdout is captured  # the stream given back
    monkeypatch.undo()
    assert (sys.stdout, sys.stderr) == saved


@pytest.mark.parametrize("value", [TOKEN, "hf_oauth_" + "a1" * 12])
def test_the_reproduce_command_hides_token_shaped_values(value):
    line = command_line(["hf-w2s", "train"], {"hub_token": value, "output_dir": "o", "push_to_hub": True})
    assert value not in line and line == "hf-w2s train --hub-token *** --output-dir o --push-to-hub"
