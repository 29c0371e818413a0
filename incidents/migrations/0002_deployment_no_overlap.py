"""PostgreSQL: an expert never holds two overlapping deployments (rest days included).

An exclusion constraint cannot live in Meta.constraints because SQLite has no such thing;
on SQLite incidents/workflow.py enforces the rule inside its IMMEDIATE transaction.
"""

from __future__ import annotations

from django.contrib.postgres.operations import BtreeGistExtension
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

CONSTRAINT = "deployment_no_overlap_per_expert"


def add_constraint(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"""
        ALTER TABLE incidents_deployment ADD CONSTRAINT {CONSTRAINT}
        EXCLUDE USING gist (expert_id WITH =, daterange(start, rest_until, '[]') WITH &&)
        WHERE (status IN ('offered', 'accepted', 'on_site'))
        """
    )


def drop_constraint(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE incidents_deployment DROP CONSTRAINT {CONSTRAINT}")


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]

    operations = [
        BtreeGistExtension(),
        migrations.RunPython(add_constraint, drop_constraint, elidable=False),
    ]
