"""Files a privileged entry point opens for its caller: always relative
to a root's directory fd (privileged.root_fd), one name at a time, never
following a link (O_NOFOLLOW on each step), and then checked on the open
descriptor itself (fstat: a regular file, one link, an expected owner),
so what was checked is what is read: no path is resolved twice, and a
symlink or hard link planted by the caller leads nowhere."""
import os
import stat

from privileged import Refused

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _name(value):
    if not isinstance(value, str) or value in ("", ".", "..") or "/" in value \
            or "\0" in value:
        raise Refused(f"file name {value!r} refused")
    return value


def open_dir(parent_fd, name, owners):
    """The fd of directory `name` in parent_fd, owned by one of owners."""
    try:
        fd = os.open(_name(name), DIR_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        raise Refused(f"directory {name!r}: {e.strerror}") from None
    st = os.fstat(fd)
    if st.st_uid not in owners:
        os.close(fd)
        raise Refused(f"directory {name!r} is owned by uid {st.st_uid}")
    return fd


def open_regular(dir_fd, name, owners):
    """An open file object of regular file `name` in dir_fd, with one link
    and owned by one of owners; None when it does not exist."""
    try:
        fd = os.open(_name(name), FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:           # ELOOP: a symlink
        raise Refused(f"file {name!r}: {e.strerror}") from None
    st = os.fstat(fd)
    why = None
    if not stat.S_ISREG(st.st_mode):
        why = "is not a regular file"
    elif st.st_nlink != 1:
        why = f"has {st.st_nlink} links"
    elif st.st_uid not in owners:
        why = f"is owned by uid {st.st_uid}"
    if why:
        os.close(fd)
        raise Refused(f"file {name!r} {why}")
    return os.fdopen(fd, "rb")
