"""Exceptions as logs and traces print them: their type, their codes and their frames, never the data they quote.

An exception's message is written by whoever raised it, and some quote the values they were given: asyncpg
prints PostgreSQL's ``DETAIL`` (``Key (note)=(…) already exists.``, ``Failing row contains (…)``, every column of
the row), a data exception's message quotes the rejected input (``invalid input syntax for type uuid: "…"``),
``int("…")``, ``UUID``, ``fromisoformat`` and pydantic's ``input_value=`` quote theirs, a ``KeyError`` is its key.
Those paths are reached by bugs, which is exactly when the logs and traces are read and shipped to a support
desk: a patient's message or a nurse's note must not be in them.

The rule (``redacted_message``), by exception type rather than by patterns over the text:

- a PostgreSQL error prints its message (which names the objects involved, not values), its SQLSTATE and the
  schema, table, column, data type and constraint it names; never its detail or hint. A data exception (class
  22) or an error raised by a function (class P0) prints no message: theirs quote values;
- a pydantic ``ValidationError`` prints its model, its number of errors and their type codes (``missing``,
  ``string_too_long``), not their input values nor their locations (a dict's key is input too); so does FastAPI's
  ``RequestValidationError`` or ``ResponseValidationError`` (a route's answer that fails its model is a 500 whose
  traceback would print the answer: an alert, a patient's message);
- a JSON decoding error prints its reason and its position, never the document (``json.JSONDecodeError``'s and
  orjson's own message are exactly that);
- a ``UnicodeError`` prints its message (the codec, the position and at most one character or byte);
- any other ``ValueError`` and any ``KeyError`` print their type only;
- anything else prints its message as it is (an ``AttributeError``, a ``TypeError``, an ``OSError``, a NATS
  error, ours: made of names, types and codes). Notes added to an exception (``add_note``) are never printed.

The same redacted text goes everywhere an exception is written (``install``): every log record of the process
(its traceback, and an exception logged as its message or passed as an argument of it), the interpreter's and
threads' last word on an uncaught exception, an exception nobody could catch (``sys.unraisablehook``), and the
``exception`` events and error status of every span (ours, the FastAPI, ASGI and asyncpg instrumentations').
Nothing of it runs on a path where no exception is written.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from types import MethodType, TracebackType
from typing import Any

import asyncpg
import pydantic
from fastapi.exceptions import ValidationException
from opentelemetry.sdk.trace import Span
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_ESCAPED,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.trace import Status

WITHHELD = "[message withheld: it may quote data]"

# PostgreSQL's fields that name objects, never values (the order they are printed in).
_PG_NAMES = (
    ("schema", "schema_name"),
    ("table", "table_name"),
    ("column", "column_name"),
    ("data type", "data_type_name"),
    ("constraint", "constraint_name"),
)
# SQLSTATE classes whose message quotes values: data exceptions (the rejected input) and errors a function raises.
_PG_QUOTING_CLASSES = ("22", "P0")


def redacted_message(exc: BaseException) -> str:
    """What of ``exc``'s message may be written to a log line or a span (see the module's rule)."""
    try:
        return _redacted_message(exc)
    except Exception:  # a broken __str__ or a field of an unexpected type: the type alone is still worth a line
        return WITHHELD


def _redacted_message(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.PostgresError):
        return _postgres(exc)
    if isinstance(exc, pydantic.ValidationError):
        codes = sorted({str(error["type"]) for error in exc.errors(include_url=False, include_input=False)})
        count = exc.error_count()
        return f"{count} validation error{'s' if count != 1 else ''} for {exc.title} ({', '.join(codes)})"
    if isinstance(exc, ValidationException):  # FastAPI's: a request's or a response's errors, with their input
        errors = exc.errors()
        codes = sorted({str(error.get("type")) for error in errors if isinstance(error, dict)})
        return f"{len(errors)} validation error{'s' if len(errors) != 1 else ''} ({', '.join(codes)})"
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg}: line {exc.lineno} column {exc.colno} (char {exc.pos})"
    if isinstance(exc, UnicodeError):
        return str(exc)
    if isinstance(exc, (ValueError, KeyError)):
        return WITHHELD
    return str(exc)


def _postgres(exc: asyncpg.PostgresError) -> str:
    sqlstate = getattr(exc, "sqlstate", None) or ""
    fields = [f"sqlstate {sqlstate}"] if sqlstate else []
    for label, attribute in _PG_NAMES:
        if value := getattr(exc, attribute, None):
            fields.append(f"{label} {value}")
    said = getattr(exc, "message", None) or (exc.args[0] if exc.args else "")
    message = WITHHELD if sqlstate.startswith(_PG_QUOTING_CLASSES) else str(said)
    return f"{message} ({', '.join(fields)})" if fields else message


def redacted_traceback(exc: BaseException, tb: TracebackType | None = None) -> str:
    """``traceback.format_exception(exc)`` with every message of the chain (causes, contexts, the exceptions of a
    group) redacted: the frames and the types as they are."""
    summary = traceback.TracebackException(type(exc), exc, tb if tb is not None else exc.__traceback__, compact=True)
    for printed, raised in _chain(summary, exc):
        # ``_str`` is what ``format_exception_only`` prints after the type (CPython 3.11 to 3.14).
        printed._str = redacted_message(raised)
        printed.__notes__ = None
    return "".join(summary.format())


def _chain(summary: traceback.TracebackException, exc: BaseException) -> Iterator[tuple[Any, BaseException]]:
    """Each exception ``summary`` prints, with the exception it was made from (its fields follow the same links)."""
    seen: set[int] = set()
    pending: list[tuple[Any, BaseException]] = [(summary, exc)]
    while pending:
        printed, raised = pending.pop()
        if printed is None or raised is None or id(printed) in seen:
            continue
        seen.add(id(printed))
        yield printed, raised
        pending.append((printed.__cause__, raised.__cause__))  # type: ignore[arg-type]
        pending.append((printed.__context__, raised.__context__))  # type: ignore[arg-type]
        for inner_printed, inner in zip(
            getattr(printed, "exceptions", None) or (), getattr(raised, "exceptions", None) or (), strict=False
        ):
            pending.append((inner_printed, inner))


# Logging ------------------------------------------------------------------------------------------------------------


def _redacting_factory(previous: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = previous(*args, **kwargs)
        exc_info = record.exc_info
        if exc_info and exc_info[1] is not None:
            # Every logging.Formatter prints exc_text when it is set, instead of formatting exc_info itself.
            record.exc_text = redacted_traceback(exc_info[1], exc_info[2]).rstrip("\n")
        if isinstance(record.msg, BaseException):  # log.error(exc): the message is str(exc)
            record.msg = redacted_message(record.msg)
        if isinstance(record.args, tuple) and any(isinstance(arg, BaseException) for arg in record.args):
            record.args = tuple(redacted_message(a) if isinstance(a, BaseException) else a for a in record.args)
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    return factory


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(redacted_traceback(exc, tb))


def _unraisablehook(unraisable: Any) -> None:
    # An exception raised where nobody can catch it (a __del__, a coroutine closed by the garbage collector).
    where = unraisable.err_msg or "Exception ignored in"
    line = f"{where}: {unraisable.object!r}\n" if unraisable.object is not None else f"{where}\n"
    if unraisable.exc_value is None:
        sys.stderr.write(line)
        return
    sys.stderr.write(line + redacted_traceback(unraisable.exc_value, unraisable.exc_traceback))


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else threading.get_ident()
    sys.stderr.write(f"Exception in thread {name}:\n{redacted_traceback(args.exc_value, args.exc_traceback)}")


# Spans --------------------------------------------------------------------------------------------------------------


def _record_exception(
    self: Any, exception: BaseException, attributes: Any = None, timestamp: int | None = None, escaped: bool = False
) -> None:
    """The SDK's ``Span.record_exception``, with the redacted message and stack trace."""
    kind = type(exception)
    module, qualname = kind.__module__, kind.__qualname__
    message = redacted_message(exception)
    recorded: dict[str, Any] = {
        EXCEPTION_TYPE: f"{module}.{qualname}" if module and module != "builtins" else qualname,
        EXCEPTION_MESSAGE: message,
        EXCEPTION_STACKTRACE: redacted_traceback(exception),
        EXCEPTION_ESCAPED: str(escaped),
    }
    if attributes:
        recorded.update(attributes)
    self.add_event(name="exception", attributes=recorded, timestamp=timestamp)
    # Whoever records an exception on a span then sets its error status to "<Type>: <str(exc)>" (the SDK's span as a
    # context manager, the API's use_span, the FastAPI instrumentation): this span alone learns to say it redacted.
    try:
        said = f"{kind.__name__}: {exception}"
    except Exception:
        return
    if said != f"{kind.__name__}: {message}":
        redactions = self.__dict__.setdefault("_redacted_descriptions", {})
        redactions[said] = f"{kind.__name__}: {message}"
        if "set_status" not in self.__dict__:
            self.set_status = MethodType(_set_status_redacted, self)


def _set_status_redacted(self: Any, status: Any, description: str | None = None) -> None:
    redactions: dict[str, str] = self.__dict__.get("_redacted_descriptions", {})
    if isinstance(status, Status) and status.description in redactions:
        status = Status(status.status_code, redactions[status.description])
    if description in redactions:
        description = redactions[description]
    type(self).set_status(self, status, description)


def _install_spans() -> None:
    if getattr(Span.record_exception, "redacting", False):
        return
    _record_exception.redacting = True  # type: ignore[attr-defined]
    # The one place every recorded exception goes through while the exception itself is still at hand: an exporter
    # sees only its text, and the instrumentations' spans record with the SDK's defaults. Costs nothing until then.
    Span.record_exception = _record_exception  # type: ignore[method-assign]


def install() -> None:
    """Redact exceptions in every log record, uncaught-exception report and span of this process (idempotent)."""
    previous = logging.getLogRecordFactory()
    if not getattr(previous, "redacting", False):
        logging.setLogRecordFactory(_redacting_factory(previous))
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = _thread_excepthook
    if sys.unraisablehook is sys.__unraisablehook__:
        sys.unraisablehook = _unraisablehook
    _install_spans()
