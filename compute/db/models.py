"""SQLAlchemy models of the agent's state.  The schema itself is owned by
the Alembic migrations in compute/db/migrations; these classes must match."""
import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Instance(Base):
    """One host's record of an instance.  In a database many hosts share,
    each host keeps its own row of an instance it holds or held (owner);
    host is where the instance is, as that host last knew it."""

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("uuid", "owner", name="uq_instances_uuid_owner"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), index=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    display_name: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255), index=True)
    vm_state: Mapped[str] = mapped_column(String(32))
    task_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    flavor: Mapped[dict] = mapped_column(JSON)
    image_ref: Mapped[str] = mapped_column(String(255))
    # The image's metadata as at spawn (disk_format, properties): the XML is
    # regenerated from it, so a hard reboot needs no image service.
    image_meta: Mapped[dict] = mapped_column(JSON, default=dict)
    # Format of each disk file as created (never re-detected from the file,
    # which the guest controls): {"disk": "qcow2", "disk.local": "qcow2"}.
    disk_formats: Mapped[dict] = mapped_column(JSON, default=dict)
    networks: Mapped[list] = mapped_column(JSON, default=list)
    # What the guest is told about itself (compute.core.instance_data): config
    # drive wanted, host name, user data (base64), key pairs.  No password.
    guest_data: Mapped[dict | None] = mapped_column(JSON, nullable=True, default=dict)
    progress: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The arguments of the operation in progress that a restart needs to
    # issue it again (a rescue's image, a rebuild's choices); set on accept.
    task_args: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Attached volumes, in attach order: [{volume_id, device, connection_info}]
    volumes: Mapped[list | None] = mapped_column(JSON, nullable=True, default=list)
    # The image a shelve uploaded the root disk to, until an unshelve
    # boots from it and deletes it.
    shelved_image_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True,
                                                                 onupdate=utcnow)
    launched_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    terminated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class InstanceFault(Base):
    __tablename__ = "instance_faults"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    code: Mapped[int] = mapped_column(Integer, default=500)
    message: Mapped[str] = mapped_column(String(1024))
    details: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class InstanceAction(Base):
    __tablename__ = "instance_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    start_time: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    message: Mapped[str | None] = mapped_column(String(255), nullable=True)


class InstanceActionEvent(Base):
    __tablename__ = "instance_action_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("instance_actions.id"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    start_time: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    result: Mapped[str | None] = mapped_column(String(32), nullable=True)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("host", "binary", name="uq_services_host_binary"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(64))
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class ComputeNode(Base):
    __tablename__ = "compute_nodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    hypervisor_type: Mapped[str] = mapped_column(String(64))
    hypervisor_version: Mapped[int] = mapped_column(Integer)
    hypervisor_hostname: Mapped[str] = mapped_column(String(255))
    vcpus: Mapped[int] = mapped_column(Integer)
    vcpus_used: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer)
    memory_mb_used: Mapped[int] = mapped_column(Integer, default=0)
    free_ram_mb: Mapped[int] = mapped_column(Integer, default=0)
    local_gb: Mapped[int] = mapped_column(Integer)
    local_gb_used: Mapped[int] = mapped_column(Integer, default=0)
    free_disk_gb: Mapped[int] = mapped_column(Integer, default=0)
    running_vms: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class CachedImage(Base):
    """A base in this host's _base cache, with its use counts."""

    __tablename__ = "cached_images"
    __table_args__ = (UniqueConstraint("host", "image_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    image_id: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    misses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    last_used: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class SecurityGroup(Base):
    """A security group as a host last received it over RPC (its payload
    dict)."""

    __tablename__ = "security_groups"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # the host that was sent it (and applies it)
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    body: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class FloatingIP(Base):
    """A floating address NATed on this host to an instance's fixed IP."""

    __tablename__ = "floating_ips"
    address: Mapped[str] = mapped_column(String(45), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    port_id: Mapped[str] = mapped_column(String(36))
    fixed_ip: Mapped[str] = mapped_column(String(45))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)


class Migration(Base):
    """A move of an instance between hosts, as one host (owner) saw it.  The
    id is chosen by the source, so both hosts' rows carry the same id."""

    __tablename__ = "migrations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    # "migration" (cold, same flavor), "resize", "live-migration", "evacuation"
    migration_type: Mapped[str] = mapped_column(String(32))
    source_host: Mapped[str] = mapped_column(String(255))
    dest_host: Mapped[str] = mapped_column(String(255))
    # pre-migrating, migrating, post-migrating, finished, confirmed,
    # reverted, completed, error; an evacuation: accepted, done (the
    # destination), completed (the source cleaned up when it came back)
    status: Mapped[str] = mapped_column(String(32))
    old_flavor: Mapped[dict] = mapped_column(JSON)
    new_flavor: Mapped[dict] = mapped_column(JSON)
    old_vm_state: Mapped[str] = mapped_column(String(32))
    old_disk_formats: Mapped[dict] = mapped_column(JSON, default=dict)
    shared_storage: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    message: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True,
                                                                 onupdate=utcnow)


class CloudSetting(Base):
    """A setting the database itself applies to every host (the row-level
    security of 0014 reads service_down_time); written by the owning role
    at `compute-agent-manage db sync`, read by no host."""

    __tablename__ = "cloud_settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class HostFloatingRange(Base):
    """A floating range the operator gave a host: on PostgreSQL its role
    may write floating IP rows of these ranges only (0014); written by the
    owning role (`compute-agent-manage db create-host-role --floating-range`)."""

    __tablename__ = "host_floating_ranges"
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    cidr: Mapped[str] = mapped_column(String(64), primary_key=True)
