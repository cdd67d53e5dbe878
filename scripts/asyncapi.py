"""Print the AsyncAPI 3.0 document of the platform's events (``make asyncapi``).

It is generated from the code that runs, never written by hand: the event catalogue
(``shared/events/catalog.py``), the streams (``shared/messaging/topology.py``) and the durable consumers
each service declares in ``services/<name>/main.py`` (``SUBSCRIPTIONS``). JetStream details that AsyncAPI
cannot express (streams, durable consumers, redelivery) are in ``x-`` extensions. The output is
deterministic so that ``tests/contract/test_asyncapi.py`` can compare it with the committed
``deploy/asyncapi/asyncapi.yaml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python scripts/asyncapi.py` puts scripts/ first on sys.path, where scripts/token.py hides the standard
# library's `token` module (orjson then crashes the interpreter on import). Drop that entry.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import importlib
import importlib.util
import pkgutil
import tomllib
from typing import Any

import yaml

import services
from shared.events.catalog import CATALOG, EventSpec
from shared.events.envelope import CONTENT_TYPE, CloudEvent
from shared.messaging.consumer import Subscription
from shared.messaging.deadletter import DLQ_PREFIX
from shared.messaging.topology import STREAMS, ConsumerSpec

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = "#/components/schemas/"
HEADERS_SCHEMA = "EventHeaders"

DESCRIPTION = """\
Events between the oncofollow services, on NATS JetStream.

Every message is a CloudEvents 1.0 envelope in structured JSON mode (Content-Type
application/cloudevents+json): `type` is the subject, `dataschema` carries the payload version
(urn:oncofollow:event:<type>:<version>) and `data` the payload. The envelope `id` is also the
`Nats-Msg-Id` header (JetStream de-duplication) and the consumer's inbox key; W3C trace context
travels in the `traceparent` header.

Producers publish through a transactional outbox and count an event as sent only on its PubAck.
Consumers are durable pull consumers (`x-jetstream` on each receive operation): they ack after their
transaction commits, and dead-letter what they give up on to `dlq.<subject>` (stream DEAD_LETTERS).
Within a version, payload changes are additive only; a breaking change is a new version with an
upcaster. Subjects, headers and envelope attributes never carry names or clinical content.
"""

ENVELOPE_FIELDS = {
    "id": "Unique per event; also the Nats-Msg-Id header and the consumers' inbox key.",
    "source": "The producing service, /services/<name>.",
    "subject": "The pseudonymous id of the entity the event is about; never a name.",
    "time": "When the event happened (RFC 3339, with a time zone).",
    "correlationid": "The id shared by every event of one workflow.",
    "causationid": "The id of the event that caused this one.",
}


def service_subscriptions() -> dict[str, tuple[Subscription, ...]]:
    """Every service's ``SUBSCRIPTIONS``, by service package name.

    Importing ``services.<name>.main`` builds its app, which reads the questionnaire definitions and the
    settings from the environment but opens no connection.
    """
    found: dict[str, tuple[Subscription, ...]] = {}
    for module in sorted(pkgutil.iter_modules(services.__path__), key=lambda m: m.name):
        if not module.ispkg or importlib.util.find_spec(f"services.{module.name}.main") is None:
            continue
        main = importlib.import_module(f"services.{module.name}.main")
        found[module.name] = tuple(getattr(main, "SUBSCRIPTIONS", ()))
    return found


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def _merge_schemas(into: dict[str, Any], defs: dict[str, Any]) -> None:
    for name, schema in defs.items():
        if into.setdefault(name, schema) != schema:
            raise ValueError(f"two different JSON Schemas are both named {name!r}: rename one of the models")


def envelope_schema(spec: EventSpec, schemas: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvent envelope of one event, its payload (and what the payload uses) moved to ``schemas``."""
    schema = CloudEvent[spec.payload].model_json_schema(ref_template=SCHEMAS + "{model}")
    _merge_schemas(schemas, schema.pop("$defs", {}))
    schema["title"] = f"{spec.type} v{spec.version}"
    properties = schema["properties"]
    properties["type"] = {**properties["type"], "const": spec.type}
    properties["dataschema"] = {**properties["dataschema"], "const": spec.dataschema}
    for name, description in ENVELOPE_FIELDS.items():
        properties[name] = {**properties[name], "description": description}
    # The model fills these in, so its schema calls them optional; on the wire they are always there
    # (CloudEvents requires id and specversion).
    schema["required"] = [name for name in properties if name in {*schema["required"], "specversion", "id", "time"}]
    return schema


def headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["Nats-Msg-Id", "Content-Type"],
        "properties": {
            "Nats-Msg-Id": {
                "type": "string",
                "description": "The envelope id: JetStream drops a re-publish within the stream's duplicate window.",
            },
            "Content-Type": {"type": "string", "const": CONTENT_TYPE},
            "traceparent": {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C trace context of the request that produced the event.",
            },
            "tracestate": {"type": "string", "description": "W3C trace state, when there is one."},
        },
    }


def consumer_extension(spec: ConsumerSpec) -> dict[str, Any]:
    config = spec.config()
    return {
        "stream": spec.stream,
        "durable": config.durable_name,
        "filter_subject": config.filter_subject,
        "ack_policy": config.ack_policy.value if config.ack_policy else None,
        "deliver_policy": config.deliver_policy.value if config.deliver_policy else None,
        "ack_wait_s": config.ack_wait,
        "max_deliver": config.max_deliver,
        "backoff_s": list(config.backoff or []),
        "max_ack_pending": config.max_ack_pending,
        "dead_letter_subject": f"{DLQ_PREFIX}{spec.subject}",
    }


def streams_extension() -> list[dict[str, Any]]:
    out = []
    for stream in sorted(STREAMS, key=lambda s: s.name):
        config = stream.config(replicas=1)
        out.append(
            {
                "name": stream.name,
                "subjects": list(stream.subjects),
                "storage": config.storage.value if config.storage else None,
                "retention": config.retention.value if config.retention else None,
                "discard": config.discard.value if config.discard else None,
                "max_age_s": stream.max_age_s,
                "max_bytes": stream.max_bytes,
                "duplicate_window_s": stream.duplicate_window_s,
            }
        )
    return out


def build_document(subscriptions: dict[str, tuple[Subscription, ...]] | None = None) -> dict[str, Any]:
    subscriptions = service_subscriptions() if subscriptions is None else subscriptions
    schemas: dict[str, Any] = {HEADERS_SCHEMA: headers_schema()}
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    for event_type in sorted(CATALOG):
        spec = CATALOG[event_type]
        message: dict[str, Any] = {
            "name": spec.type,
            "title": spec.payload.__name__,
            "summary": spec.summary,
        }
        if spec.payload.__doc__:
            message["description"] = spec.payload.__doc__.strip()
        message |= {
            "contentType": CONTENT_TYPE,
            "headers": {"$ref": SCHEMAS + HEADERS_SCHEMA},
            "payload": envelope_schema(spec, schemas),
            "correlationId": {"location": "$message.payload#/correlationid"},
        }
        messages[spec.type] = message
        channels[spec.type] = {
            "address": spec.type,
            "summary": spec.summary,
            "messages": {spec.type: {"$ref": f"#/components/messages/{spec.type}"}},
            "x-stream": spec.stream,
            "x-owner": spec.owner,
            "x-consumers": sorted(spec.consumers),
        }
        operations[f"send.{spec.type}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{spec.type}"},
            "summary": f"{spec.owner} publishes {spec.type} through its outbox.",
            "messages": [{"$ref": f"#/channels/{spec.type}/messages/{spec.type}"}],
            "x-service": spec.owner,
            "x-jetstream": {"stream": spec.stream},
        }

    receives: dict[str, Any] = {}
    for service, subs in subscriptions.items():
        for sub in subs:
            consumer = sub.spec
            receives[f"receive.{service}.{consumer.subject}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{consumer.subject}"},
                "summary": f"{service} consumes {consumer.subject} with the durable {consumer.durable}.",
                "messages": [{"$ref": f"#/channels/{consumer.subject}/messages/{consumer.subject}"}],
                "x-service": service,
                "x-jetstream": consumer_extension(consumer),
            }
    operations |= receives
    operations = dict(sorted(operations.items()))

    return {
        "asyncapi": "3.0.0",
        "info": {"title": "oncofollow events", "version": project_version(), "description": DESCRIPTION},
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The development server started by `make run` (production: deploy/nats/cluster/).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
        "x-streams": streams_extension(),
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, and no anchors: the file is read by people and diffed."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = """\
# Generated by scripts/asyncapi.py from shared/events/catalog.py, shared/messaging/topology.py and the
# services' SUBSCRIPTIONS. Do not edit: run `make asyncapi`.
"""


def render(document: dict[str, Any] | None = None) -> str:
    document = build_document() if document is None else document
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return HEADER + body


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
