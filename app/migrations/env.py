"""Alembic's environment: migrate on the connection app/migrate.py hands over.

Run only through `app.migrate.upgrade`, which opens the connection, holds the migration lock and
commits; this file never connects by itself and never reads an `alembic.ini`. Imported outside
Alembic (by tooling), it does nothing.
"""

from __future__ import annotations

from alembic import context

from app.schema import metadata


def _migrate() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if getattr(context, "config", None) is not None:
    _migrate()
