"""JetStream's replies to the relay's publishes, against a real NATS server: a PubAck or the server's error,
never a reply left waiting (nats-py's publish_async loses the errors, nats.py#985)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import PubAck
from nats.js.errors import BadRequestError, NoStreamResponseError

from shared.messaging.pubacks import PubAcks
from shared.messaging.topology import ensure_topology

pytestmark = pytest.mark.integration

SUBJECT = "message.sent"  # taken by the QUESTIONNAIRES stream, which allows atomic batches
REPLY_WITHIN_S = 10.0  # a reply that never comes fails the test instead of hanging it


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    connection = await nats.connect(nats_url)
    await ensure_topology(connection.jetstream())
    yield connection
    await connection.close()


async def _reply(future: asyncio.Future[PubAck]) -> PubAck:
    return await asyncio.wait_for(future, REPLY_WITHIN_S)


async def _batch(acks: PubAcks, ids: list[str]) -> asyncio.Future[PubAck]:
    """An atomic batch of one message per id; its commit's reply future."""
    batch_id = uuid.uuid4().hex
    for n, event_id in enumerate(ids, 1):
        headers = {"Nats-Msg-Id": event_id, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(n)}
        if n < len(ids):
            await acks._nc.publish(SUBJECT, b"{}", headers=headers)
        else:
            return await acks.publish(SUBJECT, b"{}", {**headers, "Nats-Batch-Commit": "1"})
    raise AssertionError("an empty batch")


async def test_a_stored_message_s_reply_is_its_puback(nc: NATS) -> None:
    acks = PubAcks(nc)
    first = await _reply(await acks.publish(SUBJECT, b"{}", {"Nats-Msg-Id": str(uuid.uuid4())}))
    second = await _reply(await acks.publish(SUBJECT, b"{}", {"Nats-Msg-Id": str(uuid.uuid4())}))
    assert (first.stream, second.stream) == ("QUESTIONNAIRES", "QUESTIONNAIRES")
    assert second.seq == first.seq + 1
    assert acks.in_flight == 0
    await acks.close()


async def test_a_batch_jetstream_refuses_gets_its_error(nc: NATS) -> None:
    acks = PubAcks(nc)
    stored = str(uuid.uuid4())
    await _reply(await acks.publish(SUBJECT, b"{}", {"Nats-Msg-Id": stored}))
    ack = await _reply(await _batch(acks, [str(uuid.uuid4()), str(uuid.uuid4())]))
    assert ack.batch_size == 2

    refused = await _batch(acks, [str(uuid.uuid4()), stored])

    with pytest.raises(BadRequestError) as error:
        await _reply(refused)
    assert error.value.err_code == 10201  # "atomic publish batch contains duplicate message id"
    assert acks.in_flight == 0
    await acks.close()


async def test_a_subject_no_stream_takes_is_told_at_once(nc: NATS) -> None:
    acks = PubAcks(nc)
    with pytest.raises(NoStreamResponseError):
        await _reply(await acks.publish(f"nowhere.{uuid.uuid4().hex}", b"{}", {}))
    await acks.close()


async def test_a_reply_its_caller_stopped_waiting_for_is_forgotten(nc: NATS) -> None:
    acks = PubAcks(nc)
    futures: list[Any] = [await acks.publish(SUBJECT, b"{}", {"Nats-Msg-Id": str(uuid.uuid4())}) for _ in range(3)]
    futures[0].cancel()
    await asyncio.gather(*futures[1:])
    await asyncio.sleep(0.05)  # the cancelled one's reply arrives too, and finds nobody
    assert acks.in_flight == 0
    await acks.close()
    assert futures[0].cancelled()
