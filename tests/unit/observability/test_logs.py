"""soma.observability.logs: the JSON/text formatters, the context, trace ids and the redaction of secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from soma.observability.logs import (
    MASK,
    Redactor,
    configure_logging,
    log_context,
    logging_dict_config,
    make_handler,
    settings_secrets,
)
from soma.settings import Settings, load_settings

TOKEN = "adm-7c1d9e2f4a6b8c0d"
TENANT_TOKEN = "acme-0f1e2d3c4b5a6978"
SASL = "sasl-pw-3141592653"
DB_PASSWORD = "pg-secret-2718281828"


@pytest.fixture
def secret_settings() -> Settings:
    return load_settings(
        admin_tokens=SecretStr(json.dumps({TOKEN: "admin", TENANT_TOKEN: "tenant:acme"})),
        kafka_sasl_password=SecretStr(SASL),
        database_url=SecretStr(f"postgresql+psycopg://soma:{DB_PASSWORD}@db.internal:5432/soma"),
        redis_url=SecretStr("redis://:r3dis-pass-word@cache:6379/0"),
    )


@pytest.fixture
def capture(secret_settings: Settings) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("soma.test.logs")
    handler = make_handler(secret_settings, "unit", stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_settings_secrets_lists_each_secret_and_the_parts_inside_urls_and_token_maps(secret_settings: Settings) -> None:
    found = settings_secrets(secret_settings)
    for expected in (TOKEN, TENANT_TOKEN, SASL, DB_PASSWORD, "r3dis-pass-word",
                     secret_settings.database.url.get_secret_value()):
        assert expected in found
    comma = load_settings(admin_tokens=SecretStr(f"{TOKEN}=admin, {TENANT_TOKEN}=tenant:acme"))
    assert {TOKEN, TENANT_TOKEN} <= set(settings_secrets(comma))


def test_redactor_removes_known_secrets_url_passwords_and_bearer_tokens() -> None:
    redact = Redactor([TOKEN, "short"])
    assert redact(f"token {TOKEN} used") == f"token {MASK} used"
    assert redact("the word short stays") == "the word short stays"  # below MIN_SECRET_LEN: patterns only
    assert redact("postgresql://soma:soma@127.0.0.1:5432/soma") == f"postgresql://soma:{MASK}@127.0.0.1:5432/soma"
    assert redact("redis://:hunter2@cache:6379/0") == f"redis://:{MASK}@cache:6379/0"
    assert redact("Authorization: Bearer abc.def-ghi") == f"Authorization: Bearer {MASK}"
    assert redact("authorization: basic dXNlcjpwYXNz") == f"authorization: basic {MASK}"
    assert redact("http://127.0.0.1:8081/admin/outbox?tenant=a") == "http://127.0.0.1:8081/admin/outbox?tenant=a"
    assert redact("no secrets here") == "no secrets here"


def test_json_lines_carry_the_required_keys_and_the_context(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    with log_context(tenant="acme", event_id="e-1"):
        logger.info("handled %s", "it")
        with log_context(topic="chat.messages", partition=2):
            logger.warning("inner")
    logger.info("outside")
    first, inner, outside = _lines(stream)
    assert first["ts"].endswith("Z")
    assert first["ts"][:2] == "20"
    assert first["level"] == "INFO"
    assert first["service"] == "unit"
    assert first["logger"] == "soma.test.logs"
    assert first["message"] == "handled it"
    assert (first["tenant"], first["event_id"]) == ("acme", "e-1")
    assert inner["topic"] == "chat.messages"
    assert inner["partition"] == 2
    assert inner["tenant"] == "acme"
    assert "tenant" not in outside
    assert "trace_id" not in outside


def test_secrets_never_reach_the_output_in_messages_arguments_extras_or_tracebacks(
    capture: tuple[logging.Logger, io.StringIO], secret_settings: Settings,
) -> None:
    logger, stream = capture
    url = secret_settings.database.url.get_secret_value()
    logger.info("connecting to %s with %s", url, SASL)
    logger.warning("token %s", TOKEN, extra={"header": f"Bearer {TENANT_TOKEN}"})
    try:
        raise ConnectionError(f"redis://:r3dis-pass-word@cache:6379/0 refused; password {DB_PASSWORD}")
    except ConnectionError:
        logger.exception("failed")
    text = stream.getvalue()
    for secret in (TOKEN, TENANT_TOKEN, SASL, DB_PASSWORD, "r3dis-pass-word", url):
        assert secret not in text
    lines = _lines(stream)
    assert lines[0]["message"] == f"connecting to {MASK} with {MASK}"
    assert lines[1]["header"] == f"Bearer {MASK}"
    assert "ConnectionError" in str(lines[2]["exc"])
    assert "Traceback" in str(lines[2]["exc"])


def test_text_format_is_one_readable_line(secret_settings: Settings) -> None:
    stream = io.StringIO()
    handler = make_handler(secret_settings.replace(log_format="text"), "unit", stream)
    record = logging.LogRecord("soma.x", logging.INFO, __file__, 1, "sent %d with %s", (3, TOKEN), None)
    with log_context(tenant="acme"):
        handler.handle(record)
    line = stream.getvalue().strip()
    assert line.endswith(f"INFO    soma.x: sent 3 with {MASK} [tenant=acme]")


def test_trace_ids_come_from_the_current_recording_span(capture: tuple[logging.Logger, io.StringIO]) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    logger, stream = capture
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logger.info("inside a span")
        ctx = span.get_span_context()
    logger.info("after it")
    inside, after = _lines(stream)
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert "trace_id" not in after


def test_context_is_per_asyncio_task(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture

    async def handle(tenant: str) -> None:
        with log_context(tenant=tenant):
            await asyncio.sleep(0.01)
            logger.info("handled")

    async def main() -> None:
        await asyncio.gather(handle("a"), handle("b"))

    asyncio.run(main())
    assert sorted(str(line["tenant"]) for line in _lines(stream)) == ["a", "b"]


def test_configure_logging_routes_the_root_logger_and_warnings(secret_settings: Settings) -> None:
    import sys
    import threading
    import warnings

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    hooks = (sys.excepthook, threading.excepthook)
    stream = io.StringIO()
    try:
        configure_logging(secret_settings, "unit", stream)
        logging.getLogger("some.library").info("library line with %s", SASL)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    finally:
        sys.excepthook, threading.excepthook = hooks
        logging.captureWarnings(False)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    lines = _lines(stream)
    assert lines[0]["message"] == f"library line with {MASK}"
    assert lines[1]["logger"] == "py.warnings"


def test_dict_config_for_faust_builds_the_same_handler(secret_settings: Settings) -> None:
    config = logging_dict_config(secret_settings, "stream-worker")
    assert config["disable_existing_loggers"] is False
    assert config["root"] == {"level": "INFO", "handlers": ["soma"]}
    assert config["handlers"]["soma"]["service"] == "stream-worker"


def test_log_level_accepts_lower_case() -> None:
    assert load_settings(log_level="debug").telemetry.log_level == "DEBUG"


def test_a_user_error_of_a_process_with_structured_logs_is_a_json_line(secret_settings: Settings) -> None:
    from soma.cli import main
    from soma.errors import SettingsError
    from soma.observability.logs import structured_logging

    root = logging.getLogger()
    saved = list(root.handlers)
    stream = io.StringIO()
    assert not structured_logging()
    handler = make_handler(secret_settings, "relay", stream)
    root.handlers = [handler]
    try:
        assert structured_logging()
        from unittest import mock

        with mock.patch("soma.cli.app", side_effect=SettingsError(f"bad value {SASL}")), \
                pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        root.handlers = saved
    assert exit_info.value.code == 1
    (line,) = _lines(stream)
    assert line["level"] == "ERROR"
    assert line["message"] == f"soma: error: bad value {MASK}"
