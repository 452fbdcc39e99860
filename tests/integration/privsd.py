"""privsd.py: boot a private systemd (PID 1 of its own PID, mount and cgroup namespaces) for
integration tests, following /work/shared/reference/private-systemd.md exactly:

  * a unit directory holding only empty targets (plus drover-jobs.slice),
  * a per-run cgroup under this process's cgroup in every hierarchy except cpuset,
  * unshare --pid --fork --mount --mount-proc --cgroup running a boot script that makes mounts
    private, mounts tmpfs on /run and /tmp, unmounts /sys/fs/cgroup and execs systemd,
  * teardown by kill -9 of systemd's PID (never by name) and rmdir of the cgroups bottom-up.

Stdlib only. Usage:

    with PrivateSystemd("/path/to/workdir", "drover-test") as sd:
        sd.run(["systemctl", "list-units"], check=True)
"""

import os
import signal
import subprocess
import time

EMPTY_TARGETS = [
    "minimal.target", "sysinit.target", "basic.target", "shutdown.target", "local-fs.target",
    "swap.target", "umount.target", "timers.target", "sockets.target", "paths.target",
    "slices.target", "network.target", "network-online.target", "multi-user.target",
]

CGROUP_ROOT = "/sys/fs/cgroup"


def _own_cgroups():
    """{hierarchy dir under /sys/fs/cgroup: this process's path in it} for every mounted hierarchy
    (cgroup v1 controllers and named hierarchies, and the v2 "unified" one), cpuset excluded."""
    lines = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                lines.append(parts)
    result = {}
    try:
        entries = sorted(os.listdir(CGROUP_ROOT))
    except OSError:
        return result
    for d in entries:
        full = os.path.join(CGROUP_ROOT, d)
        if os.path.islink(full) or not os.path.isdir(full) or d == "cpuset":
            continue
        for hid, ctrls, path in lines:
            names = ctrls.split(",") if ctrls else []
            if (d == "unified" and hid == "0" and ctrls == "") or d in names or ("name=" + d) in names:
                result[d] = path
                break
    return result


class PrivateSystemd:
    """A private systemd 252 booted in its own namespaces. `pid` is systemd's PID as seen from
    the host (the child of the unshare process)."""

    def __init__(self, workdir, name):
        self.workdir = os.path.abspath(workdir)
        self.name = name
        self.unit_dir = os.path.join(self.workdir, "units")
        self.log_path = os.path.join(self.workdir, "systemd.log")
        self.script_path = os.path.join(self.workdir, "boot.sh")
        self.cgroups = []        # per-run cgroup directories we created
        self.pid = None
        self._unshare = None
        self._log = None

    # ---- setup ----
    def _write_units(self):
        os.makedirs(self.unit_dir, exist_ok=True)
        for t in EMPTY_TARGETS:
            with open(os.path.join(self.unit_dir, t), "w") as f:
                f.write("[Unit]\nDescription=%s\n" % t)
        with open(os.path.join(self.unit_dir, "drover-jobs.slice"), "w") as f:
            f.write("[Unit]\nDescription=drover jobs\n")

    def add_unit(self, name, text):
        """Add a real unit file (before start(), or followed by `systemctl daemon-reload`)."""
        os.makedirs(self.unit_dir, exist_ok=True)
        with open(os.path.join(self.unit_dir, name), "w") as f:
            f.write(text)

    def _make_cgroups(self):
        procs = []
        for hier, path in sorted(_own_cgroups().items()):
            d = os.path.join(CGROUP_ROOT, hier, path.lstrip("/"), self.name)
            if os.path.isdir(d):
                self._rmdir_tree(d)       # a stale one from a crashed run
            os.mkdir(d)
            self.cgroups.append(d)
            procs.append(os.path.join(d, "cgroup.procs"))
        return procs

    def _kept_tmp_paths(self):
        """Paths under /tmp both sides must see (a checkout, build dir or work dir that lives in
        /tmp): after the fresh tmpfs hides the host's /tmp they are bind-mounted back, one by one."""
        wanted = [self.workdir] + [os.environ.get(v) for v in ("DROVER_BUILD_DIR", "DROVER_SOURCE_DIR")]
        kept = []
        for p in wanted:
            if not p:
                continue
            p = os.path.realpath(p)
            if (p == "/tmp" or p.startswith("/tmp/")) and p not in kept:
                kept.append(p)
        # a parent covers its children
        return [p for p in kept if not any(p != q and p.startswith(q + "/") for q in kept)]

    def _write_script(self, procs):
        kept = self._kept_tmp_paths()
        tmp_lines = ["mount -t tmpfs tmpfs /tmp"]
        if kept:
            tmp_lines = ["mkdir -p /run/.drover-host-tmp", "mount --bind /tmp /run/.drover-host-tmp",
                         "mount -t tmpfs tmpfs /tmp"]
            for p in kept:
                rel = os.path.relpath(p, "/tmp")
                tmp_lines += ["mkdir -p %s" % _shquote(p),
                              "mount --bind %s %s" % (_shquote(os.path.join("/run/.drover-host-tmp", rel)), _shquote(p))]
            tmp_lines.append("umount -l /run/.drover-host-tmp")
        lines = ["#!/bin/sh", "# boot script of a private systemd (see private-systemd.md)", "set -e",
                 "mount --make-rprivate /",
                 "mount -t tmpfs tmpfs /run"] + tmp_lines + [
                 "umount -R /sys/fs/cgroup",
                 "exec env container=other SYSTEMD_PROC_CMDLINE=systemd.unified_cgroup_hierarchy=0 "
                 "SYSTEMD_UNIT_PATH=%s /lib/systemd/systemd --system --log-target=console "
                 "--unit=minimal.target" % _shquote(self.unit_dir)]
        with open(self.script_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        # the outer shell moves itself into the per-run cgroups, then becomes unshare
        outer = "".join("echo $$ > %s; " % _shquote(p) for p in procs)
        outer += "exec unshare --pid --fork --mount --mount-proc --cgroup /bin/sh %s" % _shquote(self.script_path)
        return outer

    def start(self, timeout=20):
        os.makedirs(self.workdir, exist_ok=True)
        self._write_units()
        try:
            procs = self._make_cgroups()
            outer = self._write_script(procs)
            self._log = open(self.log_path, "ab")
            self._unshare = subprocess.Popen(["/bin/sh", "-c", outer], stdin=subprocess.DEVNULL,
                                             stdout=self._log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._unshare.poll() is not None:
                    raise RuntimeError("private systemd exited early (rc %s):\n%s"
                                       % (self._unshare.returncode, self.log_tail()))
                if self.pid is None:
                    self.pid = self._child_of(self._unshare.pid)
                if self.pid is not None and \
                        os.path.exists("/proc/%d/root/run/systemd/private" % self.pid):
                    return self
                time.sleep(0.05)
            raise RuntimeError("private systemd did not come up in %ss:\n%s" % (timeout, self.log_tail()))
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _child_of(pid):
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    kids = f.read().split()
                if kids:
                    return int(kids[0])
        except OSError:
            pass
        return None

    # ---- use ----
    def _wrap(self, argv):
        if self.pid is None:
            raise RuntimeError("private systemd is not running")
        return ["nsenter", "-t", str(self.pid), "-m", "-p"] + list(argv)

    def run(self, argv, **kwargs):
        """subprocess.run() inside the namespaces (mount + pid)."""
        return subprocess.run(self._wrap(argv), **kwargs)

    def popen(self, argv, **kwargs):
        """subprocess.Popen() inside the namespaces, for long-running processes."""
        return subprocess.Popen(self._wrap(argv), **kwargs)

    def path(self, inner):
        """A path inside the namespace's mount tree, reachable from the host."""
        return "/proc/%d/root%s" % (self.pid, inner)

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-n:])

    # ---- teardown ----
    def stop(self):
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)   # as PID 1, SIGTERM means "re-execute"
            except ProcessLookupError:
                pass
        if self._unshare is not None:
            try:
                self._unshare.wait(timeout=20)
            except subprocess.TimeoutExpired:
                # systemd never appeared: kill the unshare process we started, by its PID
                try:
                    os.kill(self._unshare.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._unshare.wait()
            self._unshare = None
        self.pid = None
        if self._log is not None:
            self._log.close()
            self._log = None
        for d in reversed(self.cgroups):
            self._rmdir_tree(d)
        self.cgroups = []

    @staticmethod
    def _rmdir_tree(top, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            busy = False
            for root, dirs, _files in os.walk(top, topdown=False):
                try:
                    os.rmdir(root)
                except FileNotFoundError:
                    pass
                except OSError:
                    busy = True
            if not busy or time.monotonic() > deadline:
                return not busy
            time.sleep(0.1)

    def __enter__(self):
        if self.pid is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def _shquote(s):
    return "'" + s.replace("'", "'\\''") + "'"
