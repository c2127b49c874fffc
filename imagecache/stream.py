"""Where a download's bytes go, side by side: the caller's thread receives
into a buffer, one thread hashes it, another writes it to the file, and
the buffer comes back to be received into again.

- hashlib releases the GIL on large buffers, and so does os.write: the
  three run on both cores at once, each chunk going through the hash and
  then the write while the next one arrives;
- the buffers are a fixed set, allocated once per download and reused:
  the memory a download holds is bounded (BUFFERS x CHUNK, 24 MiB), a
  slow disk or hash slows the reader (it waits for a free buffer), and no
  chunk is a new object;
- the file is written WRITE_PIECE bytes per write(2) (see there);
- measured here (benchmarks/imagecache.py, 1 GiB with sha512 and the
  final fsync): 4.0-4.9 s with receive and write in one loop and the hash
  on its own thread, 4.2-4.4 s with the three apart but 4 MiB writes
  (57% of the agent's CPU time in the kernel's copy into large page-cache
  folios), 2.0-2.1 s with 256 KiB writes; curl | tee | openssl dgst
  beside it 2.9-3.7 s.  A write-back every 64 MiB (fdatasync) only made
  it slower: each one stalls the writer on this virtual disk.

A stage that fails passes its buffers on untouched, so the reader never
waits for ever; its error is raised at the reader's next buffer()."""
import os
import queue
import threading

CHUNK = 4 * 1024 * 1024
BUFFERS = 6
# A write(2) of 1 MiB or more lets the page cache take large folios, and
# allocating them stalled for seconds here (a 1 GiB file in 4 MiB writes
# took 0.2 to 3 s, in 256 KiB ones 0.22-0.25 s every time)
WRITE_PIECE = 256 * 1024


class Stage:
    """One consumer of (buffer, length) on a thread of its own, which hands
    each buffer on to `then` when done with it."""

    def __init__(self, name, consume, then):
        self._consume, self._then = consume, then
        self._queue = queue.SimpleQueue()      # bounded by the buffers there are
        self.error = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self):
        while (item := self._queue.get()) is not None:
            buf, n = item
            if self.error is None:
                try:
                    with memoryview(buf) as view:
                        self._consume(view[:n])
                except BaseException as e:         # noqa: BLE001 - raised at the reader
                    self.error = e
            self._then(buf, n)

    def put(self, buf, n):
        self._queue.put((buf, n))

    def close(self):
        """Wait until every buffer is through."""
        self._queue.put(None)
        self._thread.join()


def write_all(fd, piece=WRITE_PIECE):
    """A consumer writing the whole of each chunk to fd, piece bytes at a
    time."""
    def write(view):
        while view:
            view = view[os.write(fd, view[:piece]):]
    return write


class FileAndHash:
    """Received data to a file and a hash at once:

        with FileAndHash(fd, hasher) as out:
            buf = out.buffer()
            n = receive_into(buf)
            out.put(buf, n)           # or out.give_back(buf) at the end
        out.hexdigest()

    hasher None: written, not hashed.  Leaving the block waits until every
    buffer is written; a write or hash error is raised by buffer() or at
    the end (unless the block raised already)."""

    def __init__(self, fd, hasher=None, buffers=BUFFERS, size=CHUNK):
        self.hasher = hasher
        self._free = queue.SimpleQueue()
        for _ in range(buffers):
            self._free.put(bytearray(size))
        writer = Stage("image-write", write_all(fd), lambda buf, n: self._free.put(buf))
        self._stages = [writer]
        if hasher is not None:
            self._stages.insert(0, Stage("image-hash", hasher.update, writer.put))

    def _raise_failed(self):
        for stage in self._stages:
            if stage.error is not None:
                raise stage.error

    def buffer(self):
        """A free buffer to receive into (waits for one)."""
        self._raise_failed()
        return self._free.get()

    def put(self, buf, n):
        self._stages[0].put(buf, n)

    def give_back(self, buf):
        self._free.put(buf)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        for stage in self._stages:          # in order: each feeds the next
            stage.close()
        if exc_type is None:
            self._raise_failed()
        return False

    def hexdigest(self):
        return self.hasher.hexdigest() if self.hasher is not None else None
