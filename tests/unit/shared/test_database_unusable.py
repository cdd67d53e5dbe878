"""Which failures of a consumer's transaction are the database's (the batch is held), not the messages'."""

from __future__ import annotations

import asyncpg
import pytest

from shared.messaging.consumer import PoisonMessage, database_unusable


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),  # 25006
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),  # 57P01
        asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),  # 57P02
        asyncpg.CannotConnectNowError("the database system is starting up"),  # 57P03
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),  # 53300
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),  # 08003
        asyncpg.PostgresConnectionError("connection failure"),  # 08000
    ],
)
def test_the_database_cannot_be_used(error: Exception) -> None:
    assert database_unusable(error)


def test_an_error_raised_because_of_one_that_says_so_says_so_too() -> None:
    # A rollback on a connection the server ended raises InterfaceError, while handling the server's error.
    try:
        try:
            raise asyncpg.AdminShutdownError("terminating connection due to administrator command")
        except asyncpg.AdminShutdownError:
            raise asyncpg.InterfaceError("connection is closed")  # noqa: B904 (what asyncpg does)
    except asyncpg.InterfaceError as exc:
        assert exc.__cause__ is None and exc.__context__ is not None
        assert database_unusable(exc)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),  # 57014: this statement's
        asyncpg.LockNotAvailableError("could not obtain lock"),  # 55P03
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),  # a handler's bug
        ConnectionError("a call to another system"),  # a handler's own: not the database's connection
        PoisonMessage("never"),
        ValueError("a bug"),
    ],
)
def test_the_messages_failed(error: Exception) -> None:
    assert not database_unusable(error)
