"""Alembic's environment and revisions of the job store's schema (see app/migrate.py)."""
