"""An RPC endpoint seen through a wrapper of its public methods: what
oslo.messaging's dispatcher uses (target, and a method by name), each
public method handed to the subclass's _around.  The metrics' timing and
the database-outage guard are two such wrappers."""


class EndpointWrapper:
    def __init__(self, endpoint):
        self._endpoint = endpoint
        self.target = getattr(endpoint, "target", None)

    def __getattr__(self, name):
        attr = getattr(self._endpoint, name)
        if name.startswith("_") or not callable(attr):
            return attr
        return self._around(name, attr)

    def _around(self, name, method):
        """A callable that runs method(*args, **kwargs) with the wrapper's work."""
        raise NotImplementedError
