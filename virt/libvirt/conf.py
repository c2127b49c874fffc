"""Options of the libvirt driver ([libvirt])."""
from oslo_config import cfg

libvirt_group = cfg.OptGroup("libvirt", title="Libvirt driver")

libvirt_opts = [
    cfg.StrOpt("connection_uri", default="",
               help="Libvirt connection URI. Empty means the default for "
                    "virt_type (qemu:///system)."),
    cfg.StrOpt("virt_type", default="kvm", choices=["kvm", "qemu"],
               help="Domain type: kvm (hardware acceleration) or qemu (TCG "
                    "emulation, for hosts where /dev/kvm is unusable)."),
    cfg.StrOpt("cpu_mode", choices=["none", "host-model", "host-passthrough", "custom"],
               help="Guest CPU mode. Unset means host-model for kvm and none "
                    "for qemu."),
    cfg.ListOpt("cpu_models", default=[],
                help="CPU models for cpu_mode=custom, best first; the first "
                     "is used."),
    cfg.ListOpt("disk_cachemodes", default=[],
                help="Cache modes per disk source type, as 'file=none', "
                     "'file=writethrough'. Default: none for file disks where "
                     "O_DIRECT works, writethrough otherwise."),
    cfg.StrOpt("hw_machine_type", default="pc",
               help="QEMU machine type for x86_64 guests (pc, q35, or a "
                    "versioned name); the image property hw_machine_type "
                    "wins when set."),
    cfg.StrOpt("default_kernel_cmdline", default="root=/dev/vda console=tty0 console=ttyS0",
               help="Kernel command line for direct kernel boot when the "
                    "image has no os_command_line property."),
    cfg.FloatOpt("lifecycle_event_delay", default=15.0, min=0,
                 help="Seconds a guest's STOPPED event is held back before it "
                      "is reported, so a STOPPED quickly followed by STARTED "
                      "(a reboot) does not mark the instance stopped."),
    cfg.StrOpt("save_image_dir", default="/var/lib/libvirt/qemu/save",
               help="Where libvirt keeps managed-save images; their sizes "
                    "count in the host's disk usage report."),
    cfg.StrOpt("vnc_listen", default="127.0.0.1",
               help="Address the guests' VNC servers listen on."),
    cfg.FloatOpt("device_detach_timeout", default=20.0, min=0,
                 help="Seconds to wait for a running guest to release a "
                      "hot-unplugged device (NIC) before the detach fails."),
]


def list_opts():
    return [(libvirt_group, libvirt_opts)]
