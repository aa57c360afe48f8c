"""Peak memory of the processes a benchmark run starts, read from /proc while it runs (Linux).

An Ansible module does not run in ansible-playbook's own process: the controller forks a worker per
task, and the worker starts a Python process for the module (``AnsiballZ_<module>.py``). So the
peak of a run is read per process: ``with PeakMemory() as peak: ...`` polls the descendants of this
process that appear after it starts (moto and the proxy, already running, are left out) and keeps
each one's ``VmHWM`` (its peak resident set); ``peak.report()`` gives the largest per kind, in MiB:
``module:<name>``, ``ansible-playbook`` (controller and its forked workers) or the script's name.
"""

import os
import threading
from pathlib import Path

PROC = Path("/proc")


def children_map():
    children = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    return children


def descendants(root, children, skip=()):
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in skip:
            continue
        found.append(pid)
        todo += children.get(pid, [])
    return found


def peak_kib(pid):
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def kind_of(pid):
    try:
        args = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    args = [arg.decode("utf-8", "replace") for arg in args if arg]
    for arg in args:
        name = os.path.basename(arg)
        if name.startswith("AnsiballZ_") and name.endswith(".py"):
            return "module:" + name[len("AnsiballZ_") : -3]
    if any(os.path.basename(arg) == "ansible-playbook" for arg in args):
        return "ansible-playbook"
    scripts = [os.path.basename(arg) for arg in args[1:] if arg.endswith(".py")]
    return scripts[0] if scripts else (os.path.basename(args[0]) if args else None)


class PeakMemory:
    def __init__(self, interval=0.2):
        self.interval = interval
        self.peaks = {}
        self.stop = threading.Event()
        self.thread = None
        self.existing = set()

    def poll(self):
        for pid in descendants(os.getpid(), children_map(), self.existing):
            kind, value = kind_of(pid), peak_kib(pid)
            if kind and value:  # keyed by kind too: VmHWM starts again when a process execs
                self.peaks[(pid, kind)] = max(self.peaks.get((pid, kind), 0), value)

    def run(self):
        while not self.stop.wait(self.interval):
            self.poll()

    def __enter__(self):
        self.existing = set(descendants(os.getpid(), children_map()))
        self.thread = threading.Thread(target=self.run, name="peak-memory", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def report(self):
        """``{kind: peak MiB}``, the largest process of each kind."""
        result = {}
        for (_pid, kind), kib in self.peaks.items():
            result[kind] = max(result.get(kind, 0.0), round(kib / 1024, 1))
        return dict(sorted(result.items()))
