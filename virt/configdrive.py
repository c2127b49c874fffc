"""The config drive image: an ISO 9660 filesystem labelled `config-2`
(what cloud-init's ConfigDrive datasource looks for) holding the files
compute.core.instance_data made, written with pycdlib (pure Python: no
genisoimage/xorriso process per guest, and no shell).

Rock Ridge and Joliet carry the real (lower-case, long) names; the plain
ISO 9660 names are the same paths at interchange level 4, which accepts
them.  The image is written beside its final name and renamed into place,
so a guest, or a reader on shared storage, never sees half a drive.
"""
import io
import os
import posixpath

LABEL = "config-2"
FILE_NAME = "disk.config"
FILE_MODE = 0o640
MAX_FILES = 64
_PATH_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def _check_path(path):
    parts = path.split("/")
    if not parts or any(not p or p in (".", "..") or not set(p) <= _PATH_CHARS
                        for p in parts):
        raise ValueError(f"config drive path {path!r} is not a plain relative path")
    return parts


def write(path, files):
    """Write an ISO holding files ({relative path: bytes}) at path."""
    import pycdlib  # loaded with the first drive, not at start

    if len(files) > MAX_FILES:
        raise ValueError(f"config drive: {len(files)} files, at most {MAX_FILES}")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    made = set()
    try:
        for rel in sorted(files):
            parts = _check_path(rel)
            for depth in range(1, len(parts)):
                d = "/" + "/".join(parts[:depth])
                if d not in made:
                    iso.add_directory(d, rr_name=parts[depth - 1], joliet_path=d)
                    made.add(d)
            data = files[rel]
            iso.add_fp(io.BytesIO(data), len(data), "/" + rel, rr_name=parts[-1],
                       joliet_path="/" + rel)
        tmp = f"{path}.tmp"
        iso.write(tmp)
    finally:
        iso.close()
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)


def read(path):
    """{relative path: bytes} of a config drive (tests and diagnostics)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(path)
    out = {}
    try:
        for root, _dirs, names in iso.walk(rr_path="/"):
            for name in names:
                full = posixpath.join(root, name)
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=full)
                out[full.lstrip("/")] = buf.getvalue()
    finally:
        iso.close()
    return out
