"""Alembic's environment: runs the migrations on the connection corral.store.migrate hands over."""

from __future__ import annotations

from alembic import context

from corral.store.tables import metadata


def run_migrations() -> None:
    """Migrate on the caller's connection (inside its transaction and, on PostgreSQL, its lock)."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite can't ALTER most things; batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
