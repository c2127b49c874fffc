"""Database access: engine setup, schema migration, and the few queries and
updates the service needs.  Every state change of an instance is a
compare-and-swap on its expected task_state (and optionally vm_state): two
racing operations on one instance cannot both proceed.

A Database is one host's view (owner): its instance and migration rows
are its own, so hosts sharing one database keep the rows each would keep
in a database of its own.  Reads of other hosts' rows (a dead host's
instances, evacuations from this host) name that host explicitly."""
import contextlib
import datetime
import os

import sqlalchemy as sa
from sqlalchemy import create_engine, delete, event, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.orm import sessionmaker

from compute.core import exception, sealing
from compute.core.states import MigrationStatus as MS
from compute.db import models

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")
# The newest revision under migrations/versions (a unit test checks it is
# Alembic's head): an agent whose schema is current starts without loading
# Alembic at all (about 11 MB of resident memory and 0.2 s).
HEAD_REVISION = "0014"
_ANY = object()
IMAGES_IN_USE = sa.table("images_in_use", sa.column("image_ref", sa.String),
                         sa.column("image_meta", sa.JSON))


def default_sqlite(conf):
    """The host's own SQLite file, when no [database] connection is set."""
    return os.path.join(conf.state_path, "compute.sqlite")


def sqlite_files(conf):
    """The files of the host's state database when it is SQLite (the
    database and its WAL and shared-memory files), else ()."""
    url = conf.database.connection
    if url is None:
        path = default_sqlite(conf)
    else:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database:
            return ()
        path = parsed.database
    return (path, path + "-wal", path + "-shm")


class Database:
    def __init__(self, url, owner=None, pool=None, sealer=None, read_only=False):
        """pool: create_engine's pool arguments for a server database
        (pool_size, max_overflow, pool_timeout, pool_recycle); sealer: the
        host's compute.core.sealing.Sealer (the credentials of its records are
        sealed on write and opened on read); None for a reader that never
        writes them (computectl, compute-agent-manage); read_only: the
        database itself refuses every write of this handle (reader)."""
        self.owner, self.sealer = owner, sealer
        kwargs = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if read_only:
                path = make_url(url).database
                url = f"sqlite:///file:{path}?mode=ro&uri=true"
        else:
            if read_only and url.startswith("postgresql"):
                kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
            # a connection the server dropped (restart, failover) is found
            # and replaced when it is borrowed, not by the statement failing
            kwargs.update(pool or {}, pool_pre_ping=True)
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite") and not read_only:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_conf(cls, conf, owner=None, sealer=None):
        db = conf.database
        url = db.connection or f"sqlite:///{default_sqlite(conf)}"
        return cls(url, owner, pool={"pool_size": db.max_pool_size,
                                     "max_overflow": db.max_overflow,
                                     "pool_timeout": db.pool_timeout,
                                     "pool_recycle": db.connection_recycle_time},
                   sealer=sealer)

    @classmethod
    def reader(cls, conf):
        """The database as an operator's tool reads it (computectl): every
        write refused by the database itself (SQLite opened read-only, never
        created; PostgreSQL sessions read-only), no credential opened."""
        db = conf.database
        url = db.connection or f"sqlite:///{default_sqlite(conf)}"
        return cls(url, read_only=True)

    def _sealed(self, values):
        if self.sealer is None:
            return values
        self.sealer.refresh()
        return sealing.transform(values, self.sealer.seal)

    def _opened(self, *rows):
        if self.sealer is not None:
            self.sealer.refresh()
            for inst in rows:
                sealing.open_record(inst, self.sealer)
        return rows

    def reseal_own(self, rekey=False):
        """Every record of this host (deleted ones too) whose credentials
        are in the clear (written before sealing), and with rekey those
        sealed with a key no longer the sealing one (a rotation), sealed
        again; how many."""
        done = 0
        with self.session() as s:
            rows = list(s.scalars(self._mine(select(models.Instance), models.Instance)))
        self.sealer.refresh()
        for row in rows:
            raw = {c: getattr(row, c) for c in sealing.SECRET_COLUMNS}
            if sealing.all_sealed(raw, self.sealer if rekey else None):
                continue
            opened = sealing.transform(raw, self.sealer.open)
            with self.session() as s:
                s.execute(update(models.Instance).where(models.Instance.id == row.id)
                          .values(**sealing.transform(opened, self.sealer.seal)))
            done += 1
        return done

    def check_current(self):
        """Raise SchemaBehind unless the schema is at HEAD_REVISION."""
        found = self.revision()
        if found != HEAD_REVISION:
            raise exception.SchemaBehind(
                f"the database schema is at revision {found or 'none'}, this agent needs "
                f"{HEAD_REVISION}: run `compute-agent-manage db sync` (or set "
                f"[database] auto_migrate)")

    def _mine(self, q, model, owner=None):
        """q limited to owner's rows (this host's; every host's when the
        Database has no owner: a reader such as computectl)."""
        owner = owner or self.owner
        return q if owner is None else q.where(model.owner == owner)

    def revision(self):
        """The schema's Alembic revision, or None before the first sync."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):
            return None                 # no alembic_version table yet

    def sync(self):
        """Upgrade the schema to the newest Alembic revision."""
        if self.revision() == HEAD_REVISION:
            return
        import alembic.command  # only when there is something to upgrade
        import alembic.config
        cfg = alembic.config.Config()
        cfg.set_main_option("script_location", MIGRATIONS)
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            alembic.command.upgrade(cfg, "head")

    @contextlib.contextmanager
    def session(self):
        with self.Session.begin() as s:
            yield s

    # -- instances ----------------------------------------------------------

    def instance_create(self, fault=None, migration=None, **values):
        """Create the record; with ``fault``, the record and its fault in one
        transaction, so no reader sees an errored instance without its reason;
        with ``migration`` (its values), the record and that row in one."""
        values.setdefault("owner", self.owner or values.get("host"))
        values = self._sealed(values)
        with self.session() as s:
            if s.scalar(select(models.Instance.id).where(models.Instance.uuid == values["uuid"],
                                                         models.Instance.owner == values["owner"])):
                raise exception.InstanceExists(f"instance {values['uuid']} already exists")
            inst = models.Instance(**values)
            s.add(inst)
            if fault is not None:
                s.add(models.InstanceFault(instance_uuid=values["uuid"], message=fault[:1024],
                                           details="", code=500))
            if migration is not None:
                # the row of an evacuation was opened already (it is what
                # lets this host read the source's record): filled in here
                opened = update(models.Migration).where(
                    models.Migration.id == migration["id"],
                    models.Migration.owner == values["owner"]).values(
                        updated_at=models.utcnow(), **migration)
                if not s.execute(opened).rowcount:
                    s.add(models.Migration(owner=values["owner"], **migration))
        self._opened(inst)
        return inst

    def uuid_elsewhere(self, uuid):
        """Whether another host launched uuid, whether it holds it still or
        not (on a shared PostgreSQL database, through a function that says
        no more than that)."""
        with self.session() as s:
            if self.engine.dialect.name == "postgresql":
                return bool(s.scalar(text("SELECT ca_uuid_elsewhere(:u, :me)"),
                                     {"u": uuid, "me": self.owner or ""}))
            return s.scalar(select(models.Instance.id).where(
                models.Instance.uuid == uuid, models.Instance.owner != (self.owner or ""),
                models.Instance.launched_at.is_not(None)).limit(1)) is not None

    def instance_holders(self, uuid):
        """[(host, vm_state, power_state)] of the other hosts whose live
        record of uuid says they hold it (on PostgreSQL through a function
        that says no more than that)."""
        with self.session() as s:
            if self.engine.dialect.name == "postgresql":
                rows = s.execute(text("SELECT holder, vm_state, power_state FROM "
                                      "ca_uuid_holders(:u, :me)"),
                                 {"u": uuid, "me": self.owner or ""})
            else:
                i = models.Instance
                rows = s.execute(select(i.owner, i.vm_state, i.power_state).where(
                    i.uuid == uuid, i.owner != (self.owner or ""), i.host == i.owner,
                    i.deleted.is_(False)))
            return [tuple(r) for r in rows]

    def instance_get(self, uuid, include_deleted=False, owner=None):
        """This host's record of uuid (owner: another host's)."""
        with self.session() as s:
            q = self._mine(select(models.Instance).where(models.Instance.uuid == uuid),
                           models.Instance, owner)
            if not include_deleted:
                q = q.where(models.Instance.deleted.is_(False))
            inst = s.scalar(q)
        if inst is None:
            raise exception.InstanceNotFound(f"instance {uuid} not found")
        self._opened(inst)
        return inst

    def instance_list(self, host=None, include_deleted=False, every_owner=False):
        """This host's records (every host's with every_owner), of the
        instances on host when given."""
        with self.session() as s:
            q = select(models.Instance).order_by(models.Instance.id)
            if not every_owner:
                q = self._mine(q, models.Instance)
            if host is not None:
                q = q.where(models.Instance.host == host)
            if not include_deleted:
                q = q.where(models.Instance.deleted.is_(False))
            rows = list(s.scalars(q))
        self._opened(*rows)
        return rows

    def instance_update(self, uuid, expected_task_state=_ANY, expected_vm_state=_ANY,
                        **values):
        """Update an instance if its task_state (and vm_state) are as
        expected; expected_* may be a value or a tuple of values."""
        q = self._mine(update(models.Instance).where(models.Instance.uuid == uuid,
                                                     models.Instance.deleted.is_(False)),
                       models.Instance)
        for column, expected in ((models.Instance.task_state, expected_task_state),
                                 (models.Instance.vm_state, expected_vm_state)):
            if expected is _ANY:
                continue
            allowed = (tuple(expected) if isinstance(expected, (tuple, list, set, frozenset))
                       else (expected,))
            conds = [column.is_(None)] if None in allowed else []
            values_ = [v for v in allowed if v is not None]
            if values_:
                conds.append(column.in_(values_))
            q = q.where(conds[0] if len(conds) == 1 else (conds[0] | conds[1]))
        values = self._sealed(values)
        values["updated_at"] = models.utcnow()
        with self.session() as s:
            if s.execute(q.values(**values)).rowcount == 1:
                return
        current = self.instance_get(uuid)
        raise exception.UnexpectedTaskState(
            f"instance {uuid} is vm_state={current.vm_state} task_state={current.task_state}; "
            f"expected task_state in {expected_task_state!r}"
            + ("" if expected_vm_state is _ANY else f", vm_state in {expected_vm_state!r}"))

    def instance_purge(self, uuid, only_deleted=False):
        """Remove an instance's row (a migration that did not happen, or an
        old row of an instance that is coming back)."""
        with self.session() as s:
            q = self._mine(delete(models.Instance).where(models.Instance.uuid == uuid),
                           models.Instance)
            if only_deleted:
                q = q.where(models.Instance.deleted.is_(True))
            s.execute(q)

    def fault_create(self, uuid, message, details="", code=500):
        with self.session() as s:
            s.add(models.InstanceFault(instance_uuid=uuid, message=message[:1024],
                                       details=details, code=code))

    def fault_latest(self, uuid):
        with self.session() as s:
            return s.scalar(select(models.InstanceFault)
                            .where(models.InstanceFault.instance_uuid == uuid)
                            .order_by(models.InstanceFault.id.desc()).limit(1))

    # -- actions ------------------------------------------------------------

    def action_start(self, uuid, action, request_id=None):
        with self.session() as s:
            a = models.InstanceAction(instance_uuid=uuid, action=action, request_id=request_id)
            s.add(a)
        return a.id

    def action_finish(self, action_id, message=None):
        with self.session() as s:
            s.execute(update(models.InstanceAction).where(models.InstanceAction.id == action_id)
                      .values(finish_time=models.utcnow(), message=message))

    def event_start(self, action_id, name):
        with self.session() as s:
            e = models.InstanceActionEvent(action_id=action_id, event=name)
            s.add(e)
        return e.id

    def event_finish(self, event_id, result, details=None):
        with self.session() as s:
            s.execute(update(models.InstanceActionEvent)
                      .where(models.InstanceActionEvent.id == event_id)
                      .values(finish_time=models.utcnow(), result=result, details=details))

    def actions_for(self, uuid):
        with self.session() as s:
            actions = list(s.scalars(select(models.InstanceAction)
                                     .where(models.InstanceAction.instance_uuid == uuid)
                                     .order_by(models.InstanceAction.id)))
            events = list(s.scalars(select(models.InstanceActionEvent)
                                    .where(models.InstanceActionEvent.action_id
                                           .in_([a.id for a in actions]))
                                    .order_by(models.InstanceActionEvent.id)))
        return actions, events

    # -- image cache ----------------------------------------------------------

    def cached_image_used(self, host, image_id, filename, size_bytes, hit):
        """Count a use of a cached base (hit) or its download (miss).
        Concurrent first uses race on the insert: the loser updates."""
        counter = models.CachedImage.hits if hit else models.CachedImage.misses
        where = (models.CachedImage.host == host, models.CachedImage.image_id == image_id)
        values = {"filename": filename, "size_bytes": size_bytes,
                  "last_used": models.utcnow(), counter.key: counter + 1}
        self._upsert(update(models.CachedImage).where(*where).values(**values),
                     lambda: models.CachedImage(host=host, image_id=image_id, filename=filename,
                                                size_bytes=size_bytes, hits=int(hit),
                                                misses=int(not hit)))

    def cached_images(self, host):
        with self.session() as s:
            return list(s.scalars(select(models.CachedImage)
                                  .where(models.CachedImage.host == host)
                                  .order_by(models.CachedImage.image_id)))

    def cached_image_forget(self, host, filenames):
        with self.session() as s:
            s.execute(delete(models.CachedImage).where(
                models.CachedImage.host == host, models.CachedImage.filename.in_(filenames)))

    # -- networking -----------------------------------------------------------

    def security_group_put(self, body):
        """Insert or replace this host's copy of a group (its validated
        payload dict)."""
        with self.session() as s:
            row = s.get(models.SecurityGroup, (body["id"], self.owner))
            if row is None:
                s.add(models.SecurityGroup(id=body["id"], host=self.owner, body=body))
            else:
                row.body, row.updated_at = body, models.utcnow()

    def security_groups(self, ids=None, host=None):
        """This host's groups (host: another host's, an evacuated
        instance's), {id: body}."""
        with self.session() as s:
            q = select(models.SecurityGroup).where(
                models.SecurityGroup.host == (host or self.owner))
            if ids is not None:
                q = q.where(models.SecurityGroup.id.in_(list(ids)))
            return {g.id: g.body for g in s.scalars(q)}

    def floating_ip_add(self, **values):
        with self.session() as s:
            if s.get(models.FloatingIP, values["address"]) is not None:
                raise exception.InvalidRequest(
                    f"floating IP {values['address']} is already associated")
            s.add(models.FloatingIP(**values))

    def floating_ip_remove(self, address=None, instance_uuid=None):
        """Forget the given address, or every address of an instance; the
        removed rows."""
        with self.session() as s:
            q = select(models.FloatingIP)
            q = q.where(models.FloatingIP.address == address) if address else \
                q.where(models.FloatingIP.instance_uuid == instance_uuid)
            rows = list(s.scalars(q))
            for r in rows:
                s.delete(r)
            return rows

    def floating_ips(self, host):
        with self.session() as s:
            return list(s.scalars(select(models.FloatingIP)
                                  .where(models.FloatingIP.host == host)
                                  .order_by(models.FloatingIP.address)))

    # -- migrations -------------------------------------------------------------

    def migration_create(self, **values):
        """A new row, or the existing one of that id (a resize on one host
        is both source and destination)."""
        values.setdefault("owner", self.owner or values["source_host"])
        with self.session() as s:
            row = s.get(models.Migration, (values["id"], values["owner"]))
            if row is None:
                row = models.Migration(**values)
                s.add(row)
        return row

    def migration_get(self, migration_id):
        with self.session() as s:
            row = s.scalar(self._mine(select(models.Migration).where(
                models.Migration.id == migration_id), models.Migration))
        if row is None:
            raise exception.MigrationNotFound(f"migration {migration_id} not found")
        return row

    def migration_update(self, migration_id, owner=None, **values):
        """Update this host's row of the migration (owner: another host's,
        an evacuation its source completes)."""
        with self.session() as s:
            s.execute(self._mine(update(models.Migration).where(
                models.Migration.id == migration_id), models.Migration, owner)
                .values(updated_at=models.utcnow(), **values))

    def migrations(self, instance_uuid=None, status=None):
        """This host's rows, newest first."""
        with self.session() as s:
            q = self._mine(select(models.Migration), models.Migration)
            if instance_uuid:
                q = q.where(models.Migration.instance_uuid == instance_uuid)
            if status:
                q = q.where(models.Migration.status.in_(list(status)))
            return list(s.scalars(q.order_by(models.Migration.created_at.desc())))

    def migration_delete(self, migration_id):
        """This host's row of the migration, gone (an evacuation it opened
        and then refused)."""
        with self.session() as s:
            s.execute(self._mine(delete(models.Migration).where(
                models.Migration.id == migration_id), models.Migration))

    def migrations_of(self, instance_uuid):
        """Every row of the instance's migrations this host may read, of
        any owner, newest first."""
        with self.session() as s:
            return list(s.scalars(select(models.Migration).where(
                models.Migration.instance_uuid == instance_uuid)
                .order_by(models.Migration.created_at.desc())))

    def images_in_use(self):
        """(image_ref, image_meta) of every live instance of every host
        (a view the hosts may read: a _base shared between them)."""
        with self.session() as s:
            return [tuple(r) for r in s.execute(select(IMAGES_IN_USE))]

    def cloud_setting_put(self, name, value):
        """A setting the database itself applies (cloud_settings), as the
        owning role sets it at `db sync`."""
        with self.session() as s:
            s.merge(models.CloudSetting(name=name, value=str(value)))

    def evacuations_from(self, host):
        """Every host's rows of evacuations away from host not yet
        completed by it (its instances rebuilt elsewhere while it was
        down)."""
        with self.session() as s:
            return list(s.scalars(select(models.Migration).where(
                models.Migration.migration_type == "evacuation",
                models.Migration.source_host == host,
                models.Migration.status.in_([MS.ACCEPTED, MS.DONE]))
                .order_by(models.Migration.created_at)))

    # -- services and nodes ---------------------------------------------------

    def service_heartbeat(self, host, binary, topic):
        """One UPDATE of the host's own row (its first beat inserts it):
        no read-modify-write, nothing another host's beat waits on."""
        now = models.utcnow()
        where = (models.Service.host == host, models.Service.binary == binary)
        beat = update(models.Service).where(*where).values(
            report_count=models.Service.report_count + 1, updated_at=now)
        self._upsert(beat, lambda: models.Service(host=host, binary=binary, topic=topic,
                                                  report_count=1, updated_at=now))

    def _upsert(self, stmt, make_row):
        """Run the UPDATE stmt; when it matched no row, insert make_row();
        when a racing insert won, update again."""
        for _ in range(2):
            with self.session() as s:
                if s.execute(stmt).rowcount:
                    return
            try:
                with self.session() as s:
                    s.add(make_row())
                return
            except IntegrityError:
                continue

    def service_get(self, host, binary):
        with self.session() as s:
            return s.scalar(select(models.Service).where(models.Service.host == host,
                                                         models.Service.binary == binary))

    def service_list(self):
        with self.session() as s:
            return list(s.scalars(select(models.Service).order_by(models.Service.host)))

    def compute_node_get(self, host):
        with self.session() as s:
            return s.scalar(select(models.ComputeNode).where(models.ComputeNode.host == host))

    def compute_node_list(self):
        with self.session() as s:
            return list(s.scalars(select(models.ComputeNode).order_by(models.ComputeNode.host)))

    def compute_node_update(self, host, **values):
        values["updated_at"] = models.utcnow()
        self._upsert(update(models.ComputeNode).where(models.ComputeNode.host == host)
                     .values(**values), lambda: models.ComputeNode(host=host, **values))


def service_is_up(service, down_time, now=None):
    now = now or models.utcnow()
    last = service.updated_at or service.created_at
    return (now - last) <= datetime.timedelta(seconds=down_time)


def unreachable(error):
    """Whether error means the database cannot be reached (down, restarting,
    network, credentials), as opposed to a statement the database refused."""
    return isinstance(error, (OperationalError, InterfaceError)) or (
        isinstance(error, DBAPIError) and error.connection_invalidated)


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
