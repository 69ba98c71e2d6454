"""Keeping Hub tokens out of logs, error messages and files.

* :func:`redact` — replace every known token (``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``, the saved login, tokens
  passed in) and anything shaped like a Hugging Face token (``hf_…``) by ``***``.
* :class:`RedactingFilter` / :func:`install_log_redaction` — a ``logging`` filter on the handlers, so that records
  from any library (transformers, huggingface_hub, datasets, requests, ...) are redacted before they are written.
* :func:`redacted` — a context manager for calls that talk to the Hub (pushes): logs are redacted while it runs, and
  an exception whose text (or chained cause) carries a token is re-raised with the token removed and without the
  original chain.
* :func:`redact_obj` — a copy of a JSON-like object (mappings, lists, strings) without tokens: what the package writes
  to files (``experiment.yaml``, ``w2s_run.json``, ``w2s_results.json``) goes through it; values of keys named
  ``*token`` are masked whatever they look like.
* :func:`redacting_output` — what the ``hf-w2s`` commands run under: ``sys.stdout``/``sys.stderr`` and every logging
  handler redacted, with the tokens given on the command line (:func:`tokens_in_argv`) and in the environment.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import traceback
from contextlib import contextmanager
from typing import Iterable

__all__ = ["redact", "redact_obj", "known_tokens", "tokens_in_argv", "RedactingFilter", "RedactingStream",
           "install_log_redaction", "redacted", "redacting_output", "RedactedError"]

#: Hugging Face user access tokens (``hf_`` + 30-odd letters and digits) and OAuth tokens (``hf_oauth_…``)
TOKEN_PATTERN = re.compile(r"\bhf_(?:oauth_)?[A-Za-z0-9]{20,}\b")
TOKEN_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HF_API_TOKEN")
MASK = "***"


def known_tokens(extra: Iterable[str | None] = ()) -> list[str]:
    """Tokens to hide: those in the environment, huggingface_hub's saved login, and ``extra``; longest first."""
    tokens = {os.environ.get(name) for name in TOKEN_ENV_VARS}
    try:
        from huggingface_hub import get_token

        tokens.add(get_token())
    except Exception:  # pragma: no cover - no hub installed or unreadable token file
        pass
    tokens.update(extra)
    return sorted((t for t in tokens if isinstance(t, str) and len(t) >= 8), key=len, reverse=True)


def redact(text, tokens: Iterable[str | None] = ()) -> str:
    """``text`` with every known token and every ``hf_…`` token replaced by ``***``."""
    text = str(text)
    for token in known_tokens(tokens):
        text = text.replace(token, MASK)
    return TOKEN_PATTERN.sub(MASK, text)


def redact_obj(obj, tokens: Iterable[str | None] = ()):
    """A copy of ``obj`` (nested dicts, lists, tuples, strings) with every token redacted; the value of a key whose
    name ends in ``token`` is masked whatever it holds (``None`` stays ``None``)."""
    tokens = known_tokens(tokens)

    def clean(value, key=None):
        if isinstance(key, str) and key.lower().endswith("token") and value is not None and not isinstance(
                value, bool):
            return MASK
        if isinstance(value, dict):
            return {k: clean(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(clean(v) for v in value)
        if isinstance(value, str):
            for token in tokens:
                value = value.replace(token, MASK)
            return TOKEN_PATTERN.sub(MASK, value)
        return value

    return clean(obj)


_TOKEN_FLAGS = re.compile(r"^--(?:[\w.-]*[._-])?(?:hub[_-])?token$")


def tokens_in_argv(argv: Iterable[str]) -> list[str]:
    """Values of ``--hub_token`` / ``--hub-token`` / ``--token`` / ``--training.hub_token`` (``--flag value`` or
    ``--flag=value``) on a command line."""
    argv, found = list(argv), []
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if _TOKEN_FLAGS.match(flag):
            if eq:
                found.append(value)
            elif i + 1 < len(argv):
                found.append(argv[i + 1])
    return [t for t in found if t]


class RedactingStream(io.TextIOBase):
    """A text stream that redacts what it writes (the tokens are read once, when it is made)."""

    def __init__(self, stream, tokens: Iterable[str | None] = ()):
        self._stream = stream
        self._tokens = known_tokens(tokens)

    def write(self, text) -> int:
        text = str(text)
        clean = text
        for token in self._tokens:
            clean = clean.replace(token, MASK)
        self._stream.write(TOKEN_PATTERN.sub(MASK, clean))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")

    def writable(self) -> bool:
        return True


@contextmanager
def redacting_output(tokens: Iterable[str | None] = ()):
    """Run with ``sys.stdout``/``sys.stderr`` and every logging handler redacted (see the module doc). Handlers
    created inside write to the redacted streams."""
    tokens = known_tokens(tokens)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(saved[0], tokens), RedactingStream(saved[1], tokens)
    flt = install_log_redaction(tokens)
    try:
        yield tokens
    finally:
        for handler in _handlers():
            handler.removeFilter(flt)
        sys.stdout, sys.stderr = saved


class RedactingFilter(logging.Filter):
    """A handler filter that formats each record's message and redacts it (extra ``tokens`` as well)."""

    def __init__(self, tokens: Iterable[str | None] = ()):
        super().__init__()
        self.tokens = [t for t in tokens if t]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.tokens)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info))
            if redact(text, self.tokens) != text:
                record.msg = f"{record.msg}\n{redact(text, self.tokens)}"
                record.exc_info, record.exc_text = None, None
        return True


_LIBRARY_LOGGERS = ("", "hf_w2s", "transformers", "huggingface_hub", "datasets", "accelerate", "urllib3", "httpx")


def _handlers(logger_names=_LIBRARY_LOGGERS):
    seen = []
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if handler not in seen:
                seen.append(handler)
    return seen


def install_log_redaction(tokens: Iterable[str | None] = (), logger_names=_LIBRARY_LOGGERS) -> RedactingFilter:
    """Add a :class:`RedactingFilter` to every handler of the root and the Hugging Face libraries' loggers.

    Call it once at the start of a script (the ``hf-w2s`` commands do). Returns the filter (``handler.removeFilter``
    undoes it).
    """
    flt = RedactingFilter(tokens)
    for handler in _handlers(logger_names):
        handler.addFilter(flt)
    return flt


class RedactedError(RuntimeError):
    """An error whose message had a token in it; the message is redacted and the original chain dropped."""


def _chain_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))


@contextmanager
def redacted(tokens: Iterable[str | None] = (), logger_names=_LIBRARY_LOGGERS):
    """Run a Hub call with redacted logs and errors.

    >>> with redacted([args.hub_token]):
    ...     trainer.push_to_hub()
    """
    tokens = [t for t in tokens if t]
    flt = RedactingFilter(tokens)
    handlers = _handlers(logger_names)
    for handler in handlers:
        handler.addFilter(flt)
    clean = None
    try:
        yield
    except Exception as err:
        clean = _redacted_error(err, tokens)
        if clean is None:
            raise
    finally:
        for handler in handlers:
            handler.removeFilter(flt)
    if clean is not None:
        # "from None": tracebacks and logger.exception() show neither the original error nor its chain
        raise clean from None


def _redacted_error(err: BaseException, tokens) -> BaseException | None:
    """A copy of ``err`` without tokens, or ``None`` if its text and chain carry none."""
    text = _chain_text(err)
    if redact(text, tokens) == text:
        return None
    message = redact(str(err), tokens)
    try:
        clean = type(err)(message)
    except Exception:
        clean = None
    if clean is None or str(clean) != message:
        clean = RedactedError(f"{type(err).__name__}: {message}")
    return clean
