"""computectl: a thin command-line client over compute.rpc.client.ComputeAPI.

    computectl [--config-file F] boot [--host H] --image ID --flavor vcpus=1,ram=128,disk=1 NAME
        [--boot-volume ID --connection FILE]
    computectl list --host H | show --host H UUID | console-log --host H [--length N] UUID
    computectl console --host H UUID | vnc-console --host H UUID
    computectl delete --host H UUID | service-list | host-status --host H
    computectl reboot [--hard] | suspend | resume | pause | unpause | stop | start --host H UUID
    computectl rebuild --host H [--image ID] [--preserve-ephemeral] UUID
    computectl rescue --host H [--image ID] UUID | unrescue --host H UUID
    computectl shelve | shelve-offload --host H UUID
    computectl unshelve --host H [--dest D [--networks FILE]] UUID
    computectl evacuate --host DOWN --dest D [--networks FILE] [--connection VOL=FILE]
        [--user-data FILE] UUID
    computectl volume-attach --host H --volume ID --connection FILE UUID
    computectl volume-detach --host H --volume ID UUID
    computectl volume-extend --host H --volume ID --size GiB UUID
    computectl reset-state --host H [--active] UUID | diagnostics | actions --host H UUID
    computectl cache-image --host H IMAGE [IMAGE...] | image-cache --host H [--clean]
    computectl snapshot --host H --name N UUID
    computectl live-migrate --host SRC --dest DEST [--block] UUID
    computectl migrate --host SRC --dest DEST UUID | resize --host SRC [--dest DEST] UUID FLAVOR
    computectl resize-confirm | resize-revert --host DEST UUID | migration-list --host H
Long operations wait with a progress line (--no-wait to return at once);
--json prints machine-readable output; errors exit non-zero with the reason.
"""
import argparse
import base64
import os
import sys
import time
import uuid as uuidlib

from compute.agent.conf import CONF
from compute.client import hosts
from compute.client.cli import (
    CLIError,
    follow_progress,
    key_pairs,
    load_json,
    parse_flavor,
    read_file,
    render,
    wait_for,
)
from compute.core import exception

DEFAULT_CONFIG = "/etc/compute-agent/compute-agent.conf"


def cmd_boot(api, args):
    uuid = args.uuid or str(uuidlib.uuid4())
    nets = load_json(args.networks) if args.networks else {}
    if bool(args.boot_volume) != bool(args.connection):
        raise SystemExit("computectl: --boot-volume and --connection go together")
    boot = ({"volume_id": args.boot_volume, "connection_info": load_json(args.connection)}
            if args.boot_volume else None)
    user_data = (base64.b64encode(read_file(args.user_data, binary=True)).decode()
                 if args.user_data else None)
    flavor = parse_flavor(args.flavor)
    picked = args.host is None
    if not picked:
        targets = [args.host]
    elif args.db is None:                   # its own database: the one host there is
        targets = [CONF.host]
    else:
        targets = hosts.pick(args.db, flavor, CONF.service_down_time)
    # --no-wait with a picked host still waits for the claim (its answer)
    done = ((lambda r: r["task_state"] != "scheduling") if args.no_wait
            else (lambda r: r["vm_state"] == "active"))
    for host, next_host in zip(targets, [*targets[1:], None], strict=True):
        api.build_and_run_instance(host, uuid, args.name, flavor, args.image,
                                   networks=nets.get("networks"),
                                   security_groups=nets.get("security_groups"),
                                   user_data=user_data, key_pairs=key_pairs(args.key),
                                   hostname=args.hostname,
                                   admin_pass=os.environ.get("COMPUTE_ADMIN_PASS"),
                                   config_drive=args.config_drive, boot_volume=boot)
        if not picked:
            return (api.get_instance(host, uuid) if args.no_wait
                    else wait_for(api, host, uuid, done, args.json))
        if not args.json:
            print(f"  {uuid}: building on {host}", file=sys.stderr)
        try:
            return wait_for(api, host, uuid, done, args.json)
        except CLIError as e:
            if "ResourcesUnavailable" not in str(e) or next_host is None:
                raise
            print(f"  {host} refused the claim; trying {next_host}", file=sys.stderr)
            api.terminate_instance(host, uuid)      # its record of the refusal


def cmd_delete(api, args):
    api.terminate_instance(args.host, args.uuid)
    if args.no_wait:
        return {"uuid": args.uuid, "status": "deleting"}
    return wait_for(api, args.host, args.uuid, lambda r: r["vm_state"] == "deleted", args.json,
                    error_ends=False)


# Power operations: the RPC method and the vm_state that means "done".
POWER_COMMANDS = {
    "suspend": ("suspend_instance", "suspended"), "resume": ("resume_instance", "active"),
    "pause": ("pause_instance", "paused"), "unpause": ("unpause_instance", "active"),
    "stop": ("stop_instance", "stopped"), "start": ("start_instance", "active"),
}


def _settled(vm_state):
    return lambda r: r["vm_state"] == vm_state and r["task_state"] is None


def cmd_power(api, args):
    method, done = POWER_COMMANDS[args.command]
    getattr(api, method)(args.host, args.uuid)
    if args.no_wait:
        return api.get_instance(args.host, args.uuid)
    return wait_for(api, args.host, args.uuid, _settled(done), args.json)


def cmd_reboot(api, args):
    api.reboot_instance(args.host, args.uuid, "HARD" if args.hard else "SOFT")
    if args.no_wait:
        return api.get_instance(args.host, args.uuid)
    return wait_for(api, args.host, args.uuid, _settled("active"), args.json)


def cmd_rebuild(api, args):
    api.rebuild_instance(args.host, args.uuid, args.image, args.preserve_ephemeral)
    if args.no_wait:
        return api.get_instance(args.host, args.uuid)
    return wait_for(api, args.host, args.uuid, _settled("active"), args.json)


def cmd_rescue(api, args):
    if args.command == "rescue":
        api.rescue_instance(args.host, args.uuid, args.image)
    else:
        api.unrescue_instance(args.host, args.uuid)
    if args.no_wait:
        return api.get_instance(args.host, args.uuid)
    done = "rescued" if args.command == "rescue" else "active"
    return wait_for(api, args.host, args.uuid, _settled(done), args.json)


def cmd_shelve(api, args):
    if args.command == "shelve":
        api.shelve_instance(args.host, args.uuid)
        host, done = args.host, lambda r: (r["vm_state"] in ("shelved", "shelved_offloaded")
                                           and r["task_state"] is None)
    elif args.command == "shelve-offload":
        api.shelve_offload_instance(args.host, args.uuid)
        host, done = args.host, _settled("shelved_offloaded")
    else:
        nets = load_json(args.networks) if args.networks else {}
        host = api.unshelve_instance(args.host, args.uuid, args.dest,
                                     nets.get("networks"))["host"]
        done = _settled("active")
    if args.no_wait:
        return api.get_instance(host, args.uuid)
    return wait_for(api, host, args.uuid, done, args.json)


def cmd_evacuate(api, args):
    nets = load_json(args.networks) if args.networks else {}
    connections = {}
    for item in args.connection or ():
        volume, sep, path = item.partition("=")
        if not sep or not volume or not path:
            raise CLIError(f"--connection {item!r}: VOLUME_ID=FILE")
        connections[volume] = load_json(path)
    user_data = (base64.b64encode(read_file(args.user_data, binary=True)).decode()
                 if args.user_data else None)
    answer = api.evacuate_instance(args.dest, args.uuid, args.host, nets.get("networks"),
                                   connections or None, user_data)
    if not args.json:
        how = "keeping its disks: shared storage or Ceph" if answer["shared_storage"] \
            else "from the image"
        print(f"  evacuation {answer['migration_id']} to {args.dest} ({how})")
    if args.no_wait:
        return api.get_instance(args.dest, args.uuid)
    return wait_for(api, args.dest, args.uuid,
                    lambda r: r["task_state"] is None and r["vm_state"] != "building",
                    args.json)


def cmd_volume(api, args):
    if args.command == "volume-attach":
        device = api.attach_volume(args.host, args.uuid, args.volume,
                                   load_json(args.connection))["device"]
        if not args.json:
            print(f"  volume {args.volume} as {device}")
    else:
        api.detach_volume(args.host, args.uuid, args.volume)
    if args.no_wait:
        return api.get_instance(args.host, args.uuid)
    rec = wait_for(api, args.host, args.uuid, lambda r: r["task_state"] is None, args.json)
    attached = args.volume in rec.get("volumes", ())
    if attached != (args.command == "volume-attach"):
        raise CLIError(f"volume {args.volume} was not {args.command.split('-')[1]}ed: "
                       f"{rec.get('fault') or 'see computectl actions'}")
    return rec


def cmd_volume_extend(api, args):
    api.extend_volume(args.host, args.uuid, args.volume, args.size * 2 ** 30)
    if args.no_wait:
        return api.get_instance(args.host, args.uuid)
    rec = wait_for(api, args.host, args.uuid, lambda r: r["task_state"] is None, args.json)
    last = api.list_instance_actions(args.host, args.uuid)[-1]
    if last["action"] == "extend_volume" and last["message"] == "Error":
        raise CLIError(f"volume {args.volume} was not extended: "
                       f"{rec.get('fault') or 'see computectl actions'}")
    return rec


def cmd_reset_state(api, args):
    return api.reset_state(args.host, args.uuid, "active" if args.active else "error")


def cmd_set_password(api, args):
    password = os.environ.get("COMPUTE_ADMIN_PASS")
    if not password:
        raise CLIError("set the new password in $COMPUTE_ADMIN_PASS (never on the "
                       "command line, where every user of the host can read it)")
    return api.set_admin_password(args.host, args.uuid, password, args.user)


def cmd_diagnostics(api, args):
    return api.get_diagnostics(args.host, args.uuid)


def cmd_actions(api, args):
    return [{"action": a["action"], "start": a["start_time"], "finish": a["finish_time"],
             "result": a["message"] or "Success",
             "events": ", ".join(f"{e['event']}={e['result']}" for e in a["events"])}
            for a in api.list_instance_actions(args.host, args.uuid)]


def cmd_cache_image(api, args):
    request_id = api.cache_images(args.host, args.images)
    if args.no_wait:
        return {"caching": args.images, "request_id": request_id}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = api.get_image_cache_status(args.host)
        present = {i["image_id"] for i in status["images"] if i["present"]}
        failed = {f["image_id"]: f["reason"] for f in status.get("failed", ())
                  if f["request_id"] == request_id and f["image_id"] in args.images}
        if failed:      # the agent's outcome, as soon as it knows it
            raise CLIError("not cached: " + "; ".join(f"{i}: {why}"
                                                      for i, why in sorted(failed.items())))
        if set(args.images) <= present:
            return [i for i in status["images"] if i["image_id"] in args.images]
        time.sleep(0.5)
    raise CLIError("timed out waiting for the images to be cached (see the agent's log)")


def cmd_image_cache(api, args):
    if args.clean:
        return api.manage_image_cache(args.host)
    return api.get_image_cache_status(args.host)


def cmd_snapshot(api, args):
    """Snapshot, then follow task_state and progress until it settles."""
    started = api.snapshot_instance(args.host, args.uuid, args.name)
    if args.no_wait:
        return started
    follow_progress(api, args.host, args.uuid, "snapshot", args.json, 1800)
    last = [a for a in api.list_instance_actions(args.host, args.uuid)
            if a["action"] == "snapshot"][-1]
    if last["message"] == "Error":
        details = last["events"][0]["details"] or "see the agent's log"
        raise CLIError(f"snapshot failed: {details.split(chr(10) + 'Traceback')[0].strip()}")
    return {"instance_uuid": args.uuid, "image_id": started["image_id"], "status": "active"}


def cmd_live_migrate(api, args):
    """Live-migrate, then follow progress on the source until the instance
    shows up settled on the destination (or stays here after a failure)."""
    api.live_migrate_instance(args.host, args.uuid, args.dest, args.block)
    if args.no_wait:
        return {"instance_uuid": args.uuid, "status": "migrating"}
    rec = follow_progress(api, args.host, args.uuid, "live-migrating", args.json)
    if rec["host"] != args.dest:
        last = api.list_instance_actions(args.host, args.uuid)[-1]
        raise CLIError(f"live migration failed; the instance is still on {args.host}: "
                       f"{last['events'][0]['details'] or last['message']}")
    return api.get_instance(args.dest, args.uuid)


def cmd_migrate(api, args):
    """Cold-migrate or resize, then follow it on the source until the
    instance is resized on the destination (or back here after a failure)."""
    flavor = parse_flavor(args.flavor) if getattr(args, "flavor", None) else None
    dest = args.dest or args.host
    started = api.migrate_instance(args.host, args.uuid, dest, flavor=flavor)
    if args.no_wait:
        return started
    rec = follow_progress(api, args.host, args.uuid, "migrating", args.json)
    mig = next(m for m in api.list_migrations(args.host, args.uuid)
               if m["id"] == started["migration_id"])
    if mig["status"] != "finished":
        raise CLIError(f"{mig['migration_type']} failed; the instance is {rec['vm_state']} "
                       f"on {args.host}: {mig['message']}")
    return api.get_instance(dest, args.uuid)


def cmd_resize_decision(api, args):
    """resize-confirm or resize-revert on the host the instance is on now."""
    fn = api.confirm_resize if args.command == "resize-confirm" else api.revert_resize
    started = fn(args.host, args.uuid)
    if args.no_wait:
        return started
    mig = started["migration_id"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = next(m["status"] for m in api.list_migrations(args.host, args.uuid)
                      if m["id"] == mig)
        if status in ("confirmed", "reverted"):
            break
        try:
            rec = api.get_instance(args.host, args.uuid)
        except exception.InstanceNotFound:      # reverted meanwhile: the record left
            continue
        if rec["task_state"] is None and rec["vm_state"] == "resized":
            raise CLIError(f"{args.command} failed: {rec['fault'] or 'see actions'}")
        time.sleep(0.2)
    else:
        raise CLIError(f"timed out waiting for {args.command} of {args.uuid}")
    source = next(m["source_host"] for m in api.list_migrations(args.host, args.uuid)
                  if m["id"] == mig)
    return api.get_instance(source if status == "reverted" else args.host, args.uuid)


def cmd_migration_list(api, args):
    return api.list_migrations(args.host, args.instance)


def cmd_migration_control(api, args):
    if args.command == "live-migration-abort":
        return api.live_migration_abort(args.host, args.uuid)
    return api.live_migration_force_complete(args.host, args.uuid)


def cmd_sg_refresh(api, args):
    return api.refresh_security_group_rules(args.host, load_json(args.file))


def cmd_interface_attach(api, args):
    body = load_json(args.file)
    return api.attach_interface(args.host, args.uuid, body["port"], body["network"],
                                body.get("security_groups"))


def cmd_interface_detach(api, args):
    return api.detach_interface(args.host, args.uuid, args.port_id)


def cmd_floating_ip(api, args):
    if args.disassociate:
        return api.disassociate_floating_ip(args.host, args.address)
    if not args.uuid:
        raise CLIError("give the instance uuid to associate with (or --disassociate)")
    return api.associate_floating_ip(args.host, args.uuid, args.address, args.fixed_ip)


def cmd_network_status(api, args):
    return api.get_network_status(args.host)


def cmd_list(api, args):
    return api.list_instances(args.host)


def cmd_show(api, args):
    return api.get_instance(args.host, args.uuid)


def cmd_console_log(api, args):
    return api.get_console_output(args.host, args.uuid, args.length)


def cmd_console(api, args):
    from compute.client import terminal
    answer = api.get_serial_console(args.host, args.uuid)
    try:
        terminal.attach(answer["websocket"], linger=args.linger)
    except terminal.ConsoleRefused as e:
        raise CLIError(f"the console proxy refused the console: {e}") from None
    return None


def cmd_vnc_console(api, args):
    return api.get_vnc_console(args.host, args.uuid)


def cmd_service_list(api, args):
    from compute.db.api import service_is_up
    db = args.db or hosts.readable(CONF)
    if db is None and hosts.own_file(CONF):
        return hosts.local_services(CONF.host, args.answers)
    if db is None:
        raise CLIError(f"service-list reads the state database: {hosts.unreadable(CONF)}")
    return [{"host": s.host, "binary": s.binary,
             "status": "up" if service_is_up(s, CONF.service_down_time) else "down",
             "updated_at": s.updated_at.isoformat() + "Z" if s.updated_at else None}
            for s in db.service_list()]


def cmd_host_status(api, args):
    """The host's resource report, saved guest memory, and the guests of
    its hypervisor no record of it names (left alone, for the operator)."""
    return api.get_host_status(args.host)


def build_parser():
    p = argparse.ArgumentParser(prog="computectl", description="compute-agent client")
    p.add_argument("--config-file", action="append", default=[],
                   help=f"agent-style config (transport_url, [database]); default "
                        f"{DEFAULT_CONFIG} if present")
    p.add_argument("--json", action="store_true", help="print JSON")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, fn, host=True, uuid=False, wait=False):
        s = sub.add_parser(name)
        s.set_defaults(fn=fn)
        if host:
            s.add_argument("--host", required=host != "optional",
                           help="compute host name" if host is True else
                           "compute host name (default: a host whose service is up, "
                           "with the most free memory; the next one if it refuses)")
        if uuid:
            s.add_argument("uuid")
        if wait:
            s.add_argument("--no-wait", action="store_true")
        return s

    b = add("boot", cmd_boot, host="optional", wait=True)
    b.add_argument("--image", required=True)
    b.add_argument("--flavor", required=True, help="vcpus=N,ram=MiB,disk=GiB[,ephemeral,swap]")
    b.add_argument("--uuid", help="instance uuid (default: a new one)")
    b.add_argument("--networks", metavar="FILE",
                   help='JSON {"networks": [{"port":..., "network":...}], '
                        '"security_groups": [...]}')
    b.add_argument("--config-drive", action="store_true",
                   help="attach a config drive (cloud-init's ConfigDrive source)")
    b.add_argument("--user-data", metavar="FILE", help="user data for cloud-init")
    b.add_argument("--key", action="append", metavar="NAME=FILE",
                   help="an OpenSSH public key the guest authorizes (repeatable)")
    b.add_argument("--hostname", help="the guest's host name (default: from NAME)")
    b.add_argument("--boot-volume", metavar="ID",
                   help="boot from this volume (it holds the image already)")
    b.add_argument("--connection", metavar="FILE",
                   help="the boot volume's connection info (JSON, as Cinder gives it)")
    b.add_argument("name", help="instance name; the admin password, if any, is read "
                                "from $COMPUTE_ADMIN_PASS (never the command line)")
    add("list", cmd_list)
    add("show", cmd_show, uuid=True)
    add("console-log", cmd_console_log, uuid=True).add_argument("--length", type=int)
    add("console", cmd_console, uuid=True).add_argument(
        "--linger", type=float, default=2.0,
        help="when stdin is not a terminal: seconds to keep showing output after it ends")
    add("vnc-console", cmd_vnc_console, uuid=True)
    add("delete", cmd_delete, uuid=True, wait=True)
    add("service-list", cmd_service_list, host=False)
    add("host-status", cmd_host_status)
    add("reboot", cmd_reboot, uuid=True, wait=True).add_argument(
        "--hard", action="store_true", help="power off and start instead of ACPI")
    for name in POWER_COMMANDS:
        add(name, cmd_power, uuid=True, wait=True)
    r = add("rebuild", cmd_rebuild, uuid=True, wait=True)
    r.add_argument("--image", help="the new image (default: the instance's own)")
    r.add_argument("--preserve-ephemeral", action="store_true",
                   help="keep the ephemeral disk (default: blank again)")
    add("rescue", cmd_rescue, uuid=True, wait=True).add_argument(
        "--image", help="rescue image (default: the instance's own image)")
    add("unrescue", cmd_rescue, uuid=True, wait=True)
    add("shelve", cmd_shelve, uuid=True, wait=True)
    add("shelve-offload", cmd_shelve, uuid=True, wait=True)
    u = add("unshelve", cmd_shelve, uuid=True, wait=True)
    u.add_argument("--dest", help="unshelve an offloaded instance on this host instead")
    u.add_argument("--networks", metavar="FILE",
                   help='JSON {"networks": [...]}: the destination\'s view of the ports')
    e = add("evacuate", cmd_evacuate, uuid=True, wait=True)
    e.add_argument("--dest", required=True, help="the host that rebuilds the instance")
    e.add_argument("--networks", metavar="FILE",
                   help='JSON {"networks": [...]}: the destination\'s view of the ports')
    e.add_argument("--connection", action="append", metavar="VOLUME_ID=FILE",
                   help="an attached volume's connection info (JSON, as the volume "
                        "service gives it): the down host's record seals it (repeatable)")
    e.add_argument("--user-data", metavar="FILE",
                   help="the instance's user data again: the down host's record seals it")
    v = add("volume-attach", cmd_volume, uuid=True, wait=True)
    v.add_argument("--volume", required=True, help="the volume's id")
    v.add_argument("--connection", required=True, metavar="FILE",
                   help="JSON connection info: {driver_volume_type, data}")
    add("volume-detach", cmd_volume, uuid=True, wait=True).add_argument(
        "--volume", required=True, help="the volume's id")
    x = add("volume-extend", cmd_volume_extend, uuid=True, wait=True)
    x.add_argument("--volume", required=True, help="the volume's id")
    x.add_argument("--size", required=True, type=int, metavar="GiB",
                   help="the volume's new size, once the storage grew it")
    add("reset-state", cmd_reset_state, uuid=True).add_argument(
        "--active", action="store_true", help="set active instead of error")
    add("diagnostics", cmd_diagnostics, uuid=True)
    add("set-password", cmd_set_password, uuid=True).add_argument(
        "--user", help="guest user (default root); the password comes from "
                       "$COMPUTE_ADMIN_PASS")
    add("actions", cmd_actions, uuid=True)
    c = add("cache-image", cmd_cache_image, wait=True)
    c.add_argument("images", nargs="+", metavar="IMAGE")
    add("snapshot", cmd_snapshot, uuid=True, wait=True).add_argument(
        "--name", required=True, help="name of the new image")
    m = add("live-migrate", cmd_live_migrate, uuid=True, wait=True)
    m.add_argument("--dest", required=True, help="destination host")
    m.add_argument("--block", action="store_true", help="copy the disks (no shared storage)")
    add("live-migration-abort", cmd_migration_control, uuid=True)
    add("live-migration-force-complete", cmd_migration_control, uuid=True)
    m = add("migrate", cmd_migrate, uuid=True, wait=True)
    m.add_argument("--dest", required=True, help="destination host")
    r = add("resize", cmd_migrate, uuid=True, wait=True)
    r.add_argument("flavor", help="vcpus=N,ram=MiB,disk=GiB[,ephemeral,swap]")
    r.add_argument("--dest", help="destination host (default: --host, when the agent "
                                  "allows a resize on the same host)")
    add("resize-confirm", cmd_resize_decision, uuid=True, wait=True)
    add("resize-revert", cmd_resize_decision, uuid=True, wait=True)
    add("migration-list", cmd_migration_list).add_argument(
        "--instance", help="only this instance's migrations")
    add("sg-refresh", cmd_sg_refresh).add_argument("file", help="security group JSON")
    add("interface-attach", cmd_interface_attach, uuid=True).add_argument(
        "file", help='JSON {"port":..., "network":..., "security_groups": [...]}')
    add("interface-detach", cmd_interface_detach, uuid=True).add_argument("port_id")
    f = add("floating-ip", cmd_floating_ip)
    f.add_argument("address")
    f.add_argument("uuid", nargs="?", help="instance to associate with")
    f.add_argument("--fixed-ip")
    f.add_argument("--disassociate", action="store_true")
    add("network-status", cmd_network_status)
    add("image-cache", cmd_image_cache).add_argument(
        "--clean", action="store_true", help="run the cache manager now")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    files = args.config_file or ([DEFAULT_CONFIG] if os.path.exists(DEFAULT_CONFIG) else [])
    CONF([], project="compute-agent", default_config_files=files)
    try:
        from compute.rpc.client import ComputeAPI
        api = ComputeAPI(CONF)
        args.db = hosts.check_named(CONF, args, api)
        render(args.fn(api, args), args.json)
    except (CLIError, exception.ComputeError) as e:
        # a remote error's text carries the agent's traceback: the reason is enough
        print(f"error: {str(e).split(chr(10) + 'Traceback')[0].strip()}", file=sys.stderr)
        return 1
    except Exception as e:  # messaging timeouts, unreachable broker, ...
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
