#!/usr/bin/env python3
"""Times container runtimes for scripts/bench-run, in one process, interleaved.

Each iteration runs every case once, in turn, so that a change in the machine's load touches
all of them alike. A case is either one command (`run`) or the engines' cycle (`create`,
`start`, a wait until the container's process has exited, `delete`). For each run it records the
wall time from the spawn of the first command to the exit of the last, and the CPU time (user +
system) that wait4 reports for the commands, which includes the children each of them waited
for. Nothing of the harness's own is counted: commands are started with posix_spawn, no shell.

crun refuses this hybrid cgroup host, so its commands run in a mount namespace prepared once
(cgroup2 at /sys/fs/cgroup, made by a helper process): the harness enters it with setns before
spawning crun and returns before spawning the others, and crun pays for nothing it would not pay
on a cgroup2 host.

  bench-run-time.py ITERATIONS BUNDLE ACCELGATE [STATIC_ACCELGATE]
Prints, per case, "name<TAB>wall_ms<TAB>cpu_ms" (medians). Pid files and the runtimes' output
(bench.log) go into BUNDLE's parent directory.
"""

import ctypes
import os
import select
import statistics
import subprocess
import sys
import time

CLONE_NEWNS = 0x00020000
libc = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    if libc.setns(fd, CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class Namespaces:
    """The host's mount namespace and crun's, as fds the harness enters in turn."""

    def __init__(self):
        self.host = os.open("/proc/self/ns/mnt", os.O_RDONLY)
        ready_r, ready_w = os.pipe()
        # The helper makes the namespace, mounts cgroup2, says so, and holds the namespace
        # until its stdin ends: when the harness closes it, or dies.
        self.helper = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             "umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup "
             f"&& echo >&{ready_w} && exec cat >/dev/null"],
            pass_fds=[ready_w], stdin=subprocess.PIPE)
        os.close(ready_w)
        if not os.read(ready_r, 1):
            raise SystemExit("could not prepare crun's mount namespace")
        os.close(ready_r)
        self.crun = os.open(f"/proc/{self.helper.pid}/ns/mnt", os.O_RDONLY)

    def close(self):
        self.helper.stdin.close()
        self.helper.wait()


def spawn(argv, log):
    pid = os.posix_spawnp(argv[0], argv, os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, log, 1),
                                        (os.POSIX_SPAWN_DUP2, log, 2)])
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed (see the log)")
    return usage.ru_utime + usage.ru_stime


def wait_exit(pid):
    """Waits until the container's process has exited (a pidfd polls readable then, reaped or
    not: this VM's init reaps no orphans, and runtimes count a zombie as exited too)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll()
    finally:
        os.close(pidfd)


class Case:
    def __init__(self, name, runtime, bundle, cycle=False, namespace=None, run_id=True):
        self.name, self.runtime, self.bundle = name, runtime, bundle
        self.cycle, self.namespace, self.run_id = cycle, namespace, run_id
        self.walls, self.cpus = [], []

    def once(self, index, log):
        cid = f"bench-{os.getpid()}-{index}-{self.name.replace(' ', '-').replace(',', '')}"
        start = time.perf_counter()
        if not self.cycle:
            # `accelgate run` takes no container id: it names the sandbox after the bundle.
            cpu = spawn(self.runtime + ["run", "--bundle", self.bundle]
                        + ([cid] if self.run_id else []), log)
        else:
            pid_file = os.path.join(os.path.dirname(self.bundle), f"{cid}.pid")
            cpu = spawn(self.runtime + ["create", "--bundle", self.bundle, "--pid-file",
                                        pid_file, cid], log)
            with open(pid_file) as f:
                pid = int(f.read())
            os.unlink(pid_file)
            try:
                cpu += spawn(self.runtime + ["start", cid], log)
                wait_exit(pid)
            except BaseException:
                # Nothing left behind: the created container goes, whatever state it is in.
                subprocess.run(self.runtime + ["delete", "--force", cid], stdout=log,
                               stderr=log, check=False)
                raise
            cpu += spawn(self.runtime + ["delete", cid], log)
        if index >= 0:
            self.walls.append(time.perf_counter() - start)
            self.cpus.append(cpu)


def main():
    iterations, bundle, accelgate = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    static = sys.argv[4] if len(sys.argv) > 4 else None
    limited = os.path.join(bundle, "limited")
    namespaces = Namespaces()
    crun = ["crun", "--cgroup-manager=disabled"]
    cases = [
        Case("accelgate run", [accelgate], bundle, run_id=False),
        Case("accelgate run, limits", [accelgate], limited, run_id=False),
    ]
    if static:
        cases.append(Case("accelgate run, static", [static], bundle, run_id=False))
    cases += [
        Case("runc run", ["runc"], bundle),
        Case("crun run", crun, bundle, namespace=namespaces.crun),
        Case("accelgate create..delete", [accelgate], bundle, cycle=True),
        Case("runc create..delete", ["runc"], bundle, cycle=True),
        Case("crun create..delete", crun, bundle, cycle=True, namespace=namespaces.crun),
    ]
    log = os.open(os.path.join(os.path.dirname(bundle), "bench.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for index in range(-1, iterations):  # -1 warms the page cache and is not counted
            for case in cases:
                if case.namespace is not None:
                    setns(case.namespace)
                try:
                    case.once(index, log)
                finally:
                    if case.namespace is not None:
                        setns(namespaces.host)
    finally:
        namespaces.close()
    for case in cases:
        print(f"{case.name}\t{statistics.median(case.walls) * 1e3:.2f}"
              f"\t{statistics.median(case.cpus) * 1e3:.2f}")


if __name__ == "__main__":
    main()
