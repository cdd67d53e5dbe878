"""HTTP: the FastAPI app factory, RFC 9457 problems, auth dependencies, idempotent ingress."""
