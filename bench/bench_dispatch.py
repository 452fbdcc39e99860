#!/usr/bin/python3
"""bench_dispatch.py: dispatch latency of drover, end to end through the real parts.

Boots a private systemd, a drover-controller and one drover-agent (tests/integration/drover_harness.py),
creates an inventory (localhost, local connection), a project with a playbook running `command: sleep 2`
and a job template, then launches the template N times, one after the other. For each launch:

    latency = ActiveEnterTimestampMonotonic of drover-job-<id>.service (recorded by the private systemd)
              - time.monotonic() taken right before the launch POST

i.e. from the API call to the job's transient unit being active (controller scheduling, the agent's
long-poll answer, project cache, job directory, StartTransientUnit, fork/exec). CLOCK_MONOTONIC is shared
with the private systemd's namespaces (there is no time namespace); this is checked once at start-up
against a transient unit started from here. Since the figure is systemd's own timestamp, how often we
look only decides when the next launch can start: by default we watch the unit's cgroup directory from
the host (no process spawned) and read the timestamp with one `systemctl show` once it exists
(--poll systemctl: `systemctl show` every --poll-ms instead). Each job is let finish (default) or
canceled (--after cancel) and waited for until final, then --gap-ms pass, so every launch finds an
idle node. Prints p50/p90/p99/max in ms and the environment. Prints figures; never asserts timing.
Needs root. See docs/benchmarks.md.

    DROVER_BUILD_DIR=/work/main/build-bench python3 bench/bench_dispatch.py [-n 100]

Also used by bench_ingest.py (BenchEnv, environment()).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)


def _import_harness(build_dir=None):
    """Import drover_harness with DROVER_BUILD_DIR set (the harness reads it at import time)."""
    if build_dir:
        os.environ["DROVER_BUILD_DIR"] = os.path.abspath(build_dir)
    if not os.environ.get("DROVER_BUILD_DIR"):
        sys.exit("set DROVER_BUILD_DIR (or --build-dir) to a drover build directory, e.g. a Release build "
                 "made with: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DDROVER_BUILD_TESTS=OFF")
    os.environ.setdefault("DROVER_SOURCE_DIR", SOURCE_DIR)
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
    import drover_harness  # noqa: E402
    return drover_harness


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def _cmake_cache(build_dir, key):
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return None


def environment(build_dir):
    """A dict describing the machine and the build, printed with every result."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = " ".join("%.2f" % x for x in os.getloadavg())
    except OSError:
        load = "?"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "loadavg": load,
        "build_dir": build_dir,
        "build_type": _cmake_cache(build_dir, "CMAKE_BUILD_TYPE") or "(none)",
        "sanitizers": _cmake_cache(build_dir, "DROVER_SANITIZE") or "OFF",
        "python": platform.python_version(),
    }


def print_environment(env):
    print("environment:")
    for k, v in env.items():
        if k == "loadavg":
            k, v = "loadavg", "%s at start, %s at end" % (v, " ".join("%.2f" % x for x in os.getloadavg()))
        print("  %-11s %s" % (k + ":", v))


class BenchEnv:
    """Private systemd + controller + one agent, with the daemons at `log_level` (info by default:
    production-like; the test harness uses debug). Objects: inventory with localhost, a project in
    the controller's projects_root holding `playbooks`, templates made by template()."""

    def __init__(self, name, playbooks, log_level="info", agent_config="", keep=False):
        self.h = _import_harness()
        self.name, self.playbooks, self.log_level = name, playbooks, log_level
        self.agent_config, self.keep = agent_config, keep
        self.psd = self.controller = self.agent = None
        self.transient_404 = 0

    def __enter__(self):
        h = self.h
        if os.geteuid() != 0:
            sys.exit("benchmarks need root (they boot a private systemd)")
        for b in (h.CONTROLLER_BIN, h.AGENT_BIN):
            if not os.access(b, os.X_OK):
                sys.exit("%s is missing: build it first (cmake --build %s)" % (b, h.BUILD_DIR))
        base = os.path.join(h.BUILD_DIR, "bench-runs")
        os.makedirs(base, exist_ok=True)
        self.workdir = tempfile.mkdtemp(prefix=self.name + "-", dir=base)
        self.psd = h.privsd.PrivateSystemd(os.path.join(self.workdir, "systemd"),
                                           "drover-" + os.path.basename(self.workdir))
        try:
            self.psd.start()
            self.controller = _controller_class(h)(self.workdir, log_level=self.log_level).start()
            self.api = self.controller.api
            d = os.path.join(self.controller.projects_root, "bench")
            os.makedirs(d, exist_ok=True)
            for fname, text in self.playbooks.items():
                with open(os.path.join(d, fname), "w") as f:
                    f.write(text)
            self.agent = _agent_class(h)(self.psd, self.controller, self.workdir, name="bench1",
                                         extra_config=self.agent_config, log_level=self.log_level).start()
            api = self.api
            self.org = api.ok("GET", "/api/v2/organizations/?name=Default")["results"][0]
            self.inventory = api.ok("POST", "/api/v2/inventories/",
                                    {"name": "bench", "organization": self.org["id"]})
            api.ok("POST", "/api/v2/hosts/", {
                "name": "localhost", "inventory": self.inventory["id"],
                "variables": json.dumps({"ansible_connection": "local",
                                         "ansible_python_interpreter": "/usr/bin/python3"})})
            self.project = api.ok("POST", "/api/v2/projects/", {
                "name": "bench", "organization": self.org["id"], "scm_type": "", "local_path": "bench"})
        except BaseException:
            self.dump_logs()
            self.stop()
            raise
        return self

    def template(self, playbook, **fields):
        body = {"name": "%s-%d" % (playbook, time.monotonic_ns()), "inventory": self.inventory["id"],
                "project": self.project["id"], "playbook": playbook, "organization": self.org["id"]}
        body.update(fields)
        return self.api.ok("POST", "/api/v2/job_templates/", body)

    def launch(self, template, body=None):
        status, job, _ = self.api.post("/api/v2/job_templates/%d/launch/" % template["id"], body or {})
        if status != 201:
            raise self.h.ApiError("launch -> %d %r" % (status, job))
        return job

    def wait_job(self, job_id, timeout=120, interval=0.02, statuses=None):
        statuses = statuses or self.h.FINAL

        def done():
            return self.get_job(job_id, statuses)
        return self.h.wait_for("job %d to reach %s" % (job_id, statuses), done, timeout=timeout, interval=interval)

    def get_job(self, job_id, statuses=None):
        """The job if its status is in statuses (any status if None), else None. A 404 for a job that
        exists is counted in transient_404 and treated as "not yet" (seen while the controller
        updates the job)."""
        status, j, _ = self.api.get("/api/v2/jobs/%d/" % job_id)
        if status == 404:
            self.transient_404 += 1
            return None
        if status != 200:
            raise self.h.ApiError("GET /api/v2/jobs/%d/ -> %d %r" % (job_id, status, j))
        return j if statuses is None or j["status"] in statuses else None

    def dump_logs(self, out=sys.stderr):
        if self.agent:
            out.write("---- agent log (tail) ----\n%s\n" % self.agent.log_tail())
        if self.controller:
            out.write("---- controller log (tail) ----\n%s\n" % self.controller.log_tail())
        if self.psd and self.psd.pid:
            out.write("---- systemd log (tail) ----\n%s\n" % self.psd.log_tail())

    def stop(self):
        if self.agent:
            self.agent.stop()
        if self.controller:
            self.controller.stop()
        if self.psd:
            self.psd.stop()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and exc_type not in (KeyboardInterrupt, SystemExit):
            self.dump_logs()
        self.stop()
        if exc_type is None and not self.keep:
            import shutil
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            sys.stderr.write("work directory kept: %s\n" % self.workdir)
        return False


def _controller_class(h):
    class BenchController(h.Controller):
        def __init__(self, workdir, log_level="info", **kw):
            super().__init__(workdir, **kw)
            self.log_level = log_level

        def write_config(self):
            super().write_config()
            with open(self.config_path) as f:
                text = f.read()
            with open(self.config_path, "w") as f:
                f.write(text.replace("log_level: debug\n", "log_level: %s\n" % self.log_level))
    return BenchController


def _agent_class(h):
    class BenchAgent(h.Agent):
        """Agent with a configurable log level (same start-up as the harness's Agent)."""

        def __init__(self, *a, log_level="info", **kw):
            super().__init__(*a, **kw)
            self.log_level = log_level

        def start(self, enroll=True):
            tok = self.controller.api.ok("POST", "/api/v2/instances/enrollment_tokens/", {"hostname": self.name})
            with open(self.config_path, "w") as f:
                f.write("controller_url: %s\n" % self.controller.base)
                f.write("ca_file: %s\n" % self.controller.ca_file)
                f.write("enrollment_token: %s\n" % tok["token"])
                f.write("node_name: %s\n" % self.name)
                f.write("state_dir: %s\n" % self.state_dir)
                f.write("share_dir: %s\n" % os.path.join(h.SOURCE_DIR, "agent"))
                f.write("log_level: %s\n" % self.log_level)
                f.write("keep_job_dirs: %s\n" % ("true" if self.keep_job_dirs else "false"))
                f.write(self.extra_config)
            self.log = open(self.log_path, "ab")
            self.proc = self.psd.popen([h.AGENT_BIN, "--config", self.config_path],
                                       stdout=self.log, stderr=self.log)

            def ready():
                if self.proc.poll() is not None:
                    raise AssertionError("agent exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
                res = self.controller.api.ok("GET", "/api/v2/instances/?hostname=%s" % self.name)["results"]
                return res and res[0].get("node_state") == "ready" and res[0]
            self.instance = h.wait_for("agent %s to be ready" % self.name, ready, timeout=30)
            return self
    return BenchAgent


# ---------------------------------------------------------------------------------------------

SLEEP_PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks:
    - name: sleep
      command: sleep 2
"""


def unit_timestamps(psd, unit):
    """(ActiveEnterTimestampMonotonic, InactiveExitTimestampMonotonic) of a unit in the private systemd,
    in seconds (0 while not reached)."""
    out = psd.run(["systemctl", "show", unit, "-p", "ActiveEnterTimestampMonotonic",
                   "-p", "InactiveExitTimestampMonotonic"], capture_output=True, text=True).stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    try:
        return (int(props.get("ActiveEnterTimestampMonotonic", "0")) / 1e6,
                int(props.get("InactiveExitTimestampMonotonic", "0")) / 1e6)
    except ValueError:
        return 0.0, 0.0


def unit_active_enter(psd, unit):
    """ActiveEnterTimestampMonotonic of a unit in the private systemd, in seconds (0 if never active)."""
    return unit_timestamps(psd, unit)[0]


def unit_cgroup_parent(psd, unit):
    """The host path of the directory (in the name=systemd hierarchy) holding the cgroup of `unit`
    and its siblings (the jobs' slice), or None if not found."""
    out = psd.run(["systemctl", "show", unit, "-p", "ControlGroup", "--value"], capture_output=True,
                  text=True).stdout.strip()
    if not out.startswith("/"):
        return None
    for d in psd.cgroups:
        cand = os.path.dirname(d.rstrip("/") + out)
        if "/systemd/" in d and os.path.isdir(cand):
            return cand
    return None


def check_shared_clock(psd):
    """Start a transient unit from here and check that its ActiveEnterTimestampMonotonic lies between
    our CLOCK_MONOTONIC readings before and after (i.e. the clocks are the same)."""
    unit = "drover-bench-clock-%d.service" % os.getpid()
    t_before = time.monotonic()
    psd.run(["systemd-run", "--unit", unit, "-p", "RemainAfterExit=yes", "--quiet", "/bin/true"],
            check=True, capture_output=True)
    t_after = time.monotonic()
    ts = unit_active_enter(psd, unit)
    inner = float(psd.run(["python3", "-c", "import time; print(time.monotonic())"],
                          capture_output=True, text=True, check=True).stdout)
    t_end = time.monotonic()
    psd.run(["systemctl", "stop", unit], capture_output=True)
    ok = t_before <= ts <= t_after and t_after <= inner <= t_end
    print("clock check: host %.6f <= unit active %.6f <= host %.6f; host %.6f <= inside %.6f <= host %.6f: %s"
          % (t_before, ts, t_after, t_after, inner, t_end, "shared" if ok else "NOT SHARED"))
    return ok


def run(args):
    env = environment(os.environ["DROVER_BUILD_DIR"])
    with BenchEnv("dispatch", {"sleep.yml": SLEEP_PLAYBOOK}, log_level=args.log_level, keep=args.keep) as b:
        if not check_shared_clock(b.psd):
            sys.exit("CLOCK_MONOTONIC differs between here and the private systemd: cannot measure")
        tmpl = b.template("sleep.yml")
        latencies, post_times, starting, stuck, failed = [], [], [], [], []
        cg_parent = None        # host path of the directory holding job units' cgroups (--poll cgroup)
        total = args.warmup + args.n
        for i in range(total):
            t0 = time.monotonic()
            job = b.launch(tmpl)
            t_posted = time.monotonic()
            unit = "drover-job-%d.service" % job["id"]
            deadline = t0 + args.timeout
            next_check = t0 + 1.0
            ts = ts_starting = 0.0
            problem = None
            while True:
                # Cheap check first: the unit's cgroup directory, seen from the host (no process
                # spawned); systemctl only once it exists (or always, with --poll systemctl).
                if cg_parent is None or os.path.isdir(os.path.join(cg_parent, unit)):
                    ts, ts_starting = unit_timestamps(b.psd, unit)
                    if ts:
                        break
                now = time.monotonic()
                if now > next_check:    # a job that ended without its unit becoming active
                    j = b.get_job(job["id"], b.h.FINAL)
                    if j:
                        problem = "ended %s without an active unit: %s" % (j["status"], j.get("job_explanation"))
                        break
                    next_check = now + 1.0
                if now > deadline:
                    problem = "unit not active after %g s" % args.timeout
                    break
                time.sleep(args.poll_ms / 1000.0)
            if not problem and cg_parent is None and args.poll == "cgroup":
                cg_parent = unit_cgroup_parent(b.psd, unit)
                if args.verbose:
                    print("polling the cgroup directory %s" % cg_parent)
            if problem:
                failed.append((job["id"], problem))
                print("job %d: %s; not counted" % (job["id"], problem), file=sys.stderr)
                if len(failed) > args.max_failures:
                    raise RuntimeError("too many failed launches (%d)" % len(failed))
            else:
                lat = ts - t0
                if i >= args.warmup:
                    latencies.append(lat)
                    post_times.append(t_posted - t0)
                    starting.append(ts - ts_starting)
                if args.verbose:
                    print("job %d: %.1f ms (POST answered after %.1f ms, unit starting -> active %.1f ms)%s"
                          % (job["id"], lat * 1000, (t_posted - t0) * 1000, (ts - ts_starting) * 1000,
                             " [warm-up]" if i < args.warmup else ""))
            if args.after == "cancel" and not problem:
                b.api.ok("POST", "/api/v2/jobs/%d/cancel/" % job["id"])
            try:
                final = b.wait_job(job["id"], timeout=args.final_timeout, interval=0.1)
                if args.verbose and final["status"] != ("canceled" if args.after == "cancel" else "successful"):
                    print("job %d ended %s" % (job["id"], final["status"]))
            except (AssertionError, b.h.ApiError) as e:
                # not a figure of this benchmark, but worth knowing: go on with the next launch
                stuck.append(job["id"])
                print("job %d: not final after %s (%s); continuing" % (job["id"], args.after, e), file=sys.stderr)
            time.sleep(args.gap_ms / 1000.0)

        transient_404 = b.transient_404

    ms = [x * 1000 for x in latencies]
    print()
    print("drover dispatch latency: launch POST -> job unit active (ActiveEnterTimestampMonotonic)")
    print("  jobs measured: %d sequential (after %d warm-up), each %s before the next launch, poll (%s) every %g ms"
          % (len(ms), args.warmup, "canceled and final" if args.after == "cancel" else "finished",
             args.poll, args.poll_ms))
    if transient_404:
        print("  WARNING: GET /api/v2/jobs/<id>/ answered 404 %d times for existing jobs (retried)" % transient_404)
    if failed:
        print("  WARNING: %d launches did not give an active unit (not counted):" % len(failed))
        for jid, why in failed:
            print("    job %d: %s" % (jid, why))
    if stuck:
        print("  WARNING: %d jobs did not become final after %s within %g s: %s"
              % (len(stuck), args.after, args.final_timeout, " ".join(map(str, stuck))))
    if not ms:
        print("  no launch could be measured")
        print_environment(env)
        return
    print("  p50 %.1f ms   p90 %.1f ms   p99 %.1f ms   max %.1f ms   (min %.1f, mean %.1f)"
          % (percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), max(ms), min(ms), statistics.mean(ms)))
    pm = [x * 1000 for x in post_times]
    print("  launch POST answered after: p50 %.1f ms, p99 %.1f ms" % (percentile(pm, 50), percentile(pm, 99)))
    sm = [x * 1000 for x in starting]
    print("  of which the unit's own start (InactiveExit -> ActiveEnter, systemd fork/exec): p50 %.1f ms, "
          "p99 %.1f ms" % (percentile(sm, 50), percentile(sm, 99)))
    print("  goal: p99 < 50 ms -> %s" % ("met" if percentile(ms, 99) < 50 else "NOT met"))
    print_environment(env)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"latencies_ms": ms, "post_ms": pm, "unit_start_ms": sm, "environment": env}, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=100, help="measured launches (default 100)")
    p.add_argument("--warmup", type=int, default=1, help="launches not counted (default 1: first project fetch)")
    p.add_argument("--poll-ms", type=float, default=2.0,
                   help="pause between two looks for the unit (default 2 ms); the figure comes from systemd's "
                        "timestamp, so this only affects how soon the next launch starts")
    p.add_argument("--poll", choices=("cgroup", "systemctl"), default="cgroup",
                   help="how to notice the unit: watch its cgroup directory from the host and then read "
                        "the timestamp with one systemctl call (default; spawns almost nothing), or run "
                        "systemctl show every --poll-ms (one nsenter+systemctl per poll, which takes CPU "
                        "from the daemons measured)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a unit (default 30)")
    p.add_argument("--after", choices=("cancel", "wait"), default="wait",
                   help="after measuring, let the job finish (sleep 2; default) or cancel it; either way "
                        "the next launch waits until the job is final")
    p.add_argument("--gap-ms", type=float, default=100.0,
                   help="pause after a job is final before the next launch (default 100 ms)")
    p.add_argument("--max-failures", type=int, default=10,
                   help="give up after this many launches without an active unit (default 10)")
    p.add_argument("--final-timeout", type=float, default=15.0,
                   help="seconds to wait for a job to be final before going on (default 15)")
    p.add_argument("--log-level", default="info", help="controller and agent log level (default info)")
    p.add_argument("--build-dir", help="drover build directory (default $DROVER_BUILD_DIR)")
    p.add_argument("--json", help="also write the raw figures to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("-v", "--verbose", action="store_true", help="print every job")
    args = p.parse_args()
    _import_harness(args.build_dir)
    run(args)


if __name__ == "__main__":
    main()
