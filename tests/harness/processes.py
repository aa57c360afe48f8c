"""Kill a run's whole process tree, as a crash or ``kill -9`` of its host would (Linux /proc).

ansible-core 2.21 starts each WorkerProcess in a session of its own (``os.setsid``), so killing
ansible-playbook's process group leaves the worker and the module it runs alive. The tree is
found by parent ids instead, stopped first (SIGSTOP) so that no process forks or is reparented
while it is collected, then killed with SIGKILL.
"""

import os
import signal
import time


def parents():
    """``{pid: parent pid}`` of every process."""
    table = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/{0}/stat".format(pid)) as handle:
                table[int(pid)] = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return table


def tree(root):
    """``root`` and the ids of all its descendants."""
    table = parents()
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in table.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return found


def is_running(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open("/proc/{0}/stat".format(pid)) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def signal_all(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue


def command_line(pid):
    try:
        with open("/proc/{0}/cmdline".format(pid), "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def kill_tree(process, timeout=30):
    """SIGKILL ``process`` (a ``subprocess.Popen``) and every process under it; once all are gone,
    returns ``{pid: command line}`` of what was killed."""
    deadline = time.monotonic() + timeout
    stopped = set()
    while True:
        found = tree(process.pid)
        if found <= stopped:
            break
        signal_all(found - stopped, signal.SIGSTOP)
        stopped |= found
    killed = {pid: command_line(pid) for pid in stopped}
    signal_all(stopped, signal.SIGKILL)
    process.wait(timeout=max(0.1, deadline - time.monotonic()))
    while any(is_running(pid) for pid in stopped):
        assert time.monotonic() < deadline, "processes of the killed run still run: {0}".format(
            sorted(pid for pid in stopped if is_running(pid))
        )
        time.sleep(0.05)
    return killed
