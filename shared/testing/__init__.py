"""Test support: real NATS and PostgreSQL for the test session, span capture, event helpers."""
