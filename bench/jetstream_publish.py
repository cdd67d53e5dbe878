#!/usr/bin/env python3
"""What a JetStream publish costs the server: atomic batches against pipelined single publishes.

    python bench/jetstream_publish.py                 # its own NATS server, with the shipped configuration
    python bench/jetstream_publish.py --sizes 1,5,20

For each group size n, the same number of messages is published in groups of n, once as atomic batches
(the last message commits, its reply is the PubAck of the batch) and once as n pipelined publishes with
one PubAck each. It reports the server's CPU per message (from /proc) and the time from a group's first
message to its last PubAck. The outbox relay's ``ATOMIC_BATCH_MIN`` comes from here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import common  # beside this script; it puts the project root on the path
import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from shared.devservers import EmbeddedNats

SUBJECT = "bench.publish"
BODY = b"x" * 1200  # about the size of a questionnaire.submitted event


async def atomic_batch(nc: NATS, n: int) -> None:
    batch_id = uuid.uuid4().hex
    for k in range(1, n + 1):
        headers = {"Nats-Msg-Id": uuid.uuid4().hex, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(k)}
        if k < n:
            await nc.publish(SUBJECT, BODY, headers=headers)
        else:
            headers["Nats-Batch-Commit"] = "1"
            reply = await nc.request(SUBJECT, BODY, headers=headers, timeout=5)
            if b'"error"' in reply.data:
                raise RuntimeError(reply.data.decode())


async def single_publishes(js: JetStreamContext, n: int) -> None:
    acks = [await js.publish_async(SUBJECT, BODY, headers={"Nats-Msg-Id": uuid.uuid4().hex}) for _ in range(n)]
    await asyncio.gather(*acks)


async def main(sizes: list[int], messages: int) -> None:
    server = EmbeddedNats(Path(tempfile.mkdtemp(prefix="oncofollow-bench-js-"))).start()
    assert server.process is not None
    cpu = common.CpuTracker(pids={"nats-server": server.process.pid})
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCH", subjects=[SUBJECT], allow_atomic=True, duplicate_window=120))
    print("| messages per group | way | server CPU µs per message | first message → last PubAck, ms |")
    print("|---:|---|---:|---:|")
    try:
        for n in sizes:
            rounds = max(20, messages // n)
            for way in ("atomic batch", "single publishes"):
                if n == 1 and way == "atomic batch":
                    continue  # a batch of one is a single publish
                before, started = cpu.snapshot()["nats-server"], time.perf_counter()
                for _ in range(rounds):
                    await (atomic_batch(nc, n) if way == "atomic batch" else single_publishes(js, n))
                used, wall = cpu.snapshot()["nats-server"] - before, time.perf_counter() - started
                print(f"| {n} | {way} | {1e6 * used / (rounds * n):.0f} | {1e3 * wall / rounds:.2f} |", flush=True)
    finally:
        await nc.close()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,5,10,20,50", help="messages per group (default 1,2,5,10,20,50)")
    parser.add_argument("--messages", type=int, default=2000, help="messages per measurement (default 2000)")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.messages))
