"""Fixed IPs are unique per network on a host, and the metadata service
answers for an address only when one port claims it (network.hostres)."""
import pytest

from network import hostres
from network.model import Port


def port(pid, *ips):
    return Port(id=pid, network_id="n", mac="fa:16:3e:00:00:01", fixed_ips=tuple(ips))


def test_a_second_port_with_an_address_of_the_same_network_is_refused():
    held = [("net1", port("p1", "10.0.0.5"))]
    with pytest.raises(ValueError, match=r"networks\[0\]\.port: fixed IP 10.0.0.5 is port "
                                         r"p1's on network net1"):
        hostres.check_fixed_ips_unique([("networks[0].port", "net1", port("p2", "10.0.0.5"))],
                                       held)
    with pytest.raises(ValueError, match=r"networks\[1\]"):        # twice in one request
        hostres.check_fixed_ips_unique([("networks[0].port", "net2", port("p2", "10.9.0.5")),
                                        ("networks[1].port", "net2", port("p3", "10.9.0.5"))],
                                       held)


def test_the_same_address_on_another_network_or_the_same_port_is_fine():
    held = [("net1", port("p1", "10.0.0.5"))]
    hostres.check_fixed_ips_unique([("networks[0].port", "net2", port("p2", "10.0.0.5"))], held)
    hostres.check_fixed_ips_unique([("networks[0].port", "net1", port("p1", "10.0.0.5"))], held)


def test_metadata_answers_for_one_claim_only():
    claims = [("u1", "p1", ("10.0.0.5",)), ("u2", "p2", ("10.0.0.6",))]
    assert hostres.address_owner(claims, "10.0.0.5") == ("u1", None)
    assert hostres.address_owner(claims, "10.0.0.7")[0] is None
    uuid, why = hostres.address_owner(claims + [("u3", "p3", ("10.0.0.5",))], "10.0.0.5")
    assert uuid is None and "2 ports claim it (p1, p3)" in why
