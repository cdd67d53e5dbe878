"""The platform's shared runtime: one implementation of every cross-cutting mechanism."""
