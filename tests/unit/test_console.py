"""Reading the latest console output across virtlogd's rotation (pure file
logic)."""
import os

from privileged import logs


def _tail(directory, max_bytes):
    def open_log(name):
        path = os.path.join(directory, name)
        return open(path, "rb") if os.path.exists(path) else None
    return logs.tail(open_log, max_bytes)


def test_the_latest_bytes_span_a_rotation(tmp_path):
    (tmp_path / "console.log.1").write_text("oldest\n")
    (tmp_path / "console.log.0").write_text("a\nb\nc\n")
    (tmp_path / "console.log").write_text("d\n")
    assert _tail(str(tmp_path), 4) == "c\nd\n"
    assert _tail(str(tmp_path), 100) == "a\nb\nc\nd\n"     # not beyond .0
    assert _tail(str(tmp_path), 2) == "d\n"


def test_no_log_yet_is_empty(tmp_path):
    assert _tail(str(tmp_path), 100) == ""
    (tmp_path / "console.log.0").write_text("rotated\n")          # current not made yet
    assert _tail(str(tmp_path), 100) == "rotated\n"
