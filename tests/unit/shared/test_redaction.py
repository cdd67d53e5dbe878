"""What an exception's message may carry into a log line or a span: the rule by exception type."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson
import pydantic
import pytest
from asyncpg.exceptions import CheckViolationError, InvalidTextRepresentationError, RaiseError
from fastapi.exceptions import ResponseValidationError
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.redaction import WITHHELD, redacted_message, redacted_traceback

SENTENCE = "Je me sens très mal depuis hier"
ROOT = Path(__file__).resolve().parents[3]


def _raised(make: Callable[[], object]) -> BaseException:
    try:
        make()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def _postgres(cls: type, message: str, **fields: str) -> BaseException:
    exc = cls(message)
    for name, value in fields.items():
        setattr(exc, name, value)
    return exc


def _answer_of_the_wrong_shape() -> None:
    # What FastAPI raises when a route's answer does not fit its response model: the answer is the input.
    raise ResponseValidationError(
        [{"type": "missing", "loc": ("response", "level"), "msg": "Field required", "input": {"note": SENTENCE}}]
    )


class Note(pydantic.BaseModel):
    level: int
    answers: dict[str, int]


@pytest.mark.parametrize(
    ("make", "kept"),
    [
        (lambda: Note.model_validate({"level": SENTENCE, "answers": {SENTENCE: SENTENCE}}), "int_parsing"),
        (lambda: int(SENTENCE), "ValueError"),
        (lambda: float(SENTENCE), "ValueError"),
        (lambda: datetime.fromisoformat(SENTENCE), "ValueError"),
        (lambda: dict[str, str]()[SENTENCE], "KeyError"),
        (lambda: orjson.loads(f'{{"note": "{SENTENCE}" x}}'), "line 1 column"),
        (lambda: SENTENCE.encode("ascii"), "position 13"),
        (lambda: _answer_of_the_wrong_shape(), "1 validation error (missing)"),
    ],
)
def test_types_known_to_quote_their_input_print_their_codes_only(make: Callable[[], object], kept: str) -> None:
    exc = _raised(make)
    assert SENTENCE[:10] in repr(exc) or isinstance(exc, (orjson.JSONDecodeError, UnicodeError))
    text = redacted_traceback(exc)
    assert "très mal" not in text and "Je me sens" not in text, text
    assert kept in text, text


def test_a_postgresql_error_prints_its_message_and_names_never_its_detail_or_hint() -> None:
    exc = _postgres(
        CheckViolationError,
        'new row for relation "notes" violates check constraint "note_is_short"',
        sqlstate="23514",
        detail=f"Failing row contains (1, {SENTENCE}).",
        hint=f"Shorter than {SENTENCE}?",
        schema_name="alerting",
        table_name="notes",
        constraint_name="note_is_short",
    )
    assert SENTENCE in str(exc)
    assert redacted_message(exc) == (
        'new row for relation "notes" violates check constraint "note_is_short" '
        "(sqlstate 23514, schema alerting, table notes, constraint note_is_short)"
    )


@pytest.mark.parametrize(
    ("cls", "sqlstate", "message"),
    [
        (InvalidTextRepresentationError, "22P02", f'invalid input syntax for type uuid: "{SENTENCE}"'),
        (RaiseError, "P0001", f"the note {SENTENCE} is too long"),
    ],
)
def test_postgresql_messages_that_quote_values_are_withheld(cls: type, sqlstate: str, message: str) -> None:
    assert redacted_message(_postgres(cls, message, sqlstate=sqlstate)) == f"{WITHHELD} (sqlstate {sqlstate})"


def test_a_chain_a_group_and_notes_are_redacted_throughout() -> None:
    def chained() -> None:
        try:
            try:
                int(SENTENCE)
            except ValueError as exc:
                raise KeyError(SENTENCE) from exc
        except KeyError:
            group = ExceptionGroup("two notes failed", [ValueError(SENTENCE), RuntimeError("the relay stopped")])
            group.add_note(SENTENCE)
            raise group from None

    exc = _raised(chained)
    text = redacted_traceback(exc)
    assert "Je me sens" not in text, text
    assert "RuntimeError: the relay stopped" in text and "ExceptionGroup: two notes failed" in text
    assert f"ValueError: {WITHHELD}" in text


def test_a_message_made_of_names_and_types_is_printed_as_it_is() -> None:
    # The AttributeError is the point: an attribute None has not, asked for on purpose.
    exc = _raised(lambda: None.note)  # type: ignore[attr-defined]
    assert redacted_message(exc) == str(exc) == "'NoneType' object has no attribute 'note'"


def test_a_span_used_as_a_context_manager_records_and_says_the_redacted_message() -> None:
    # Installed by the test session (shared.testing.plugin), as by every service process.
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = provider.get_tracer("tests.redaction")
    with pytest.raises(KeyError), tracer.start_span("lookup"):
        raise KeyError(SENTENCE)
    with pytest.raises(KeyError), tracer.start_as_current_span("lookup again"):
        raise KeyError(SENTENCE)
    for span in exported.get_finished_spans():
        assert span.status.description == f"KeyError: {WITHHELD}"
        (event,) = span.events
        assert event.attributes is not None
        assert event.attributes["exception.type"] == "KeyError"
        assert event.attributes["exception.message"] == WITHHELD
        assert "Je me sens" not in str(event.attributes["exception.stacktrace"])
    # What the OTLP exporter sends is made from the same spans.
    sent = encode_spans(exported.get_finished_spans()).SerializeToString()
    assert b"Je me sens" not in sent and WITHHELD.encode() in sent


def test_an_uncaught_exception_ends_the_process_without_quoting_its_value() -> None:
    # A script or a service that dies of an exception no handler caught: the interpreter prints its traceback.
    script = (
        "import gc, threading\nfrom shared import redaction\nredaction.install()\n"
        f"t = threading.Thread(target=lambda: int({SENTENCE!r}), name='worker')\nt.start(); t.join()\n"
        f"class Note:\n    def __del__(self): raise KeyError({SENTENCE!r})\n"
        "note = Note(); del note; gc.collect()\n"
        f"{{}}[{SENTENCE!r}]\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "Je me sens" not in done.stderr, done.stderr
    assert "Exception in thread worker" in done.stderr and f"KeyError: {WITHHELD}" in done.stderr
    assert "Exception ignored in: <function Note.__del__" in done.stderr


def test_a_handler_without_a_formatter_prints_the_redacted_traceback() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    try:
        exc = _raised(lambda: int(SENTENCE))
        logger.error("failed", exc_info=exc)
        logger.error(exc)
    finally:
        logger.removeHandler(handler)
    assert "Je me sens" not in out.getvalue() and f"ValueError: {WITHHELD}" in out.getvalue()
    assert out.getvalue().endswith(f"\n{WITHHELD}\n")
