"""NATS JetStream: topology as code, connection, publishing, pull consumers, dead letters."""
