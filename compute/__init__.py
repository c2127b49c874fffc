"""The compute service: RPC server and client API, manager (state machine,
per-instance locking, orchestration), state database, resource reporting,
periodic tasks, configuration and the command-line entry points.

Importing the package settles how the libraries run, before any module of
it imports oslo.messaging: native threads only.
- oslo.service depends on eventlet, and it and futurist import eventlet
  whenever it is installed.  A failing import sends them down their
  thread-only paths and saves about 16 MB of resident memory (eventlet,
  dnspython, cryptography) and 0.4 s of start-up.  Left alone if something
  imported eventlet on purpose first.
- oslo.messaging imports oslo.service, whose default backend is eventlet:
  its threading backend is selected first."""
import sys

sys.modules.setdefault("eventlet", None)

from oslo_service import backend as _service_backend  # noqa: E402

if _service_backend.get_backend_type() is None:
    _service_backend.init_backend(_service_backend.BackendType.THREADING)
