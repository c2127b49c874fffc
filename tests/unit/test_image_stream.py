"""imagecache/stream.py: the file and the hash get every chunk, in order,
through a fixed set of buffers; a failing stage never blocks the reader
and its error reaches it."""
import hashlib
import io
import os
import threading

import pytest

from imagecache import stream


def receive_all(out, source):
    while True:
        buf = out.buffer()
        n = source.readinto(buf)
        if not n:
            out.give_back(buf)
            return
        out.put(buf, n)


def test_the_file_and_the_hash_get_every_byte_in_order_through_few_buffers(tmp_path):
    data = os.urandom(1000 * 1000 + 17)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        with stream.FileAndHash(fd, hashlib.sha512(), buffers=2, size=4096) as out:
            receive_all(out, io.BytesIO(data))       # 245 chunks through 2 buffers
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data
    assert out.hexdigest() == hashlib.sha512(data).hexdigest()


def test_without_a_hash_the_digest_is_none(tmp_path):
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    with stream.FileAndHash(fd, None, size=16) as out:
        receive_all(out, io.BytesIO(b"abc" * 10))
    os.close(fd)
    assert out.hexdigest() is None and (tmp_path / "f").read_bytes() == b"abc" * 10


def test_a_write_that_fails_reaches_the_reader_which_never_blocks(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    fd = os.open(tmp_path / "f", os.O_RDONLY)       # writes fail: EBADF
    raised = []

    def read_many():
        try:
            with stream.FileAndHash(fd, hashlib.sha256(), buffers=2, size=100) as out:
                receive_all(out, io.BytesIO(b"x" * 100_000))   # far more than the buffers
        except OSError as e:
            raised.append(e)
    t = threading.Thread(target=read_many)
    t.start()
    t.join(10)
    os.close(fd)
    assert not t.is_alive(), "the reader blocked on a failed stage"
    assert raised and raised[0].errno == 9


def test_the_reader_s_own_error_wins_and_the_stages_still_end(tmp_path):
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(ValueError, match="too large"):
        with stream.FileAndHash(fd, hashlib.sha256(), size=10) as out:
            buf = out.buffer()
            buf[:] = b"x" * 10
            out.put(buf, 10)
            raise ValueError("too large")
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"x" * 10
    assert not [t for t in threading.enumerate() if t.name in ("image-write", "image-hash")]
