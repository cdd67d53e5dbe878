"""Event contracts: the CloudEvents envelope, the payload models and the catalogue."""

from shared.events.envelope import CloudEvent, dataschema_for

__all__ = ["CloudEvent", "dataschema_for"]
