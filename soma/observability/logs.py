"""Structured logs: one JSON object per line, with context, trace ids, and secrets redacted.

`configure_logging(settings, service)` is called once at the start of every process (relay,
admin API, each stream). Every line carries ``ts`` (ISO-8601 UTC), ``level``, ``service``,
``logger`` and ``message``; when known ``tenant``, ``event_id`` and other fields set with
`log_context(...)`, ``trace_id``/``span_id`` of the current OpenTelemetry span, and ``exc``
for an exception. ``SOMA_LOG_FORMAT=text`` prints the same as one readable line instead.

Redaction (`Redactor`, applied by `RedactFilter` on every handler before formatting): every
secret of the settings (each `SecretStr`, the password inside each URL, each admin token),
any ``scheme://user:password@`` and any ``Bearer``/``Basic`` credential. Secrets shorter than
`MIN_SECRET_LEN` are only removed where a pattern finds them (a password "soma" must not
erase the word "soma" from every line).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from soma.settings import Settings
from soma.settings.tokens import token_strings

MIN_SECRET_LEN = 6
MASK = "***"
_context: ContextVar[Mapping[str, Any] | None] = ContextVar("soma_log_context", default=None)

# The attributes every LogRecord has; anything else on a record came from `extra=`
# (except uvicorn's `color_message`, the message again with terminal colour codes).
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}

_URL_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@\"']*:)(?P<secret>[^\s@/\"']+)(?=@)")
_AUTH_HEADER = re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)(?P<secret>[A-Za-z0-9._~+/=\-]+)", re.IGNORECASE)


# --- context --------------------------------------------------------------------------------
class log_context:  # used like a function: `with log_context(tenant=...):`
    """Add fields (e.g. ``tenant``, ``event_id``) to every log line written inside the block.

    Context variables: an asyncio task or a thread sees only what it (or its parent task) set.
    A value of None leaves the field out. A class, not a `contextmanager` generator: the streams
    enter one per record, and this costs a third of the generator's machinery.
    """

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        self._token: Token[Mapping[str, Any] | None] | None = None

    def __enter__(self) -> None:
        current = _context.get()
        merged = dict(current) if current else {}
        for key, value in self._fields.items():
            if value is not None:
                merged[key] = value
        self._token = _context.set(merged)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _context.reset(self._token)
            self._token = None


def current_context() -> Mapping[str, Any]:
    """The fields `log_context` blocks around this point have set."""
    return _context.get() or {}


def _trace_ids() -> dict[str, str]:
    """trace_id/span_id of the current OpenTelemetry span, when there is one that records."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry is a dependency, but logs must not need it
        return {}
    try:
        span = trace.get_current_span()
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return {}
        return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
    except Exception:  # a broken tracer must never break a log line
        return {}


# --- redaction ------------------------------------------------------------------------------
def _url_password(value: str) -> str | None:
    with contextlib.suppress(ValueError):
        password = urlsplit(value).password
        if password:
            return unquote(password)
    return None


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret string the settings hold: each SecretStr, URL passwords, each admin token."""
    found: list[str] = []
    for name, value in settings.flat_items():
        if not isinstance(value, SecretStr):
            continue
        secret = value.get_secret_value()
        found.append(secret)
        password = _url_password(secret)
        if password:
            found.append(password)
        if name == "admin_tokens":
            found.extend(token_strings(secret))
    return found


class Redactor:
    """Replaces known secrets and credential-shaped text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if len(s) >= MIN_SECRET_LEN}
        # Longest first: a URL is removed whole before the password inside it is looked for.
        ordered = sorted(unique, key=len, reverse=True)
        self._literal = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        text = _URL_USERINFO.sub(lambda m: m.group("head") + MASK, text)
        return _AUTH_HEADER.sub(lambda m: m.group("head") + MASK, text)


class RedactFilter(logging.Filter):
    """On a handler: renders the record's message and traceback once, redacted, before any formatter."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_soma_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad %-format in a library's call: keep the line, say so
            message = f"{record.msg!r} (unformattable arguments: {type(exc).__name__})"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self.redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        record._soma_redacted = True
        return True


# --- formatting -----------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _fields(record: logging.LogRecord, service: str) -> dict[str, Any]:
    ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line: dict[str, Any] = {
        "ts": ts, "level": record.levelname, "service": service, "logger": record.name,
        "message": record.getMessage(),
    }
    for key, value in current_context().items():
        line.setdefault(key, _plain(value))
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in line:
            line[key] = _plain(value)
    line.update(_trace_ids())
    if record.exc_text:
        line["exc"] = record.exc_text
    elif record.exc_info and record.exc_info[0] is not None:  # no RedactFilter on this handler
        line["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    if record.stack_info:
        line["stack"] = record.stack_info
    return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line (newlines inside values are escaped)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self.service), ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A line for people: time, level, logger, message, then the context as key=value."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = _fields(record, self.service)
        head = f"{line.pop('ts')} {line.pop('level'):<7} {line.pop('logger')}: {line.pop('message')}"
        line.pop("service")
        exc = line.pop("exc", None)
        line.pop("stack", None)
        extra = " ".join(f"{key}={value}" for key, value in line.items())
        text = f"{head} [{extra}]" if extra else head
        return f"{text}\n{exc}" if exc else text


def log_line(settings: Settings, service: str, logger: str, message: str, level: int = logging.INFO) -> str:
    """One line in the settings' log format, for a file another process writes its log into."""
    record = logging.LogRecord(logger, level, __file__, 0, message, None, None)
    RedactFilter(Redactor(settings_secrets(settings))).filter(record)
    formatter = TextFormatter(service) if settings.telemetry.log_format == "text" else JsonFormatter(service)
    return formatter.format(record)


# --- configuration --------------------------------------------------------------------------
def make_handler(settings: Settings, service: str, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr) with the settings' format and the redaction filter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter: logging.Formatter = (
        TextFormatter(service) if settings.telemetry.log_format == "text" else JsonFormatter(service)
    )
    handler.setFormatter(formatter)
    handler.addFilter(RedactFilter(Redactor(settings_secrets(settings))))
    handler.set_name(f"soma-{service}")
    return handler


def structured_logging() -> bool:
    """Whether `configure_logging` (or its dict form) set up this process's root logger."""
    return any((handler.get_name() or "").startswith("soma-") for handler in logging.getLogger().handlers)


def _process_handler(settings: Settings, service: str) -> logging.Handler:
    logging.captureWarnings(True)
    _install_excepthooks()
    return make_handler(settings, service)


def logging_dict_config(settings: Settings, service: str) -> dict[str, Any]:
    """`configure_logging` as a `logging.config.dictConfig` dict, applied when it is used.

    For Faust's ``logging_config`` app setting: the worker applies it when it starts (it clears
    the root handlers first), so faust/mode/aiokafka lines come out as ours too.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"soma": {"()": _process_handler, "settings": settings, "service": service}},
        "root": {"level": settings.telemetry.log_level, "handlers": ["soma"]},
    }


def configure_logging(settings: Settings, service: str, stream: TextIO | None = None) -> logging.Handler:
    """Route every log record of this process (root logger) through one redacting JSON/text handler.

    Replaces the root logger's handlers, sends `warnings` and uncaught exceptions (main and
    other threads) to the log as well, and returns the handler.
    """
    handler = make_handler(settings, service, stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.telemetry.log_level)
    logging.captureWarnings(True)
    _install_excepthooks()
    return handler


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("soma.uncaught").critical("uncaught %s: %s", exc_type.__name__, exc,
                                                exc_info=(exc_type, exc, tb))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _install_excepthooks() -> None:
    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        _log_uncaught(exc_type, exc, tb)

    sys.excepthook = hook
    threading.excepthook = _thread_hook
