"""`make dead-letters`: what is in DEAD_LETTERS, and replaying or discarding it once its cause is fixed.

    python scripts/dead_letters.py list                          # a summary, then one line per dead letter
    python scripts/dead_letters.py replay 12 13                  # back to their consumer, then deleted
    python scripts/dead_letters.py replay --all --consumer alerting-questionnaire-submitted
    python scripts/dead_letters.py discard 14                    # deleted, never applied

NATS_URL (default nats://127.0.0.1:4222, the embedded server of `make run`) says which server. A dead letter is
shown by codes and ids only (subject, consumer, reason, event type and id): its payload is patient data and is
never printed. A replay goes to the consumer that gave up on the message only, and is applied once
(shared/messaging/deadletter.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from collections.abc import Sequence

import nats
from nats.js import JetStreamContext

from shared import redaction
from shared.messaging.deadletter import DeadLetter, dead_letter_at, dead_letters, discard, replay


def summary(letters: Sequence[DeadLetter]) -> list[str]:
    """How many dead letters per (subject, consumer, reason), then one line each."""
    if not letters:
        return ["No dead letters: every message was applied or is still being retried."]
    lines = [f"{len(letters)} dead letter(s):"]
    groups = Counter((letter.subject, letter.consumer, letter.reason) for letter in letters)
    for (subject, consumer, reason), count in sorted(groups.items()):
        lines.append(f"  {count:>5}  {subject}  {consumer}  {reason}")
    lines.append("")
    lines.append("  seq  dead-lettered at      subject  consumer  reason  deliveries  event  origin")
    for letter in letters:
        at = letter.at.strftime("%Y-%m-%d %H:%M:%SZ") if letter.at else "?"
        event = f"{letter.event_type} {letter.event_id}" if letter.event_type else "(not a CloudEvent)"
        lines.append(
            f"{letter.seq:>5}  {at}  {letter.subject}  {letter.consumer}  {letter.reason}  {letter.deliveries}  "
            f"{event}  {letter.origin}"
        )
    return lines


async def _chosen(js: JetStreamContext, args: argparse.Namespace) -> list[DeadLetter] | None:
    """The dead letters named on the command line; None (and a message) when one of them is not there."""
    if args.all:
        return [
            letter
            for letter in await dead_letters(js)
            if (args.consumer is None or letter.consumer == args.consumer)
            and (args.reason is None or letter.reason == args.reason)
        ]
    chosen = []
    for seq in args.seq:
        letter = await dead_letter_at(js, seq)
        if letter is None:
            print(f"There is no dead letter {seq} (replayed or discarded already?): nothing done.", file=sys.stderr)
            return None
        chosen.append(letter)
    return chosen


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="a summary, then one line per dead letter")
    for name, what in (("replay", "send back to the consumer that gave up, then delete"), ("discard", "delete")):
        command = commands.add_parser(name, help=what)
        command.add_argument("seq", type=int, nargs="*", help="dead letters by their sequence in DEAD_LETTERS")
        command.add_argument("--all", action="store_true", help="every dead letter (with the filters below)")
        command.add_argument("--consumer", help="with --all: only this consumer's")
        command.add_argument("--reason", help="with --all: only this reason's (poison, retries_exhausted, …)")
    args = parser.parse_args(argv)
    redaction.install()  # a dead letter's payload is patient data: no traceback may quote it
    if args.command != "list" and bool(args.seq) == args.all:
        parser.error(f"{args.command}: name dead letters by their sequence, or give --all (not both)")

    async def quiet(exc: Exception) -> None:
        pass  # the connection's failure is said once, below

    try:
        nc = await asyncio.wait_for(
            nats.connect(args.nats_url, connect_timeout=3, max_reconnect_attempts=0, error_cb=quiet), timeout=5
        )
    except Exception as exc:
        print(
            f"Cannot reach NATS at {args.nats_url} ({type(exc).__name__}): is `make run` going, or NATS_URL set?",
            file=sys.stderr,
        )
        return 2
    try:
        js = nc.jetstream()
        if args.command == "list":
            print("\n".join(summary(await dead_letters(js))))
            return 0
        letters = await _chosen(js, args)
        if letters is None:
            return 1
        act = replay if args.command == "replay" else discard
        for letter in letters:
            await act(js, letter)
            print(f"{args.command}ed {letter.seq}: {letter.subject} for {letter.consumer}")
        print(f"{len(letters)} dead letter(s) {args.command}ed.")
        return 0
    finally:
        await nc.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
