"""Who the agent runs as, and what it may do.

As a service the agent starts as agent_user with the ambient capabilities
its privsep daemons need (privileged.CAPABILITIES; systemd's User=,
AmbientCapabilities=, CapabilityBoundingSet=).  become() forks those
daemons, then drops every capability of the agent itself (effective,
permitted, inheritable, ambient) and sets no_new_privs, so nothing it
runs (qemu-img on an image service's bytes, say) can gain privilege back
through a setuid binary or file capabilities.

Started as root (by hand, or a test bed without setpriv), it first does
what systemd would: keeps those capabilities only (bounding set too),
takes agent_user's uid, gid and groups (among them the group of libvirt's
socket), then goes on as above.  agent_user empty: it stays root and the
privileged calls run in-process (not for production)."""
import ctypes
import grp
import logging
import os
import pwd

from oslo_privsep import capabilities

import privileged

LOG = logging.getLogger(__name__)
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
LAST_CAP = 40


class IdentityError(RuntimeError):
    """The agent could not become its configured user."""


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _prctl(*args):
    if _libc().prctl(*args, *[0] * (5 - len(args))) != 0:
        raise IdentityError(f"prctl{args}: errno {ctypes.get_errno()}")


def _own_dirs(entry, paths):
    for path in paths:
        if not os.path.exists(path):        # as systemd's StateDirectory= would
            os.makedirs(path, 0o751)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if os.stat(path).st_uid != entry.pw_uid:
            raise IdentityError(f"{path} is not owned by {entry.pw_name} (chown -R it)")


def state_files_refusal(files, uid, name):
    """Why the agent (uid, name) cannot start on these state files, or None:
    each one present must be its own (a SQLite file another user made, say
    root running computectl or compute-agent-manage before the agent's
    first start, cannot be written by the agent, which would die at its
    first write)."""
    for path in files:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if st.st_uid != uid:
            try:
                owner = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                owner = f"uid {st.st_uid}"
            return (f"{path} is owned by {owner}, not by {name}, which must write it "
                    f"(made by a tool run as {owner} before the agent's first start?): "
                    f"chown {name}: {path}")
    return None


def _root_to_user(entry):
    """setpriv --reuid --regid --init-groups, keeping privileged.CAPABILITIES."""
    keep = privileged.CAPABILITIES
    for cap in range(LAST_CAP + 1):
        if cap not in keep and _libc().prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 \
                and ctypes.get_errno() != 22:          # EINVAL: no such capability here
            raise IdentityError(f"cannot drop capability {cap} from the bounding set")
    groups = sorted({entry.pw_gid} | {g.gr_gid for g in grp.getgrall()
                                      if entry.pw_name in g.gr_mem})
    capabilities.set_keepcaps(True)
    os.setgroups(groups)
    os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
    os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
    capabilities.set_keepcaps(False)
    privileged.raise_ambient(keep)


def become(user, state_path, instances_path, state_files=(), **roots):
    """Start the privileged helpers and drop everything (see module doc);
    state_files: the state database's files, which must be the agent's;
    roots: the rest of privileged.configure's arguments."""
    privileged.configure(state_path, instances_path, **roots)
    if os.geteuid() == 0:
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
        _own_dirs(entry, (state_path, instances_path))
        why = state_files_refusal(state_files, entry.pw_uid, entry.pw_name)
        if why:
            raise IdentityError(why)
        _root_to_user(entry)
    elif user and pwd.getpwuid(os.geteuid()).pw_name != user:
        raise IdentityError(f"running as uid {os.geteuid()}, not as agent_user {user!r}")
    elif user:
        why = state_files_refusal(state_files, os.geteuid(), user)
        if why:
            raise IdentityError(why)
    effective, permitted, _ = capabilities.get_caps()
    missing = sorted(set(privileged.CAPABILITIES) - set(permitted))
    if missing:
        names = [capabilities.CAPS_BYVALUE.get(c, str(c)) for c in missing]
        raise IdentityError(f"the agent lacks {', '.join(names)}: start it with them as "
                            "ambient capabilities (etc/systemd/compute-agent.service)")
    privileged.start()
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    capabilities.drop_all_caps_except([], [], [])
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    name = pwd.getpwuid(os.geteuid()).pw_name
    os.environ.update(USER=name, LOGNAME=name)
    LOG.info("running as %s (uid %d, groups %s) with no capabilities; privsep daemons "
             "forked", name, os.geteuid(), os.getgroups())
