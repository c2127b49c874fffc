"""All configuration options of the agent, declared with oslo.config.

compute/ owns [DEFAULT] and [database]; imagecache/, virt/ and network/
declare their own groups (they may not import compute), and this module
registers them all on one ConfigOpts and lists them for
oslo-config-generator (entry point ``oslo.config.opts: compute``).
"""
import ipaddress
import socket

from oslo_config import cfg

from compute.rpc import transport
from imagecache import conf as image_conf
from network import conf as network_conf
from virt.libvirt import conf as libvirt_conf


def _network(text):
    """A CIDR, as an ipaddress network (host bits allowed)."""
    return ipaddress.ip_network(text, strict=False)


default_opts = [
    cfg.StrOpt("host", default=socket.gethostname(), sample_default="<hostname>",
               help="Name of this compute host: the RPC server name on topic "
                    "'compute' and the host recorded on its instances."),
    cfg.StrOpt("agent_user", default="compute-agent",
               help="The system user the agent becomes once it has started its "
                    "privileged helpers (when started as root). It must be in the "
                    "group that may use libvirt's read-write socket, and own "
                    "state_path and instances_path. Empty: stay root (not for "
                    "production)."),
    cfg.StrOpt("state_path", default="/var/lib/compute-agent",
               help="Directory for the agent's own state (SQLite database, "
                    "lock files)."),
    cfg.StrOpt("instances_path", default="$state_path/instances",
               help="Directory holding one directory per instance and the "
                    "image cache."),
    cfg.StrOpt("snapshots_directory", default="$instances_path/snapshots",
               help="Where snapshots are flattened (one image per snapshot) before "
                    "upload; needs room for the flattened image."),
    cfg.StrOpt("snapshot_image_format", choices=["qcow2", "raw"],
               help="Disk format of uploaded snapshots; default: the source "
                    "image's format."),
    cfg.BoolOpt("disable_live_snapshot", default=False,
                help="Always snapshot cold: a running guest is managed-saved "
                     "for the copy and restored afterwards."),
    cfg.IntOpt("max_concurrent_snapshots", default=5, min=1,
               help="Snapshots made at once; further ones wait their turn."),
    cfg.StrOpt("seal_key_file", default="$state_path/seal.key",
               help="The host's keys that seal the credentials its instance "
                    "records hold in the database (volume connection info, "
                    "user data): one Fernet key per line, the first seals, "
                    "all open.  Made at the first start, readable by the "
                    "agent alone; `compute-agent-manage seal-key rotate` "
                    "puts a new key first and seals the host's rows again."),
    cfg.IntOpt("cast_deadline", default=600, min=0,
               help="Seconds after its sending (the client's clock) past which "
                    "a build or pre-cache cast is dropped unrun, with a logged "
                    "reason: one queued while this agent was down that nobody "
                    "may want any more.  Deletes are never dropped.  0 runs "
                    "every cast whenever it arrives."),
    cfg.IntOpt("rpc_peer_timeout", default=300, min=1,
               help="Seconds this agent waits for another agent's answer during a "
                    "migration (the destination may fetch images first)."),
    cfg.BoolOpt("allow_resize_same_host", default=False,
                help="Allow a resize or cold migration whose destination is the "
                     "host the instance is on."),
    cfg.StrOpt("migration_transfer_address",
               help="Address this host listens on, and other agents connect to, "
                    "for the disks of an incoming cold migration or resize "
                    "(default: [libvirt] live_migration_inbound_addr, else the "
                    "host name).  A random port is opened per migration and "
                    "closed after its one transfer."),
    cfg.IntOpt("migration_transfer_timeout", default=600, min=1,
               help="Seconds an incoming disk transfer may take, from the "
                    "destination's preparation to the last byte."),
    cfg.FloatOpt("cpu_allocation_ratio", default=16.0, min=0.0,
                 help="Virtual CPUs handed out per physical CPU: a build, resize or "
                      "incoming migration that would pass vcpus x this is refused."),
    cfg.FloatOpt("ram_allocation_ratio", default=1.0, min=0.0,
                 help="Guest memory handed out per MiB of the host's memory, before "
                      "reserved_host_memory_mb is taken off."),
    cfg.FloatOpt("disk_allocation_ratio", default=1.0, min=0.0,
                 help="Flavor disk (root + ephemeral) handed out per GiB of the "
                      "filesystem of instances_path."),
    cfg.IntOpt("reserved_host_memory_mb", default=512, min=0,
               help="Memory (MiB) kept for the host itself: never claimed by guests."),
    cfg.IntOpt("reserved_host_disk_mb", default=0, min=0,
               help="Disk (MiB) of the instances filesystem kept for the host."),
    cfg.BoolOpt("force_config_drive", default=False,
                help="Give every instance built here a config drive, whether or "
                     "not its build request asks for one."),
    cfg.PortOpt("metadata_port", default=8775,
                help="TCP port of the metadata service on this host.  It listens "
                     "only once a network with `metadata` on has a port here; guests "
                     "reach it as 169.254.169.254:80 by a DNAT, and nothing else may."),
    cfg.StrOpt("default_availability_zone", default="nova",
               help="Availability zone a guest is told it is in (meta_data.json)."),
    cfg.IntOpt("max_concurrent_builds", default=10, min=1,
               help="Builds run at once; further builds wait their turn."),
    cfg.IntOpt("max_concurrent_operations", default=32, min=1,
               help="Lifecycle operations (reboot, suspend, stop, ...) run at "
                    "once across all instances; each instance runs one at a "
                    "time regardless."),
    cfg.IntOpt("wait_soft_reboot_seconds", default=120, min=1,
               help="Seconds a soft reboot waits for the guest to shut down "
                    "after the ACPI request before it falls back to a hard "
                    "reboot."),
    cfg.IntOpt("shutdown_timeout", default=60, min=0,
               help="Seconds a stop waits for the guest to shut down "
                    "gracefully before powering it off; 0 powers off at once."),
    cfg.IntOpt("shutdown_retry_interval", default=10, min=1,
               help="Seconds between repeated ACPI shutdown requests while a "
                    "stop waits for the guest."),
    cfg.StrOpt("running_deleted_instance_action", default="log",
               choices=["noop", "log", "shutdown", "reap"],
               help="What to do with a guest whose instance this host's "
                    "record says was deleted here: noop, log it, shut it "
                    "down (kept defined), or reap it (destroy, undefine, "
                    "remove its directory).  A guest no record of this host "
                    "names is never touched whatever this says: it is "
                    "logged (unless noop), counted in the metrics and "
                    "listed by `computectl host-status`."),
    cfg.BoolOpt("resume_guests_state_on_host_boot", default=False,
                help="When the agent starts, start the guests of instances "
                     "that were running but whose guest is not (the host "
                     "rebooted)."),
    cfg.IntOpt("sync_power_state_interval", default=600, min=0,
               help="Seconds between runs of the power-state sync that "
                    "catches what lifecycle events missed; 0 disables it. It "
                    "never starts a guest."),
    cfg.ListOpt("volume_allowed_networks", default=[], item_type=_network,
                help="The networks (CIDRs) a volume's storage servers (iSCSI "
                     "portals, Ceph monitors) may be on; a volume naming a "
                     "server elsewhere is refused before QEMU connects to it "
                     "(the connection info comes from the caller, and QEMU "
                     "connects from this host). Empty: every volume is refused."),
    cfg.IntOpt("volume_detach_timeout", default=30, min=1,
               help="Seconds a running guest is given to release a volume "
                    "being detached (hot-unplug needs its cooperation)."),
    cfg.IntOpt("shelved_offload_time", default=0, min=-1,
               help="Seconds a shelved instance keeps its guest and disks on "
                    "the host before it is offloaded: 0 offloads at once "
                    "after the shelve, -1 never (only shelve-offload does)."),
    cfg.IntOpt("report_interval", default=10, min=1,
               help="Seconds between heartbeats of the service into the "
                    "services table."),
    cfg.IntOpt("service_down_time", default=60, min=1,
               help="A service whose last heartbeat is older than this many "
                    "seconds is reported down."),
]

database_group = cfg.OptGroup("database", title="State database")
database_opts = [
    cfg.StrOpt("connection", secret=True,
               sample_default="sqlite:///$state_path/compute.sqlite",
               help="SQLAlchemy URL of the state database. Unset means a "
                    "SQLite file under state_path."),
    cfg.BoolOpt("auto_migrate", default=True,
                help="Upgrade the database schema to the newest Alembic "
                     "revision when the agent starts. Set it false where "
                     "hosts share a server database: `compute-agent-manage "
                     "db sync` migrates it once, and an agent whose schema "
                     "is behind refuses to start."),
    cfg.IntOpt("max_pool_size", default=4, min=1,
               help="Connections a server database pool keeps open (SQLite: "
                    "unused). The agent's RPC and worker threads borrow one "
                    "for each statement or transaction, never across a "
                    "libvirt call, so a few serve them all."),
    cfg.IntOpt("max_overflow", default=8, min=0,
               help="Connections opened beyond max_pool_size under a burst "
                    "and closed after it. A server must allow hosts x "
                    "(max_pool_size + max_overflow) connections."),
    cfg.IntOpt("pool_timeout", default=10, min=1,
               help="Seconds a thread waits for a pooled connection before "
                    "the operation fails."),
    cfg.IntOpt("connection_recycle_time", default=3600, min=1,
               help="Seconds after which a pooled connection is replaced "
                    "(before a server or proxy closes it as idle)."),
]


console_group = cfg.OptGroup("console", title="Console access through the proxy")
console_opts = [
    cfg.StrOpt("token_key", secret=True,
               help="This host's own Fernet key for console tokens (urlsafe base64 "
                    "of 32 bytes), never another host's: the console proxy's "
                    "hosts_file lists it under this host's name with the host's "
                    "console addresses and port ranges, so a token this host signs "
                    "opens only this host's consoles. Unset: no console access "
                    "(get_serial_console and get_vnc_console are refused)."),
    cfg.IntOpt("token_ttl", default=600, min=1,
               help="Seconds a console URL stays usable; it is usable once."),
    cfg.ListOpt("proxy_addresses", default=[], item_type=cfg.types.IPAddress(),
                help="The console proxies' addresses. When the consoles listen on an "
                     "address other than loopback ([libvirt] serial_listen, "
                     "vnc_listen), the host's firewall lets only these reach the "
                     "serial and VNC port ranges there: the proxy is the only way in. "
                     "Empty: anyone who reaches that address reaches the ports (the "
                     "VNC servers still want their passwords; serial ports want "
                     "nothing)."),
    cfg.StrOpt("serial_proxy_url", default="ws://127.0.0.1:6083/serial",
               help="Base of the serial console URLs handed out; the instance "
                    "uuid and the token are appended."),
    cfg.StrOpt("vnc_proxy_url", default="ws://127.0.0.1:6083/vnc",
               help="Base of the VNC websocket URLs handed out; the instance uuid "
                    "and the token are appended."),
    cfg.StrOpt("novnc_url", default="http://127.0.0.1:6083/novnc/vnc_lite.html",
               help="The noVNC page a VNC console's browser URL opens, served by "
                    "the proxy; empty: answer the websocket URL only."),
]


metrics_group = cfg.OptGroup("metrics", title="Prometheus metrics")
metrics_opts = [
    cfg.BoolOpt("enabled", default=False,
                help="Serve Prometheus metrics (operations, RPC handling time, "
                     "instances by state, claims, image cache, broker reconnects) "
                     "on listen_address:port, path /metrics."),
    cfg.HostAddressOpt("listen_address", default="127.0.0.1",
                       help="Where the metrics endpoint listens: an address only the "
                            "monitoring system reaches (the metrics carry no secret, "
                            "but name the host's instances' states and its load)."),
    cfg.PortOpt("port", default=9178, help="The metrics endpoint's port."),
]


def register_opts(conf):
    """Register every option of the agent on conf.  Each ConfigOpts gets
    fresh OptGroup objects: oslo.config keeps a group's options (and their
    overrides) in the OptGroup, so sharing the module-level groups between
    two ConfigOpts (tests make many) would share their overrides."""
    for group, opts in list_opts():
        if group is None:
            conf.register_opts(opts)
        else:
            conf.register_group(cfg.OptGroup(group.name, title=group.title))
            conf.register_opts(opts, group=group.name)
    transport.register_opts(conf)


def list_opts():
    return ([(None, default_opts), (database_group, database_opts),
             (console_group, console_opts), (metrics_group, metrics_opts)]
            + image_conf.list_opts() + libvirt_conf.list_opts() + network_conf.list_opts())


CONF = cfg.CONF
register_opts(CONF)
