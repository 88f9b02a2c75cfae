"""The SQL store: schema, engine, ingest and queries."""
