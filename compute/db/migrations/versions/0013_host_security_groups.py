"""security_groups.host: each host keeps the groups it was sent (a build's,
a refresh's, an arriving instance's), keyed (id, host), so no host's write
reaches the rules another host applies; on PostgreSQL a host role writes
only its own rows.  Rows of a shared database are copied to every host
that has a service row (each had been applying them).

Revision ID: 0013
Revises: 0012
"""
import warnings

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

GROUPS = sa.table("security_groups", sa.column("id", sa.String), sa.column("host", sa.String),
                  sa.column("body", sa.JSON), sa.column("updated_at", sa.DateTime))


def upgrade():
    bind = op.get_bind()
    rows = [dict(r._mapping) for r in bind.execute(
        sa.select(GROUPS.c.id, GROUPS.c.body, GROUPS.c.updated_at))]
    hosts = [r[0] for r in bind.execute(sa.text(
        "SELECT DISTINCT host FROM services ORDER BY host"))] or [""]
    op.execute("DELETE FROM security_groups")
    if bind.dialect.name == "sqlite":
        with warnings.catch_warnings():     # the reflected key differs: it does
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            with op.batch_alter_table("security_groups", recreate="always") as batch:
                batch.add_column(sa.Column("host", sa.String(255), nullable=False))
                batch.create_primary_key("pk_security_groups", ["id", "host"])
    else:
        op.add_column("security_groups", sa.Column("host", sa.String(255), nullable=False))
        op.drop_constraint("security_groups_pkey", "security_groups", type_="primary")
        op.create_primary_key("pk_security_groups", "security_groups", ["id", "host"])
    if rows:
        op.bulk_insert(GROUPS, [dict(r, host=h) for r in rows for h in hosts])
    if bind.dialect.name == "postgresql":
        mine = "host = current_user::text"
        op.execute("ALTER TABLE security_groups ENABLE ROW LEVEL SECURITY")
        op.execute("CREATE POLICY host_reads ON security_groups FOR SELECT USING (true)")
        op.execute(f"CREATE POLICY host_writes ON security_groups FOR ALL "
                   f"USING ({mine}) WITH CHECK ({mine})")


def downgrade():
    raise NotImplementedError("0013 keeps groups per host; it is not undone")
