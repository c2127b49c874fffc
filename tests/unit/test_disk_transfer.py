"""The agents' disk transfer over a real local socket: sparse, complete,
and refused or discarded whenever the peer or the data is not right."""
import hashlib
import hmac
import os
import socket
import threading

import pytest

from compute.parts import disk_transfer as dt
from virt import sparse

MiB = 1024 * 1024


def sparse_file(path, size=64 * MiB, extents=((0, b"head"), (32 * MiB, b"x" * MiB))):
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in extents:
            f.seek(offset)
            f.write(data)
    return path


def receiver(tmp_path, allowed=("disk", "disk.local"), max_bytes=1 << 40):
    return dt.Receiver(str(tmp_path / "dest"), allowed, max_bytes, "127.0.0.1", timeout=10)


def test_files_arrive_identical_and_sparse(tmp_path):
    src = sparse_file(tmp_path / "disk")
    local = sparse_file(tmp_path / "disk.local", 8 * MiB, ((MiB, b"eph"),))
    r = receiver(tmp_path)
    sent = dt.send("127.0.0.1", r.port, r.token, [("disk", src), ("disk.local", local)])
    assert r.wait(5) == ["disk", "disk.local"]
    for name, path in (("disk", src), ("disk.local", local)):
        got = tmp_path / "dest" / name
        assert got.read_bytes() == open(path, "rb").read()
    st = os.stat(tmp_path / "dest" / "disk")
    assert st.st_size == 64 * MiB and st.st_blocks * 512 < 8 * MiB      # holes stayed holes
    assert sent < 16 * MiB


def test_wrong_token_is_refused_and_nothing_is_written(tmp_path):
    r = receiver(tmp_path)
    with pytest.raises(dt.TransferError, match="refused"):
        dt.send("127.0.0.1", r.port, dt.new_token(), [("disk", sparse_file(tmp_path / "d"))])
    with pytest.raises(dt.TransferError, match="authentication"):
        r.wait(5)
    assert not os.path.exists(tmp_path / "dest")


def test_token_is_single_use(tmp_path):
    r = receiver(tmp_path)
    dt.send("127.0.0.1", r.port, r.token, [("disk", sparse_file(tmp_path / "disk"))])
    r.wait(5)
    with pytest.raises(OSError):
        dt.send("127.0.0.1", r.port, r.token, [("disk", str(tmp_path / "disk"))], timeout=2)


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "disk.swap", "console.log"])
def test_unexpected_names_are_refused(tmp_path, name):
    r = receiver(tmp_path)
    with pytest.raises(dt.TransferError, match="not expected"):
        dt.send("127.0.0.1", r.port, r.token, [(name, sparse_file(tmp_path / "f"))])
    with pytest.raises(dt.TransferError):
        r.wait(5)
    assert not os.path.exists(tmp_path / "dest")


def test_more_data_than_allowed_is_refused(tmp_path):
    r = receiver(tmp_path, max_bytes=MiB)
    full = [(name, sparse_file(tmp_path / name, 768 * 1024, ((0, b"x" * 768 * 1024),)))
            for name in ("disk", "disk.local")]
    with pytest.raises(dt.TransferError, match="more than"):
        dt.send("127.0.0.1", r.port, r.token, full)
    assert not os.path.exists(tmp_path / "dest")


def test_a_file_larger_than_its_disk_can_be_is_refused(tmp_path):
    r = receiver(tmp_path, max_bytes=512 * 1024)
    with pytest.raises(dt.TransferError, match="larger than its disk can be"):
        dt.send("127.0.0.1", r.port, r.token, [("disk", sparse_file(tmp_path / "disk"))])
    assert not os.path.exists(tmp_path / "dest")


def _authenticated(r):
    """A raw connection past the handshake, and the Sealer the sender holds."""
    sock = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    hello = sock.recv(len(dt.MAGIC) + 32, socket.MSG_WAITALL)
    challenge = hello[len(dt.MAGIC):]
    sock.sendall(hmac.digest(bytes.fromhex(r.token), challenge, hashlib.sha256))
    assert sock.recv(1) == b"\x01"
    return sock, dt.Sealer(r.token, challenge)


def file_frame(sealer, name=b"disk", size=4096):
    head = dt.FILE.pack(b"F", len(name), size)
    return head + sealer.seal(name, head)


def data_frame(sealer, offset, data):
    head = dt.DATA.pack(b"D", offset, len(data))
    return head + sealer.seal(data, head)


def end_frame(sealer):
    return b"Z" + sealer.seal(b"", b"Z")


def refused_with(r, sock, payload, reason):
    sock.sendall(payload)
    answer = sock.recv(4096)
    assert answer[:1] == b"\x00" and reason.encode() in answer, answer
    with pytest.raises(dt.TransferError, match=reason):
        r.wait(5)


def test_altered_data_is_detected_and_discarded(tmp_path):
    r = receiver(tmp_path)
    sock, sealer = _authenticated(r)
    frame = bytearray(data_frame(sealer, 0, b"good"))
    frame[dt.DATA.size] ^= 1                                  # one bit flipped on the way
    refused_with(r, sock, file_frame(sealer) + frame + end_frame(sealer), "checksum mismatch")
    assert not os.path.exists(tmp_path / "dest")


def test_a_dropped_frame_is_detected(tmp_path):
    r = receiver(tmp_path)
    sock, sealer = _authenticated(r)
    first = file_frame(sealer)
    data_frame(sealer, 0, b"lost")                            # sealed, never sent
    refused_with(r, sock, first + data_frame(sealer, 4, b"next") + end_frame(sealer),
                 "checksum mismatch")
    assert not os.path.exists(tmp_path / "dest")


def test_a_stream_cut_short_is_discarded(tmp_path):
    r = receiver(tmp_path)
    sock, sealer = _authenticated(r)
    sock.sendall(file_frame(sealer) + data_frame(sealer, 0, b"part"))
    sock.shutdown(socket.SHUT_WR)                             # no end frame
    with pytest.raises(dt.TransferError, match="closed mid-transfer"):
        r.wait(5)
    assert not os.path.exists(tmp_path / "dest")


def test_extent_outside_its_file_is_refused(tmp_path):
    r = receiver(tmp_path)
    sock, sealer = _authenticated(r)
    refused_with(r, sock, file_frame(sealer) + data_frame(sealer, 4094, b"abcd"), "outside")
    assert not os.path.exists(tmp_path / "dest")


def test_disk_data_never_crosses_the_wire_in_clear(tmp_path):
    """A relay between sender and receiver sees no byte of the disk."""
    marker = b"secret-guest-data-" * 64
    src = sparse_file(tmp_path / "disk", extents=((MiB, marker),))
    r = receiver(tmp_path)
    relay, wire = socket.create_server(("127.0.0.1", 0)), bytearray()

    def pump(a, b, record):
        while chunk := a.recv(65536):
            if record:
                wire.extend(chunk)
            b.sendall(chunk)
        b.shutdown(socket.SHUT_WR)

    def serve():
        client, _ = relay.accept()
        upstream = socket.create_connection(("127.0.0.1", r.port))
        back = threading.Thread(target=pump, args=(upstream, client, False))
        back.start()
        pump(client, upstream, True)
        back.join()
    t = threading.Thread(target=serve)
    t.start()
    dt.send("127.0.0.1", relay.getsockname()[1], r.token, [("disk", src)])
    t.join(5)
    assert r.wait(5) == ["disk"]
    assert (tmp_path / "dest" / "disk").read_bytes() == open(src, "rb").read()
    assert len(wire) > len(marker) and b"secret-guest-data" not in wire


def test_existing_directory_is_never_written_into(tmp_path):
    os.mkdir(tmp_path / "dest")
    (tmp_path / "dest" / "keep").write_text("mine")
    r = receiver(tmp_path)
    with pytest.raises(dt.TransferError):
        dt.send("127.0.0.1", r.port, r.token, [("disk", sparse_file(tmp_path / "disk"))])
    assert os.listdir(tmp_path / "dest") == ["keep"]


def test_existing_empty_directory_is_left_in_place(tmp_path):
    os.mkdir(tmp_path / "dest")
    r = receiver(tmp_path)
    with pytest.raises(dt.TransferError):
        dt.send("127.0.0.1", r.port, r.token, [("disk", sparse_file(tmp_path / "disk"))])
    assert os.path.isdir(tmp_path / "dest")


def test_local_copy_is_sparse_and_identical(tmp_path):
    src = sparse_file(tmp_path / "disk")
    sparse.copy_local(src, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == open(src, "rb").read()
    assert os.stat(tmp_path / "copy").st_blocks * 512 < 8 * MiB
