"""The committed AsyncAPI document is what ``scripts/asyncapi.py`` generates, and it agrees with the code.

Regenerate it with ``make asyncapi`` after changing the catalogue, the streams or a service's
``SUBSCRIPTIONS``.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from shared.events.catalog import CATALOG
from shared.messaging.consumer import Subscription
from shared.messaging.topology import STREAMS, subject_matches

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "asyncapi" / "asyncapi.yaml"
STREAMS_BY_NAME = {stream.name: stream for stream in STREAMS}


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("oncofollow_asyncapi", ROOT / "scripts" / "asyncapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def subscriptions(generator: ModuleType) -> dict[str, tuple[Subscription, ...]]:
    return generator.service_subscriptions()


@pytest.fixture(scope="module")
def document(generator: ModuleType, subscriptions: dict[str, tuple[Subscription, ...]]) -> dict[str, Any]:
    return generator.build_document(subscriptions)


def test_committed_document_is_current(generator: ModuleType, document: dict[str, Any]) -> None:
    generated = generator.render(document)
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    if generated != committed:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    generated.splitlines(keepends=True),
                    "deploy/asyncapi/asyncapi.yaml (committed)",
                    "scripts/asyncapi.py (generated now)",
                )
            )[:80]
        )
        pytest.fail(f"deploy/asyncapi/asyncapi.yaml is stale: run make asyncapi and commit the result.\n{diff}")


def test_committed_document_parses_as_asyncapi_3(document: dict[str, Any]) -> None:
    committed = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    assert committed["asyncapi"] == "3.0.0"
    assert committed["servers"]["local"]["protocol"] == "nats"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    for ref in set(_refs(document)):
        assert ref.startswith("#/"), f"{ref}: only references inside the document are expected"
        node: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, f"{ref} points at nothing"
            node = node[part]


@pytest.mark.parametrize("event_type", sorted(CATALOG))
def test_every_event_has_a_channel_and_a_send_by_its_owner(document: dict[str, Any], event_type: str) -> None:
    spec = CATALOG[event_type]
    channel = document["channels"].get(event_type)
    assert channel is not None, f"{event_type} has no channel"
    assert channel["address"] == event_type
    assert channel["x-stream"] == spec.stream
    sends = [
        op
        for op in document["operations"].values()
        if op["action"] == "send" and op["channel"]["$ref"] == f"#/channels/{event_type}"
    ]
    assert [op["x-service"] for op in sends] == [spec.owner], f"{event_type} must be sent by {spec.owner} only"


@pytest.mark.parametrize("event_type", sorted(CATALOG))
def test_every_event_lives_in_a_stream_that_covers_it(event_type: str) -> None:
    spec = CATALOG[event_type]
    stream = STREAMS_BY_NAME.get(spec.stream)
    assert stream is not None, f"{event_type}: stream {spec.stream} is not declared in shared/messaging/topology.py"
    assert any(subject_matches(s, event_type) for s in stream.subjects), (
        f"{event_type}: stream {spec.stream} ({', '.join(stream.subjects)}) does not capture it"
    )
    others = [
        s.name for s in STREAMS if s.name != spec.stream and any(subject_matches(p, event_type) for p in s.subjects)
    ]
    assert not others, f"{event_type} is also captured by {others}: JetStream refuses overlapping streams"


def test_every_subscription_is_a_catalogued_event_in_its_stream(
    subscriptions: dict[str, tuple[Subscription, ...]],
) -> None:
    assert subscriptions, "no service declares SUBSCRIPTIONS: the generator found no services"
    for service, subs in subscriptions.items():
        for sub in subs:
            consumer = sub.spec
            where = f"services/{service}/main.py subscribes to {consumer.subject!r}"
            assert consumer.service == service, f"{where} with a ConsumerSpec for {consumer.service!r}"
            assert consumer.subject in CATALOG, f"{where}, which is not in shared/events/catalog.py"
            spec = CATALOG[consumer.subject]
            assert consumer.stream == spec.stream, f"{where} on stream {consumer.stream}; it lives in {spec.stream}"
            stream = STREAMS_BY_NAME.get(consumer.stream)
            assert stream is not None, f"{where} on stream {consumer.stream}, which is not declared"
            assert any(subject_matches(s, consumer.subject) for s in stream.subjects), (
                f"{where}, but stream {stream.name} ({', '.join(stream.subjects)}) does not capture it"
            )
            assert service in spec.consumers, f"{where}; add {service!r} to the event's consumers in the catalogue"


def test_every_catalogued_service_consumer_subscribes(subscriptions: dict[str, tuple[Subscription, ...]]) -> None:
    # Consumers that are not service packages (the nurses' dashboard reads the stream live) have no durable.
    for spec in CATALOG.values():
        for consumer in spec.consumers:
            if consumer not in subscriptions:
                continue
            subjects = {sub.spec.subject for sub in subscriptions[consumer]}
            assert spec.type in subjects, (
                f"the catalogue says {consumer} consumes {spec.type}, but services/{consumer}/main.py has no "
                "subscription for it"
            )


def test_durable_names_are_unique(subscriptions: dict[str, tuple[Subscription, ...]]) -> None:
    durables = [sub.spec.durable for subs in subscriptions.values() for sub in subs]
    assert len(durables) == len(set(durables)), f"duplicate durable consumer names: {sorted(durables)}"


def test_receive_operations_carry_the_consumer_config(
    document: dict[str, Any], subscriptions: dict[str, tuple[Subscription, ...]]
) -> None:
    receives = {op["x-jetstream"]["durable"]: op for op in document["operations"].values() if op["action"] == "receive"}
    expected = {sub.spec.durable: sub.spec for subs in subscriptions.values() for sub in subs}
    assert set(receives) == set(expected)
    for durable, consumer in expected.items():
        js = receives[durable]["x-jetstream"]
        assert js["stream"] == consumer.stream
        assert js["max_deliver"] == consumer.max_deliver
        assert js["backoff_s"] == list(consumer.backoff_s)
        assert js["max_ack_pending"] == consumer.max_ack_pending
