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
    cfg.IntOpt("guest_agent_timeout", default=10, min=1,
               help="Seconds libvirt waits for the QEMU guest agent's answer (the "
                    "filesystem freeze of a live snapshot, a password change); a "
                    "snapshot then goes on without the freeze."),
    cfg.StrOpt("save_image_dir", default="/var/lib/libvirt/qemu/save",
               help="Where libvirt keeps managed-save images; their sizes "
                    "count in the host's disk usage report."),
    cfg.StrOpt("vnc_listen", default="127.0.0.1",
               help="Address the guests' VNC servers listen on: one only the "
                    "console proxy can reach (never a guest or public network)."),
    cfg.StrOpt("vnc_port_range", default="5900:6099", regex=r"^[0-9]{1,5}:[0-9]{1,5}$",
               help="LOW:HIGH, the TCP ports guests' VNC servers take on this host: "
                    "qemu.conf's remote_display_port_min:remote_display_port_max must "
                    "say the same (libvirt's own default reaches 65535). Only the "
                    "console proxies reach them ([console] proxy_addresses)."),
    cfg.BoolOpt("vnc_password", default=True,
                help="Give each guest's VNC server a random password of its own, "
                     "set again at each definition, which only console tokens carry "
                     "(the proxy logs in with it): whoever reaches vnc_listen without "
                     "a token sees no screen. Off: VNC servers ask for nothing, and "
                     "vnc_listen alone keeps others out."),
    cfg.StrOpt("uefi_loader", default="/usr/share/OVMF/OVMF_CODE_4M.fd",
               help="UEFI firmware code for images with hw_firmware_type=uefi "
                    "(Debian's ovmf package)."),
    cfg.StrOpt("uefi_nvram_template", default="/usr/share/OVMF/OVMF_VARS_4M.fd",
               help="Empty UEFI variable store each UEFI guest's own NVRAM starts from."),
    cfg.StrOpt("uefi_secure_loader", default="/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
               help="UEFI firmware code with Secure Boot, for os_secure_boot=required."),
    cfg.StrOpt("uefi_secure_nvram_template", default="/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
               help="UEFI variable store with Microsoft's keys enrolled, for "
                    "os_secure_boot=required."),
    cfg.BoolOpt("serial_console", default=False,
                help="Give each guest's first serial port (its console) a TCP "
                     "server on serial_listen, for interactive access through the "
                     "console proxy; the console log is still written. Off: the "
                     "console goes to the log file only."),
    cfg.IPOpt("serial_listen", default="127.0.0.1",
               help="Address the guests' serial console servers listen on: one "
                    "only the console proxy can reach."),
    cfg.StrOpt("serial_port_range", default="10000:10999",
               regex=r"^[0-9]{1,5}:[0-9]{1,5}$",
               help="LOW:HIGH, the TCP ports serial consoles may take on this host "
                    "(clear of libvirtd's 16509 and 16514 and QEMU's migration ports "
                    "49152-49215: with [console] proxy_addresses only the proxies "
                    "reach this range)."),
    cfg.StrOpt("live_migration_inbound_addr",
               help="Address other hosts use to reach this host's libvirtd and "
                    "QEMU for incoming live migrations (default: the host name)."),
    cfg.StrOpt("live_migration_scheme", default="tcp",
               help="libvirt transport of the migration control connection "
                    "(qemu+SCHEME://ADDR/system): tcp, tls or ssh."),
    cfg.BoolOpt("live_migration_with_native_tls", default=True,
                help="Encrypt live migrations (the memory stream and the NBD copy "
                     "of a block migration) with libvirt's native TLS "
                     "(VIR_MIGRATE_TLS): QEMU to QEMU, certificates from "
                     "live_migration_tls_cert_dir, which must be the directory "
                     "qemu.conf's migrate_tls_x509_cert_dir names (with "
                     "migrate_tls_x509_verify = 1). On (the default), a migration is "
                     "refused before anything moves when this host's certificates "
                     "are missing or unreadable, or the destination has none: it "
                     "never falls back to plain TCP. Off: migrations go in the clear "
                     "(only on a network no one else reaches)."),
    cfg.StrOpt("live_migration_tls_cert_dir", default="/etc/pki/qemu",
               help="Where this host's migration TLS files are: ca-cert.pem, "
                    "server-cert.pem, server-key.pem, client-cert.pem, "
                    "client-key.pem (qemu.conf migrate_tls_x509_cert_dir)."),
    cfg.IntOpt("live_migration_bandwidth", default=0, min=0,
               help="Migration bandwidth limit in MiB/s (0: no limit)."),
    cfg.IntOpt("live_migration_downtime", default=500, min=100,
               help="Largest pause of the guest (ms) the migration may end with; "
                    "reached in live_migration_downtime_steps steps."),
    cfg.IntOpt("live_migration_downtime_steps", default=10, min=3,
               help="Steps from live_migration_downtime/steps up to "
                    "live_migration_downtime."),
    cfg.FloatOpt("live_migration_downtime_delay", default=75, min=1,
                 help="Seconds per GiB of data between two downtime steps."),
    cfg.FloatOpt("live_migration_completion_timeout", default=800, min=0,
                 help="Seconds per GiB of data (memory, plus disk for a block "
                      "migration) after which an unfinished migration is aborted."),
    cfg.BoolOpt("live_migration_permit_auto_converge", default=False,
                help="Let QEMU throttle the guest's vCPUs when memory does not "
                     "converge (VIR_MIGRATE_AUTO_CONVERGE)."),
    cfg.BoolOpt("live_migration_permit_post_copy", default=False,
                help="Allow switching to post-copy (VIR_MIGRATE_POSTCOPY)."),
    cfg.BoolOpt("live_migration_unsafe", default=False,
                help="Pass VIR_MIGRATE_UNSAFE: migrate with storage libvirt does "
                     "not consider shared or safe.  Only for operators who know "
                     "their storage is coherent."),
    cfg.StrOpt("images_type", default="file", choices=["file", "rbd"],
               help="Where new instances' disks live: files in instances_path "
                    "(qcow2 overlays on the image cache, or raw copies), or "
                    "rbd: images in the Ceph pool images_rbd_pool, a "
                    "copy-on-write clone of the image when the image service "
                    "says it is in the same cluster, else an import.  An "
                    "instance keeps the kind its disks were made with."),
    cfg.StrOpt("images_rbd_pool", default="vms",
               help="The Ceph pool instance disks are made in (images_type = rbd)."),
    cfg.StrOpt("images_rbd_ceph_conf", default="/etc/ceph/ceph.conf",
               help="The ceph.conf of the cluster (its fsid and mon_host are read)."),
    cfg.StrOpt("images_rbd_keyring", default="",
               help="The keyring holding rbd_user's key.  When set, the agent "
                    "stores the key in the libvirt secret rbd_secret_uuid at "
                    "start; when empty, the operator defines that secret and "
                    "the keyring is the one ceph.conf names."),
    cfg.StrOpt("rbd_user", default="",
               help="The cephx user (without client.) the agent and QEMU reach "
                    "the pool as."),
    cfg.StrOpt("rbd_secret_uuid", default="",
               help="The uuid of the libvirt secret (type ceph) holding "
                    "rbd_user's key, named in every RBD disk's XML."),
    cfg.FloatOpt("device_detach_timeout", default=20.0, min=0,
                 help="Seconds to wait for a running guest to release a "
                      "hot-unplugged device (NIC) before the detach fails."),
]


def list_opts():
    return [(libvirt_group, libvirt_opts)]
