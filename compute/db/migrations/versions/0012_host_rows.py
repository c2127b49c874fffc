"""One service row per host and binary (heartbeats are single UPDATEs, the
first beat an INSERT that a racing one loses), and on PostgreSQL row-level
security: a host's database role writes only its own rows.

Reads stay open to every host (service-list, an evacuation reads the dead
host's record); writes are limited to the rows whose owner (instances),
host (services, compute_nodes, cached_images, floating_ips) or
participants (migrations) name the connected role, and to the faults,
actions and action events of the instances it owns.  The role that runs
`compute-agent-manage db sync` owns the tables and is not limited.

Revision ID: 0012
Revises: 0011
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ME = "current_user::text"
OWNS_INSTANCE = ("EXISTS (SELECT 1 FROM instances i WHERE i.uuid = {table}.instance_uuid "
                 f"AND i.owner = {ME})")
WRITERS = {
    "instances": f"owner = {ME}",
    "migrations": f"{ME} IN (owner, source_host, dest_host)",
    "services": f"host = {ME}",
    "compute_nodes": f"host = {ME}",
    "cached_images": f"host = {ME}",
    "floating_ips": f"host = {ME}",
    "instance_faults": OWNS_INSTANCE.format(table="instance_faults"),
    "instance_actions": OWNS_INSTANCE.format(table="instance_actions"),
    "instance_action_events": (
        "EXISTS (SELECT 1 FROM instance_actions a JOIN instances i ON i.uuid = "
        f"a.instance_uuid WHERE a.id = instance_action_events.action_id AND i.owner = {ME})"),
}


def upgrade():
    with op.batch_alter_table("services") as batch:
        batch.create_unique_constraint("uq_services_host_binary", ["host", "binary"])
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, mine in WRITERS.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY host_reads ON {table} FOR SELECT USING (true)")
        op.execute(f"CREATE POLICY host_writes ON {table} FOR ALL "
                   f"USING ({mine}) WITH CHECK ({mine})")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in WRITERS:
            op.execute(f"DROP POLICY host_writes ON {table}")
            op.execute(f"DROP POLICY host_reads ON {table}")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    with op.batch_alter_table("services") as batch:
        batch.drop_constraint("uq_services_host_binary", type_="unique")
