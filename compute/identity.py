"""Who the agent runs as.  Started as root, the agent forks its privsep
daemons (privileged.start) and then becomes agent_user for good: that
user's groups (among them the one of libvirt's socket), its uid and gid
(real, effective and saved), no capability in any set, and
no_new_privs, so nothing it runs (qemu-img on an image service's bytes,
say) can gain privilege back through a setuid binary or file
capabilities.  Started as another user, it checks it holds no
capability and leaves the privileged calls to run in-process, where
they will fail cleanly."""
import ctypes
import grp
import logging
import os
import pwd

from oslo_privsep import capabilities

import privileged

LOG = logging.getLogger(__name__)
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4


class IdentityError(RuntimeError):
    """The agent could not become its configured user."""


def become(user, state_path, instances_path, uplinks):
    """Start the privileged helpers and drop to user (see module doc)."""
    privileged.configure(state_path, instances_path, uplinks)
    if os.geteuid() != 0:
        LOG.info("running as uid %d: the privileged helpers run in-process", os.geteuid())
        privileged.run_in_process()
        return
    if not user:
        LOG.warning("agent_user is empty: the agent stays root")
        privileged.run_in_process()
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise IdentityError(f"agent_user {user!r} does not exist (tools/install.sh "
                            "creates it)") from None
    if entry.pw_uid == 0:
        raise IdentityError(f"agent_user {user!r} is root")
    for path in (state_path, instances_path):
        if not os.path.exists(path):        # as systemd's StateDirectory= would
            os.makedirs(path, 0o750)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if os.stat(path).st_uid != entry.pw_uid:
            raise IdentityError(f"{path} is not owned by {user} (chown -R it)")
    privileged.start()
    groups = sorted({entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem})
    os.setgroups(groups)
    os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
    os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    capabilities.drop_all_caps_except([], [], [])
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise IdentityError(f"no_new_privs: errno {ctypes.get_errno()}")
    os.environ.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    LOG.info("running as %s (uid %d, groups %s), no capabilities", user, entry.pw_uid, groups)
