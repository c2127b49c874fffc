"""Options of VIF plugging ([network])."""
from oslo_config import cfg

network_group = cfg.OptGroup("network", title="Guest networking")

network_opts = [
    cfg.StrOpt("vif_plugin", default="noop",
               help="Name of the VIF plugin (entry point in "
                    "compute.vif_plugins) that plugs guest ports."),
]


def list_opts():
    return [(network_group, network_opts)]
