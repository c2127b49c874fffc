"""instances.owner and migrations.owner: each host's own rows in a database
many hosts share (an instance's row per host that holds or held it; a
migration's row per host taking part)

Revision ID: 0010
Revises: 0009
"""
import warnings

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# until now a database held one host's rows: that host (its service row)
THIS_HOST = "(SELECT host FROM services ORDER BY id LIMIT 1)"


def upgrade():
    for table in ("instances", "migrations"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("owner", sa.String(255), nullable=True))
    op.execute(f"UPDATE instances SET owner = COALESCE({THIS_HOST}, host)")
    op.execute(f"UPDATE migrations SET owner = COALESCE({THIS_HOST}, source_host)")
    with op.batch_alter_table("instances") as batch:
        batch.alter_column("owner", existing_type=sa.String(255), nullable=False)
        batch.drop_index("ix_instances_uuid")
        batch.create_index("ix_instances_uuid", ["uuid"], unique=False)
        batch.create_index("ix_instances_owner", ["owner"], unique=False)
        batch.create_unique_constraint("uq_instances_uuid_owner", ["uuid", "owner"])
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot alter a primary key: the table is copied with the
        # new one (SQLAlchemy warns that the reflected key differs: it does)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            with op.batch_alter_table("migrations", recreate="always") as batch:
                batch.alter_column("owner", existing_type=sa.String(255), nullable=False)
                batch.create_primary_key("pk_migrations", ["id", "owner"])
    else:
        op.alter_column("migrations", "owner", existing_type=sa.String(255), nullable=False)
        op.drop_constraint("migrations_pkey", "migrations", type_="primary")
        op.create_primary_key("pk_migrations", "migrations", ["id", "owner"])


def downgrade():
    raise NotImplementedError("0010 keeps rows of many hosts; it is not undone")
