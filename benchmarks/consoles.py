"""Console latency: a console URL asked through the agent, the websocket
opened through compute-console-proxy, and one line typed into the guest's
shell and answered, beside the floor measured in the same run on the same
guest: a plain TCP connection to its serial port (what the proxy itself
does) and the same line typed over it.  Prints one JSON object.

    .venv/bin/python benchmarks/consoles.py [--rounds 10]

Needs libvirtd and RabbitMQ (tools/start-daemons.sh); starts its own
compute-images, compute-agent and compute-console-proxy and removes the
guest it made.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import smoke  # noqa: E402
from tests.harness import serial  # noqa: E402
from tests.harness.agent import LIBVIRT_URI, Agent  # noqa: E402
from virt.libvirt import console_ports  # noqa: E402

# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('rounds', 'get_serial_console_rpc', 'proxy_open_websocket', 'proxy_line_round_trip',
        'floor_tcp_connect', 'floor_line_round_trip', 'proxy_rss_kib')


def ms(samples):
    return {"median_ms": round(statistics.median(samples) * 1000, 2),
            "min_ms": round(min(samples) * 1000, 2), "max_ms": round(max(samples) * 1000, 2)}


def type_direct(port, line, wanted):
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(line.encode() + b"\n")
        seen = b""
        while wanted.encode() not in seen:
            seen += s.recv(4096)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=10)
    args = smoke.arguments(p, rounds=1)
    a = Agent(extra_conf="[libvirt]\nserial_console = true\nserial_port_range = 10600:10699\n")
    try:
        a.start()
        a.upload_test_guest()
        a.start_console_proxy()
        image = a.upload_variant("console=ttyS0 quiet tb.name=bench tb.shell=1")
        u = a.boot("bench", image=image, wait_console=False)
        a.wait_console(u, lambda c: serial.SHELL_READY in c, "the shell")
        xml = subprocess.run(["virsh", "-c", LIBVIRT_URI, "dumpxml", u], capture_output=True,
                             text=True, check=True).stdout
        port = console_ports.serial_target(xml)[1]
        url_s, open_s, line_s, tcp_open_s, tcp_line_s = [], [], [], [], []
        for i in range(args.rounds):
            t0 = time.perf_counter()
            url = a.api.get_serial_console(a.host, u)["url"]
            t1 = time.perf_counter()
            with serial.open_ws(url) as ws:
                t2 = time.perf_counter()
                serial.type_and_read(ws, f"echo B-{i}-$((1+1))", f"B-{i}-2")
                t3 = time.perf_counter()
            url_s.append(t1 - t0)
            open_s.append(t2 - t1)
            line_s.append(t3 - t2)
            time.sleep(0.2)                  # QEMU takes one client at a time
            t0 = time.perf_counter()
            socket.create_connection(("127.0.0.1", port), 5).close()
            tcp_open_s.append(time.perf_counter() - t0)
            time.sleep(0.2)
            t0 = time.perf_counter()
            type_direct(port, f"echo D-{i}-$((2+2))", f"D-{i}-4")
            tcp_line_s.append(time.perf_counter() - t0)
            time.sleep(0.2)
        print(json.dumps({
            "rounds": args.rounds,
            "get_serial_console_rpc": ms(url_s),
            "proxy_open_websocket": ms(open_s),
            "proxy_line_round_trip": ms(line_s),
            "floor_tcp_connect": ms(tcp_open_s),
            "floor_line_round_trip": ms(tcp_line_s),
            "proxy_rss_kib": rss_kib(a.procs["console-proxy"].pid),
        }, indent=2))
    finally:
        a.close()


if __name__ == "__main__":
    main()
