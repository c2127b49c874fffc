"""A host reads what it serves, and no host makes another act.

On PostgreSQL, each host's role now reads (the rule per table):

- instances: its own rows (owner), and another host's row of an
  instance whose owner wrote a migration row naming this host as its
  source or destination (that host handed it over, or is taking it), or
  that this host is evacuating (its own evacuation row in flight, from
  the row's owner);
- migrations: the rows it owns, is the source or the destination of;
- instance_faults, instance_actions, instance_action_events: those of
  the instances it owns;
- security_groups: its own, and those of a host it is evacuating from;
- services: every row (a host's heartbeat says whether it is down;
  nothing secret);
- compute_nodes, cached_images, floating_ips: its own;
- images_in_use (a view: image_ref and image_meta of every live
  instance, for a _base shared between hosts): every row.

Members of the group role compute_operators (computectl, the host pick:
`compute-agent-manage db create-operator-role`) read every row and write
none.

Writes stay each host's own (0012), and:

- a migration row of an evacuation may be written only by its
  destination, and only while the source's heartbeat is older than
  cloud_settings' service_down_time; its created_at is the server's
  clock; no update changes a migration's id, owner, instance, type,
  source, destination or creation time;
- every integer id comes from its table's sequence: an INSERT that names
  one is refused;
- an instance row may not take a uuid another host holds (a live row of
  another owner), unless that host hands it over: its migration row in
  flight names this host as the destination, or its record is unshelving
  to this host, or this host is evacuating it from that host; no update
  changes a row's uuid or owner;
- a floating IP row names an address of one of the ranges the operator
  gave this host (host_floating_ranges, `db create-host-role
  --floating-range`), and a port and fixed IP of a live instance of this
  host.

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ME = "current_user::text"
OPERATORS = "compute_operators"
IN_FLIGHT = "('accepting', 'accepted')"
OWNS_INSTANCE = ("EXISTS (SELECT 1 FROM instances i WHERE i.uuid = {table}.instance_uuid "
                 f"AND i.owner = {ME})")
EVACUATING_FROM = ("EXISTS (SELECT 1 FROM migrations m WHERE m.owner = {me} AND "
                   "m.migration_type = 'evacuation' AND m.dest_host = {me} AND "
                   "m.source_host = {host} AND m.status IN {flight}{more})")
READERS = {
    "instances": (
        f"owner = {ME} OR EXISTS (SELECT 1 FROM migrations m WHERE m.instance_uuid = "
        f"instances.uuid AND m.owner = instances.owner AND {ME} IN (m.source_host, "
        f"m.dest_host)) OR " + EVACUATING_FROM.format(
            me=ME, host="instances.owner", flight=IN_FLIGHT,
            more=" AND m.instance_uuid = instances.uuid")),
    "migrations": f"{ME} IN (owner, source_host, dest_host)",
    "instance_faults": OWNS_INSTANCE.format(table="instance_faults"),
    "instance_actions": OWNS_INSTANCE.format(table="instance_actions"),
    "instance_action_events": (
        "EXISTS (SELECT 1 FROM instance_actions a JOIN instances i ON i.uuid = "
        f"a.instance_uuid WHERE a.id = instance_action_events.action_id AND i.owner = {ME})"),
    "security_groups": f"host = {ME} OR " + EVACUATING_FROM.format(
        me=ME, host="security_groups.host", flight=IN_FLIGHT, more=""),
    "services": "true",
    "compute_nodes": f"host = {ME}",
    "cached_images": f"host = {ME}",
    "floating_ips": f"host = {ME}",
}
WRITERS = {        # as 0012 and 0013 had them, now for writes only
    "instances": f"owner = {ME}",
    "services": f"host = {ME}",
    "compute_nodes": f"host = {ME}",
    "cached_images": f"host = {ME}",
    "floating_ips": f"host = {ME}",
    "security_groups": f"host = {ME}",
    "instance_faults": OWNS_INSTANCE.format(table="instance_faults"),
    "instance_actions": OWNS_INSTANCE.format(table="instance_actions"),
    "instance_action_events": READERS["instance_action_events"],
}
MIGRATION_WRITE = (f"owner = {ME} AND {ME} IN (source_host, dest_host) AND "
                   f"(migration_type <> 'evacuation' OR (dest_host = {ME} AND "
                   f"source_host <> {ME} AND ca_host_down(source_host)))")
MIGRATION_TOUCH = f"{ME} IN (owner, source_host, dest_host)"
DONE = "('confirmed', 'reverted', 'completed', 'error', 'done')"
INSTANCE_INSERT = f"owner = {ME} AND NOT ca_uuid_taken(uuid, {ME})"
FLOATING_INSERT = (
    f"host = {ME} AND EXISTS (SELECT 1 FROM host_floating_ranges r WHERE r.host = {ME} "
    "AND floating_ips.address::inet <<= r.cidr::cidr) AND EXISTS (SELECT 1 FROM instances i, "
    "json_array_elements(i.networks) n, json_array_elements_text(n->'port'->'fixed_ips') ip "
    f"WHERE i.uuid = floating_ips.instance_uuid AND i.owner = {ME} AND i.host = {ME} "
    "AND NOT i.deleted AND n->'port'->>'id' = floating_ips.port_id "
    "AND ip = floating_ips.fixed_ip)")
SEQUENCED = ("instances", "instance_faults", "instance_actions", "instance_action_events",
             "services", "compute_nodes", "cached_images")
FUNCTIONS = [
    # whether host's heartbeat is older than the cloud's service_down_time
    # (no service row: not down); its owner's rights, so any host may ask
    """CREATE FUNCTION ca_host_down(h text) RETURNS boolean LANGUAGE sql STABLE
       SECURITY DEFINER SET search_path = public, pg_temp AS $$
         SELECT coalesce(
           (SELECT max(coalesce(updated_at, created_at)) FROM services WHERE host = h)
             < (now() AT TIME ZONE 'utc') - make_interval(secs => coalesce(
               (SELECT value::int FROM cloud_settings WHERE name = 'service_down_time'), 60)),
           false)
       $$""",
    # whether another host than me launched uuid (a build queued for a
    # host that was down, of an instance that lived elsewhere meanwhile; a
    # record of a refused claim never launched); says no more than that
    """CREATE FUNCTION ca_uuid_elsewhere(u text, me text) RETURNS boolean LANGUAGE sql
       STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
         SELECT EXISTS (SELECT 1 FROM instances WHERE uuid = u AND owner <> me
                        AND launched_at IS NOT NULL)
       $$""",
    # the other hosts whose live record of uuid says they hold it, and its
    # state there (an evacuation refuses an instance that runs elsewhere)
    """CREATE FUNCTION ca_uuid_holders(u text, me text)
       RETURNS TABLE (holder text, vm_state text, power_state int) LANGUAGE sql STABLE
       SECURITY DEFINER SET search_path = public, pg_temp AS $$
         SELECT owner::text, vm_state::text, power_state FROM instances
          WHERE uuid = u AND owner <> me AND host = owner AND NOT deleted
       $$""",
    # whether another host holds uuid (a live row; not a build it refused,
    # which never launched) and hands it to nobody, or not to me
    f"""CREATE FUNCTION ca_uuid_taken(u text, me text) RETURNS boolean LANGUAGE sql STABLE
       SECURITY DEFINER SET search_path = public, pg_temp AS $$
         SELECT EXISTS (SELECT 1 FROM instances i WHERE i.uuid = u AND i.owner <> me
           AND NOT i.deleted
           AND NOT (i.vm_state = 'error' AND i.launched_at IS NULL)
           AND NOT EXISTS (SELECT 1 FROM migrations m WHERE m.instance_uuid = u
                           AND m.owner = i.owner AND m.dest_host = me
                           AND m.status NOT IN {DONE})
           AND NOT coalesce(i.task_state = 'unshelving' AND i.task_args->>'dest' = me, false)
           AND NOT EXISTS (SELECT 1 FROM migrations m WHERE m.instance_uuid = u
                           AND m.owner = me AND m.migration_type = 'evacuation'
                           AND m.source_host = i.owner AND m.status IN {IN_FLIGHT}))
       $$""",
    """CREATE FUNCTION ca_instance_keeps() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF (NEW.uuid, NEW.owner) IS DISTINCT FROM (OLD.uuid, OLD.owner) THEN
           RAISE EXCEPTION 'an instance row keeps its uuid and owner'
             USING ERRCODE = 'insufficient_privilege';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE FUNCTION ca_migration_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'INSERT' THEN
           NEW.created_at := now() AT TIME ZONE 'utc';
         ELSIF (NEW.id, NEW.owner, NEW.instance_uuid, NEW.migration_type, NEW.source_host,
                NEW.dest_host, NEW.created_at) IS DISTINCT FROM
               (OLD.id, OLD.owner, OLD.instance_uuid, OLD.migration_type, OLD.source_host,
                OLD.dest_host, OLD.created_at) THEN
           RAISE EXCEPTION 'a migration row keeps its id, owner, instance, type, source, '
                           'destination and creation time';
         END IF;
         RETURN NEW;
       END $$""",
    # an id the column's default did not just draw is refused (the
    # default's nextval is this session's currval of the sequence)
    """CREATE FUNCTION ca_sequenced_id() RETURNS trigger LANGUAGE plpgsql
       SECURITY DEFINER SET search_path = public, pg_temp AS $$
       DECLARE drawn bigint;
       BEGIN
         BEGIN
           drawn := currval(pg_get_serial_sequence(TG_TABLE_NAME, 'id'));
         EXCEPTION WHEN object_not_in_prerequisite_state THEN
           drawn := NULL;
         END;
         IF drawn IS NULL OR NEW.id IS DISTINCT FROM drawn THEN
           RAISE EXCEPTION 'ids of % come from its sequence, not from an INSERT',
             TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
         END IF;
         RETURN NEW;
       END $$""",
]


def upgrade():
    op.create_table("cloud_settings",
                    sa.Column("name", sa.String(64), primary_key=True),
                    sa.Column("value", sa.String(255), nullable=False))
    op.execute("INSERT INTO cloud_settings (name, value) VALUES ('service_down_time', '60')")
    op.create_table("host_floating_ranges",
                    sa.Column("host", sa.String(255), primary_key=True),
                    sa.Column("cidr", sa.String(64), primary_key=True))
    op.execute("CREATE VIEW images_in_use AS SELECT image_ref, image_meta FROM instances "
               "WHERE NOT deleted")
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
               f"'{OPERATORS}') THEN CREATE ROLE {OPERATORS} NOLOGIN; END IF; END $$")
    for f in FUNCTIONS:
        op.execute(f)
    for table in READERS:
        op.execute(f"DROP POLICY IF EXISTS host_reads ON {table}")
        op.execute(f"DROP POLICY IF EXISTS host_writes ON {table}")
        op.execute(f"CREATE POLICY host_reads ON {table} FOR SELECT USING ({READERS[table]})")
        op.execute(f"CREATE POLICY operator_reads ON {table} FOR SELECT TO {OPERATORS} "
                   f"USING (true)")
    for table, mine in WRITERS.items():
        for command in ("INSERT", "UPDATE", "DELETE"):
            name = f"host_{command.lower()}s"
            if command == "INSERT":
                op.execute(f"CREATE POLICY {name} ON {table} FOR INSERT WITH CHECK ({mine})")
            elif command == "UPDATE":
                op.execute(f"CREATE POLICY {name} ON {table} FOR UPDATE USING ({mine}) "
                           f"WITH CHECK ({mine})")
            else:
                op.execute(f"CREATE POLICY {name} ON {table} FOR DELETE USING ({mine})")
    for table, check in (("instances", INSTANCE_INSERT), ("floating_ips", FLOATING_INSERT)):
        op.execute(f"ALTER POLICY host_inserts ON {table} WITH CHECK ({check})")
    op.execute("CREATE TRIGGER ca_instance_keeps BEFORE UPDATE ON instances "
               "FOR EACH ROW EXECUTE FUNCTION ca_instance_keeps()")
    op.execute(f"CREATE POLICY host_inserts ON migrations FOR INSERT "
               f"WITH CHECK ({MIGRATION_WRITE})")
    op.execute(f"CREATE POLICY host_updates ON migrations FOR UPDATE USING ({MIGRATION_TOUCH}) "
               f"WITH CHECK ({MIGRATION_TOUCH})")
    op.execute(f"CREATE POLICY host_deletes ON migrations FOR DELETE USING (owner = {ME})")
    op.execute("CREATE TRIGGER ca_migration_stamp BEFORE INSERT OR UPDATE ON migrations "
               "FOR EACH ROW EXECUTE FUNCTION ca_migration_stamp()")
    for table in SEQUENCED:
        op.execute(f"CREATE TRIGGER ca_sequenced_id BEFORE INSERT ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION ca_sequenced_id()")
    op.execute(f"GRANT SELECT ON cloud_settings, host_floating_ranges, images_in_use, "
               f"alembic_version TO {OPERATORS}")


def downgrade():
    raise NotImplementedError("0014 narrows what hosts read; it is not undone")
