"""The compute service: RPC server and client API, manager (state machine,
per-instance locking, orchestration), state database, resource reporting,
periodic tasks, configuration and the command-line entry points."""
import warnings

# eventlet is installed as a dependency of oslo.service, and futurist imports
# it just to detect it; the agent never uses or monkey-patches it (native
# threads throughout, see compute.rpc), so its import-time warning is noise.
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")
