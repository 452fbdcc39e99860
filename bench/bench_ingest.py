#!/usr/bin/python3
"""bench_ingest.py: job event ingestion through the real agent and controller.

Boots a private systemd, a drover-controller and one drover-agent whose `ansible_playbook` is
bench/fake-ansible-playbook: a stand-in that writes N ansible-runner shaped events (playbook_on_start,
play and task starts, runner_on_ok events of ~850 bytes with parent links, playbook_on_stats last) to the
job's events file ($DROVER_EVENTS_FILE) as fast as it can and exits 0. N is passed as the template's
extra variable `drover_bench_events` (the assignment's `env` cannot be set through the API).

Everything after the file is real: the agent follows the file (inotify), uploads batches to
POST /api/agent/v1/jobs/<id>/events, the controller stores them in SQLite and acknowledges, the agent
records the acknowledged offset in <job dir>/ack and finally sends the result. Figures:

  * end to end: from the launch POST (and from the fake playbook's start) until the job is final with
    event_processing_finished true and /api/v2/jobs/<id>/job_events/ counts N;
  * drain: from the moment the events file was completely written (timestamp written by the fake
    playbook) until the agent's ack file says N: the rate of the events not yet acknowledged then;
  * the writer's own rate (to show it was not the bottleneck) and the CPU time of both daemons;
  * bench/bench-storage-ingest (storage only, no HTTP/agent), if built, for comparison.

Prints figures; never asserts timing. Needs root. See docs/benchmarks.md.

    DROVER_BUILD_DIR=/work/main/build-bench python3 bench/bench_ingest.py [-n 200000]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_dispatch as bd  # noqa: E402  (BenchEnv, environment)

FAKE_PLAYBOOK = os.path.join(HERE, "fake-ansible-playbook")
NOOP_PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks: []
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds; None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def child_pid(pid):
    """The first child of pid (the agent under its nsenter wrapper)."""
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
    except OSError:
        pass
    return None


def read_ack(path):
    """(offset, counter) from the agent's ack file, or (0, 0)."""
    try:
        with open(path) as f:
            parts = f.read().split()
        return int(parts[0]), int(parts[1])
    except (OSError, ValueError, IndexError):
        return 0, 0


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


def run_storage_bench(build_dir, n):
    exe = os.path.join(build_dir, "bench", "bench-storage-ingest")
    print()
    if not os.access(exe, os.X_OK):
        print("bench-storage-ingest: not built in %s (skipped)" % build_dir)
        return
    print("storage only (%s %d):" % (exe, n))
    r = subprocess.run([exe, str(n)], capture_output=True, text=True)
    for line in (r.stdout + r.stderr).splitlines():
        print("  " + line)


def run(args):
    build_dir = os.environ["DROVER_BUILD_DIR"]
    env = bd.environment(build_dir)
    n = args.n
    agent_cfg = "ansible_playbook: %s\n" % FAKE_PLAYBOOK
    with bd.BenchEnv("ingest", {"noop.yml": NOOP_PLAYBOOK}, log_level=args.log_level,
                     agent_config=agent_cfg, keep=args.keep) as b:
        tmpl = b.template("noop.yml", extra_vars=json.dumps({"drover_bench_events": n}))
        agent_pid = child_pid(b.agent.proc.pid)
        ctl_pid = b.controller.proc.pid
        cpu0 = (cpu_seconds(ctl_pid), cpu_seconds(agent_pid) if agent_pid else None)

        t_launch = time.monotonic()
        job = b.launch(tmpl)
        job_id = job["id"]
        ack_path = os.path.join(b.agent.job_dir(job_id), "ack")
        timing_path = os.path.join(os.path.dirname(b.agent.events_file(job_id)), "bench-timing.json")

        # Follow the ack file (cheap local reads) until N is acknowledged.
        samples = []            # (monotonic, acked counter)
        deadline = t_launch + args.timeout
        t_acked = None
        last = -1
        next_api = 0.0
        while True:
            now = time.monotonic()
            _, acked = read_ack(ack_path)
            if acked != last:
                samples.append((now, acked))
                last = acked
            if acked >= n:
                t_acked = now
                break
            if now > next_api:          # notice a job that ended early (error) without waiting for the timeout
                j = b.get_job(job_id, b.h.FINAL)
                if j and j.get("event_processing_finished") and acked < n:
                    time.sleep(0.5)
                    if read_ack(ack_path)[1] < n:
                        break
                next_api = now + 1.0
            if now > deadline:
                break
            time.sleep(args.poll_ms / 1000.0)

        # Then the API view: final, event_processing_finished, and all N events listed.
        def done():
            j = b.get_job(job_id, b.h.FINAL)
            return j if j and j.get("event_processing_finished") else None
        final = b.h.wait_for("job %d to be final with events processed" % job_id, done,
                             timeout=max(10.0, deadline - time.monotonic()), interval=0.01)
        t_final = time.monotonic()
        count = b.api.ok("GET", "/api/v2/jobs/%d/job_events/?page_size=1" % job_id)["count"]
        t_counted = time.monotonic()
        cpu1 = (cpu_seconds(ctl_pid), cpu_seconds(agent_pid) if agent_pid else None)
        timing = read_json(timing_path)
        db_size = 0
        for root, _dirs, files in os.walk(b.controller.state_dir):
            for fn in files:
                if ".db" in fn or fn.endswith((".sqlite", "-wal", "-shm")):
                    db_size += os.path.getsize(os.path.join(root, fn))
        if final["status"] != "successful" or count != n or t_acked is None:
            b.dump_logs()

    print()
    print("drover event ingestion: fake-ansible-playbook -> events file -> agent -> HTTPS -> controller -> SQLite")
    print("  job %d: status %s, event_processing_finished %s, job_events count %d of %d, final ack %d"
          % (job_id, final["status"], final.get("event_processing_finished"), count, n, last))
    if timing:
        t_start, t_written = timing["start_monotonic"], timing["written_monotonic"]
        print("  writer: %d events, %.1f MB (%.0f bytes/event) in %.3f s = %.0f events/s (not the bottleneck "
              "if well above the figures below)" % (timing["events"], timing["bytes"] / 1e6,
                                                   timing["bytes"] / timing["events"], t_written - t_start,
                                                   rate(timing["events"], t_written - t_start)))
    else:
        t_start = t_written = None
        print("  writer: no bench-timing.json (%s): the fake playbook did not run or did not finish" % timing_path)
    if t_acked is not None:
        print("  launch -> all %d acked by the controller: %.3f s = %.0f events/s"
              % (n, t_acked - t_launch, rate(n, t_acked - t_launch)))
        if t_start is not None:
            print("  playbook start -> all acked:        %.3f s = %.0f events/s   (launch -> playbook start %.3f s)"
                  % (t_acked - t_start, rate(n, t_acked - t_start), t_start - t_launch))
        if t_written is not None:
            before = [c for (t, c) in samples if t <= t_written]
            acked_at_written = before[-1] if before else 0
            rest = n - acked_at_written
            drain = t_acked - t_written
            print("  file complete -> all acked:         %.3f s for the %d events not yet acked then = %.0f events/s"
                  % (drain, rest, rate(rest, drain) if rest else float("nan")))
    else:
        print("  NOT all events were acknowledged within %.0f s (last ack %d)" % (args.timeout, last))
    print("  launch -> job final, events processed: %.3f s = %.0f events/s (API polled every 10 ms; "
          "job_events count answered in %.0f ms)"
          % (t_final - t_launch, rate(n, t_final - t_launch), (t_counted - t_final) * 1000))
    if t_start is not None:
        print("  playbook start -> job final:          %.3f s = %.0f events/s"
              % (t_final - t_start, rate(n, t_final - t_start)))
    print("  job elapsed (API): %s s" % final.get("elapsed"))
    if cpu0[0] is not None and cpu1[0] is not None:
        c_ctl = cpu1[0] - cpu0[0]
        print("  cpu: controller %.2f s (%.1f us/event)" % (c_ctl, c_ctl / n * 1e6), end="")
        if cpu0[1] is not None and cpu1[1] is not None:
            c_ag = cpu1[1] - cpu0[1]
            print(", agent %.2f s (%.1f us/event)" % (c_ag, c_ag / n * 1e6), end="")
            per = (c_ctl + c_ag) / n
            print(" (user+sys during the run)")
            print("  cpu bound at these costs: %.0f events/s if controller and agent take turns, %.0f if "
                  "they overlapped perfectly on two CPUs" % (1 / per, n / max(c_ctl, c_ag)), end="")
        print()
    print("  database files: %.1f MB" % (db_size / 1e6))
    print("  goal: >= 50,000 events/s over >= 200,000 events")
    bd.print_environment(env)
    if not args.no_storage:
        run_storage_bench(build_dir, n)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=int(os.environ.get("DROVER_BENCH_EVENTS", "200000")),
                   help="events (default $DROVER_BENCH_EVENTS or 200000)")
    p.add_argument("--poll-ms", type=float, default=5.0, help="ack file poll interval (default 5 ms)")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)")
    p.add_argument("--log-level", default="info", help="controller and agent log level (default info)")
    p.add_argument("--build-dir", help="drover build directory (default $DROVER_BUILD_DIR)")
    p.add_argument("--no-storage", action="store_true", help="do not run bench-storage-ingest afterwards")
    p.add_argument("--keep", action="store_true", help="keep the work directory (job dir holds N events)")
    args = p.parse_args()
    if args.n < 3:
        p.error("-n must be at least 3")
    bd._import_harness(args.build_dir)
    run(args)


if __name__ == "__main__":
    main()
