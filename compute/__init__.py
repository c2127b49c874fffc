"""The compute service: RPC server and client API, manager (state machine,
per-instance locking, orchestration), state database, resource reporting,
periodic tasks, configuration and the command-line entry points."""
