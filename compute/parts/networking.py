"""Guest networking as the manager drives it: plugging and unplugging an
instance's ports (through the VIF plugin), and keeping the host's firewall,
DHCP servers and floating-IP NAT equal to what the records say.

The host's whole network state is computed from the database (every live
instance's ports, the security groups, the floating IPs) and applied at
once under one lock: after a build, a delete, a group change, an interface
change, a hard reboot and at agent start.  Applying is idempotent, so a
restart or a repeated operation rebuilds exactly the same rules.

Order: ports are plugged and the firewall applied before the guest is
defined; after the guest is destroyed the ports are unplugged, a network
with no port left on this host is released, and rules are re-applied.
"""
import logging
import os
import threading

from compute.core import exception, instance_data, states
from compute.core.instance import virt_instance
from compute.parts.metadata_service import MetadataServer
from network import dhcp as dhcp_mod
from network import hostres, iptables, linux_net
from network.model import FloatingIP, group_from_payload, vif_from_payload

LOG = logging.getLogger(__name__)


class NoopFirewall:
    def apply(self, vifs, groups, floating_ips=(), snat_networks=()):
        pass


class Networking:
    def __init__(self, conf, db, vifs, driver, runner, host):
        self.conf, self.db, self.vifs, self.driver = conf, db, vifs, driver
        self.runner = runner
        self.host = host
        self._net_lock = threading.RLock()
        net = conf.network
        self.firewall = (iptables.IptablesFirewall()
                         if net.firewall_driver == "iptables" else NoopFirewall())
        self.metadata = MetadataServer(conf.metadata_port, self.metadata_for)
        self.dhcp = dhcp_mod.DHCPServers(conf.state_path, net.dhcp_lease_seconds) \
            if net.dhcp_enabled else None

    # -- the host's state, from the records ---------------------------------------

    @staticmethod
    def ports_of(inst):
        """[(Network, Port)] of an instance record."""
        return [vif_from_payload(item) for item in inst.networks or ()]

    def vifs_of(self, inst):
        """[(Network, Port, vif dict)] of an instance record."""
        return [(n, p, self.vifs.describe(n, p)) for n, p in self.ports_of(inst)]

    def network_info(self, inst):
        return [vif for _, _, vif in self.vifs_of(inst)]

    @staticmethod
    def wired(inst):
        """Whether an instance's ports belong on the host: not one being
        deleted (two deletes racing must each see the other gone), nor a
        build that failed before its guest ever ran, nor one offloaded or
        being offloaded."""
        if inst.task_state in (states.DELETING, states.SHELVING_OFFLOADING):
            return False
        if states.offloaded(inst.vm_state, inst.task_state):
            return False
        return not (inst.vm_state == states.ERROR and inst.launched_at is None
                    and inst.task_state is None)

    def host_ports(self, exclude=None):
        """{port id: (Network, Port, instance uuid)} of every wired instance."""
        out = {}
        for inst in self.db.instance_list(host=self.host):
            if inst.uuid != exclude and self.wired(inst):
                for n, p in self.ports_of(inst):
                    out[p.id] = (n, p, inst.uuid)
        return out

    def apply_network(self, exclude=None):
        """Make firewall, NAT and DHCP those of the records (minus the
        instance `exclude`, being deleted)."""
        with self._net_lock:
            ports = self.host_ports(exclude)
            groups = {gid: group_from_payload(body)
                      for gid, body in self.db.security_groups().items()}
            port_list = [p for _, p, _ in ports.values()]
            for p in port_list:
                missing = set(p.security_groups) - set(groups)
                if missing:      # validated at the boundary; a group removed since?
                    LOG.warning("port %s: unknown security groups %s (deny)", p.id, missing)
                    groups.update({gid: group_from_payload({"id": gid}) for gid in missing})
            floating = []
            for f in self.db.floating_ips(self.host):
                if f.port_id in ports and f.instance_uuid != exclude:
                    floating.append(FloatingIP(f.address, f.fixed_ip, f.port_id,
                                               ports[f.port_id][0].cidr))
            # networks whose gateway is this host: their guests go out by SNAT
            routed = {n.id: n for n, _, _ in ports.values()
                      if n.host_address and n.gateway == n.host_address
                      and ":" not in n.cidr}
            if not self.metadata.running and any(n.metadata for n, _, _ in ports.values()):
                self._start_metadata()
            self.firewall.apply([(n, p) for n, p, _ in ports.values()], groups, floating,
                                list(routed.values()))
            if routed or floating:
                linux_net.enable_ip_forward()
            self._sync_floating_addresses(floating)
            if self.dhcp is not None:
                by_net = {}
                for n, p, _ in ports.values():
                    by_net.setdefault(n.id, (n, []))[1].append(p)
                self.dhcp.sync(by_net)

    def _start_metadata(self):
        """The first network with metadata on: the server starts, and the
        firewall DNATs guests' requests to it (and guards its port)."""
        self.metadata.start()
        self.firewall.metadata = True

    def metadata_for(self, address):
        """(documents, address) of the guest whose port on a network with
        metadata on has this fixed IPv4 address, or None."""
        uuid, why = hostres.address_owner(
            [(u, p.id, p.ips(4)) for n, p, u in self.host_ports().values() if n.metadata],
            address)
        if uuid is None:
            if "claim" in why:
                LOG.warning("metadata request from %s refused: %s", address, why)
            return None
        inst = self.db.instance_get(uuid)
        return instance_data.documents(inst.uuid, inst.display_name, inst.metadata_,
                                       inst.guest_data or {}, inst.networks), address

    def shutdown(self):
        self.metadata.stop()

    def _sync_floating_addresses(self, floating):
        """Put the floating addresses on the public interface and remove
        those no longer associated.  Which addresses are ours is kept in a
        file (written before any change), so a restart forgets none."""
        path = os.path.join(self.conf.state_path, "floating-addresses")
        try:
            with open(path) as f:
                old = set(f.read().split())
        except FileNotFoundError:
            old = set()
        wanted = {f.address for f in floating}
        if wanted == old:
            return
        dev = self.conf.network.public_interface
        _write_lines(path, old | wanted)
        for address in sorted(wanted - old):
            linux_net.ensure_address(dev, f"{address}/32")
        for address in sorted(old - wanted):
            linux_net.remove_address(dev, f"{address}/32")
        _write_lines(path, wanted)

    def restore(self):
        """Agent start: what a killed agent left half-made goes; bridges
        and uplinks of every wired instance are made again (after a host
        reboot they are gone), then firewall, NAT and DHCP from the
        records."""
        self._safely(self.vifs.cleanup)
        for inst in self.db.instance_list(host=self.host):
            if self.wired(inst):
                for net, _, vif in self.vifs_of(inst):
                    self._safely(self.vifs.plug, net, vif)
        self.apply_network()

    # -- plug / unplug ----------------------------------------------------------

    def plug_vifs(self, inst):
        """Plug every port (idempotent), then apply the rules; undo the
        plugging of this call on failure.  The network_info for the driver."""
        vifs = self.vifs_of(inst)
        with self._net_lock:
            plugged = []
            try:
                for net, _, vif in vifs:
                    self.vifs.plug(net, vif)
                    plugged.append((net, vif))
                self.apply_network()
            except Exception:
                for net, vif in reversed(plugged):
                    self._safely(self.vifs.unplug, net, vif)
                self._release_unused([n for n, _ in plugged], exclude=inst.uuid)
                raise
        return [vif for _, _, vif in vifs]

    def unplug_vifs(self, inst, vifs=None, instance_gone=True):
        """After the guest (or its NIC) is gone: unplug the ports, re-apply
        the rules without them, release networks no port here uses.  The
        record's ports count unless instance_gone."""
        vifs = self.vifs_of(inst) if vifs is None else vifs
        exclude = inst.uuid if instance_gone else None
        with self._net_lock:
            for net, _, vif in vifs:
                self._safely(self.vifs.unplug, net, vif)
            self.apply_network(exclude=exclude)
            self._release_unused([n for n, _, _ in vifs], exclude=exclude)

    def _release_unused(self, networks, exclude):
        in_use = {n.id for n, _, _ in self.host_ports(exclude).values()}
        for net in {n.id: n for n in networks}.values():
            if net.id not in in_use:
                self._safely(self.vifs.release, net)

    @staticmethod
    def _safely(fn, *args):
        try:
            fn(*args)
        except Exception:
            LOG.exception("%s%s failed", fn.__name__, args[:1])

    # -- RPC operations -----------------------------------------------------------

    def refresh_security_group_rules(self, body):
        self.db.security_group_put(body)
        self.apply_network()
        return {"security_group": body["id"],
                "ports": sum(body["id"] in p.security_groups
                             for _, p, _ in self.host_ports().values())}

    def save_security_groups(self, bodies):
        for body in bodies:
            self.db.security_group_put(body)

    def add_peer_security_groups(self, bodies):
        """The groups an arriving instance's record names, from its old
        host: only those this host has no copy of.  A copy here came from
        the caller's own build or refresh and stays (a peer's version would
        change the rules of every other port here that uses it)."""
        known = set(self.db.security_groups())
        self.save_security_groups([b for b in bodies if b["id"] not in known])

    def check_networks(self, networks):
        """[(field, Network)] of a payload: refuse (ValueError naming the
        field) any this host cannot serve with the resources it owns;
        nothing is changed."""
        known = {n.id: n for n, _, _ in self.host_ports().values()}
        for field, net in networks:
            if net.metadata and not isinstance(self.firewall, iptables.IptablesFirewall):
                raise ValueError(f"{field}.metadata: the metadata service needs "
                                 "[network] firewall_driver = iptables on this host")
            self.vifs.check(net, field, known)
            known.setdefault(net.id, net)

    def check_security_groups(self, ports, bodies):
        known = set(self.db.security_groups()) | {b["id"] for b in bodies}
        for p in ports:
            for gid in p.security_groups:
                if gid not in known:
                    raise exception.InvalidRequest(
                        f"port {p.id}: unknown security group {gid!r}")

    def associate_floating_ip(self, ctxt, uuid, address, fixed_ip=None):
        inst = self.db.instance_get(uuid)
        ours = [f.address for f in self.db.floating_ips(self.host)]
        try:
            hostres.check_floating_ip(address, "address", self.conf.network.floating_ranges,
                                      [a for _, a in linux_net.host_addresses()], ours)
        except ValueError as e:
            raise exception.InvalidRequest(f"associate_floating_ip: {e}") from None
        if address in ours:
            raise exception.InvalidRequest(f"associate_floating_ip: address: {address} is "
                                           "associated already")
        candidates = [(p, ip) for _, p in self.ports_of(inst) for ip in p.ips(4)
                      if fixed_ip in (None, ip)]
        if not candidates:
            raise exception.InvalidRequest(
                f"instance {uuid} has no fixed IPv4 {fixed_ip or ''}".rstrip())
        port, ip = candidates[0]

        def work(inst, record):
            self.db.floating_ip_add(address=address, host=self.host, instance_uuid=uuid,
                                    port_id=port.id, fixed_ip=ip)
            try:
                self.apply_network()
            except Exception:
                self.db.floating_ip_remove(address=address)
                self.apply_network()
                raise
        self.runner.run("associate_floating_ip", ctxt, uuid, work, reraise=True)
        return {"address": address, "fixed_ip": ip, "port_id": port.id}

    def disassociate_floating_ip(self, ctxt, address):
        rows = self.db.floating_ip_remove(address=address)
        if not rows:
            raise exception.InvalidRequest(f"floating IP {address} is not associated here")
        self.runner.run("disassociate_floating_ip", ctxt, rows[0].instance_uuid,
                        lambda inst, record: self.apply_network(), reraise=True)
        return {"address": address}

    def attach_interface(self, ctxt, uuid, item, groups):
        """Add a port to an ACTIVE or STOPPED instance: record it, plug it,
        apply the rules, then add the NIC (live if the guest runs)."""
        net, port = vif_from_payload(item)

        def work(inst, record):
            if port.id in self.host_ports():
                raise exception.InvalidRequest(f"port {port.id} is already attached here")
            self.save_security_groups(groups)
            old = list(inst.networks or ())
            self.db.instance_update(uuid, expected_task_state=None, networks=old + [item])
            inst = self.db.instance_get(uuid)
            vif = self.vifs.describe(net, port)
            try:
                with self._net_lock:
                    self.vifs.plug(net, vif)
                    self.apply_network()
                self.driver.attach_interface(virt_instance(inst), inst.image_meta, vif)
            except Exception:
                self.db.instance_update(uuid, networks=old)
                self.unplug_vifs(inst, [(net, port, vif)], instance_gone=False)
                raise
            return vif
        return self.runner.run("attach_interface", ctxt, uuid, work, reraise=True)

    def detach_interface(self, ctxt, uuid, port_id):
        def work(inst, record):
            vifs = [v for v in self.vifs_of(inst) if v[1].id == port_id]
            if not vifs:
                raise exception.InvalidRequest(f"instance {uuid} has no port {port_id}")
            _, _, vif = vifs[0]
            self.driver.detach_interface(virt_instance(inst), inst.image_meta, vif)
            for f in self.db.floating_ips(self.host):
                if f.port_id == port_id:
                    self.db.floating_ip_remove(address=f.address)
            self.db.instance_update(
                uuid, networks=[i for i in inst.networks if i["port"]["id"] != port_id])
            self.unplug_vifs(inst, vifs, instance_gone=False)
        self.runner.run("detach_interface", ctxt, uuid, work, reraise=True)
        return {"port_id": port_id}

    def get_network_status(self):
        ports = self.host_ports()
        return {"ports": sorted(ports),
                "floating_ips": [f.address for f in self.db.floating_ips(self.host)],
                "dhcp": self.dhcp.running() if self.dhcp else {}}


def _write_lines(path, items):
    with open(path + ".tmp", "w") as f:
        f.write("".join(f"{i}\n" for i in sorted(items)))
    os.replace(path + ".tmp", path)
