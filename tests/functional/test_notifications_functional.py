"""Every operation sends start and end (or error) notifications on the
notifications topic."""
import threading
import time
import uuid

import oslo_messaging as messaging

FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}


class Collector:
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.events.append(("info", event_type, payload))

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.events.append(("error", event_type, payload))


def listen(service):
    transport = messaging.get_notification_transport(service.conf)
    collector = Collector()
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic="notifications")], [collector])
    listener.start()
    return listener, collector


def wait_for(collector, event_type, uuid_, timeout=20):
    """The notification event_type about instance uuid_ (the queue may
    still hold notifications about other tests' instances)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with collector.lock:
            for e in collector.events:
                if e[1] == event_type and e[2].get("instance_uuid") == uuid_:
                    return e
        time.sleep(0.05)
    raise AssertionError(f"no {event_type}; got {[e[1] for e in collector.events]}")


def test_create_and_delete_notify_start_and_end(api, service, qcow2_image):
    listener, collector = listen(service)
    try:
        u = str(uuid.uuid4())
        api.build_and_run_instance(service.conf.host, u, "n", FLAVOR, qcow2_image)
        assert wait_for(collector, "compute.instance.create.start", u)[0] == "info"
        assert wait_for(collector, "compute.instance.create.end", u)[0] == "info"
        api.terminate_instance(service.conf.host, u)
        wait_for(collector, "compute.instance.delete.start", u)
        wait_for(collector, "compute.instance.delete.end", u)
    finally:
        listener.stop()
        listener.wait()


def test_failed_create_notifies_error_with_reason(api, service):
    listener, collector = listen(service)
    try:
        u = str(uuid.uuid4())
        api.build_and_run_instance(service.conf.host, u, "n", FLAVOR, "missing-image")
        priority, _, payload = wait_for(collector, "compute.instance.create.error", u)
        assert priority == "error" and "not found" in payload["message"]
    finally:
        listener.stop()
        listener.wait()
