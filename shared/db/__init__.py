"""PostgreSQL: the asyncpg pool, SQL migrations, the transactional outbox and the consumer inbox."""
