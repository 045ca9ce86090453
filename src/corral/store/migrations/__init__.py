"""Alembic migrations of Corral's store, shipped in the package and run by corral.store.migrate."""
