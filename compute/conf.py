"""All configuration options of the agent, declared with oslo.config.

compute/ owns [DEFAULT] and [database]; imagecache/, virt/ and network/
declare their own groups (they may not import compute), and this module
registers them all on one ConfigOpts and lists them for
oslo-config-generator (entry point ``oslo.config.opts: compute``).
"""
import socket

from oslo_config import cfg

from compute import rpc
from imagecache import conf as image_conf
from network import conf as network_conf
from virt.libvirt import conf as libvirt_conf

default_opts = [
    cfg.StrOpt("host", default=socket.gethostname(), sample_default="<hostname>",
               help="Name of this compute host: the RPC server name on topic "
                    "'compute' and the host recorded on its instances."),
    cfg.StrOpt("state_path", default="/var/lib/compute-agent",
               help="Directory for the agent's own state (SQLite database, "
                    "lock files)."),
    cfg.StrOpt("instances_path", default="$state_path/instances",
               help="Directory holding one directory per instance and the "
                    "image cache."),
    cfg.IntOpt("max_concurrent_builds", default=10, min=1,
               help="Builds run at once; further builds wait their turn."),
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
                     "revision when the agent starts."),
]


def register_opts(conf):
    conf.register_opts(default_opts)
    conf.register_group(database_group)
    conf.register_opts(database_opts, group=database_group)
    image_conf.register_opts(conf)
    libvirt_conf.register_opts(conf)
    network_conf.register_opts(conf)
    rpc.register_opts(conf)


def list_opts():
    return ([(None, default_opts), (database_group, database_opts)]
            + image_conf.list_opts() + libvirt_conf.list_opts() + network_conf.list_opts())


CONF = cfg.CONF
register_opts(CONF)
