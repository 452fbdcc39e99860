#!/usr/bin/python3
"""bench_recovery.py: how fast a restarted agent catches up after `kill -9`, through the real parts.

Boots a private systemd, a drover-controller and one drover-agent (bench_dispatch.BenchEnv, the
integration harness underneath) whose `ansible_playbook` is a stand-in written by this script
(recovery-playbook, in the run's work directory): it writes --events ansible-runner shaped events,
waits for a trigger file, writes --events more, then waits for a finish file and writes the final
playbook_on_stats. The node gets a capacity override so all N jobs run at once.

  1. launch N jobs (default 50); wait until all are running and their first events are stored;
  2. kill -9 the agent (the job units keep running);
  3. touch the trigger: every job writes its second half while no agent is there to upload it;
     wait until every events file holds it;
  4. start the agent again (T0) and poll the controller's database (job_event_ack, read-only) until
     for every job the acknowledged counter equals the last counter in its events file (T1);
  5. print T1 - T0; then touch the finish file and check every job ends successful with its stored
     events exactly 1..final counter.

Prints figures; never asserts timing. Needs root. See docs/benchmarks.md.

    DROVER_BUILD_DIR=/work/main/build-bench python3 bench/bench_recovery.py [-n 50] [--events 100]
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_dispatch  # noqa: E402

STAND_IN = r'''#!/usr/bin/python3
# recovery-playbook: stand-in for ansible-playbook written by bench/bench_recovery.py (benchmark only).
import json, os, sys, time
n = int(os.environ.get("DROVER_RECOVERY_EVENTS") or open(os.path.realpath(__file__) + ".events").read())
trigger = os.path.realpath(__file__) + ".trigger"
finish = os.path.realpath(__file__) + ".finish"
path = os.environ["DROVER_EVENTS_FILE"]
ident = os.environ.get("DROVER_JOB_ID", "1")
counter = 0
def emit(event, stdout="", data=None):
    global counter
    counter += 1
    o = {"uuid": "%08x-0000-4000-8000-%012x" % (int(ident), counter), "counter": counter, "stdout": stdout,
         "start_line": counter, "end_line": counter + 1, "runner_ident": ident, "event": event,
         "pid": os.getpid(), "created": "2026-11-23T07:00:00.000000Z", "event_data": data or {}}
    with open(path, "a") as f:
        f.write(json.dumps(o, separators=(",", ":")) + "\n")
emit("playbook_on_start", "", {"playbook": "recovery.yml"})
for i in range(n):
    emit("verbose", "first half line %d" % i)
while not os.path.exists(trigger):
    time.sleep(0.05)
for i in range(n):
    emit("verbose", "second half line %d" % i)
while not os.path.exists(finish):
    time.sleep(0.05)
emit("playbook_on_stats", "", {"ok": {"localhost": 1}, "changed": {}, "dark": {}, "failures": {},
                               "ignored": {}, "processed": {"localhost": 1}, "rescued": {}, "skipped": {}})
sys.exit(0)
'''


def acked(db_path, ids):
    db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=10)
    try:
        rows = db.execute("SELECT job, acked FROM job_event_ack WHERE job IN (%s)" % ",".join("?" * len(ids)),
                          list(ids)).fetchall()
    finally:
        db.close()
    return dict(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=50, help="jobs running when the agent is killed (default 50)")
    ap.add_argument("--events", type=int, default=100, help="events per job per half (default 100)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--build-dir")
    args = ap.parse_args()
    if args.build_dir:
        os.environ["DROVER_BUILD_DIR"] = os.path.abspath(args.build_dir)
    h = bench_dispatch._import_harness()

    base = os.path.join(h.BUILD_DIR, "bench-runs")
    os.makedirs(base, exist_ok=True)
    stand_in = os.path.join(base, "recovery-playbook-%d" % os.getpid())
    with open(stand_in, "w") as f:
        f.write(STAND_IN)
    os.chmod(stand_in, 0o755)
    with open(stand_in + ".events", "w") as f:
        f.write(str(args.events))
    total = 1 + 2 * args.events
    agent_cfg = "ansible_playbook: %s\ncapacity: %d\n" % (stand_in, 2 * args.n + 10)
    pb = {"recovery.yml": "- hosts: all\n  gather_facts: false\n  tasks: []\n"}

    try:
        with bench_dispatch.BenchEnv("bench-recovery", pb, log_level=args.log_level, agent_config=agent_cfg,
                                     keep=args.keep) as env:
            jt = env.template("recovery.yml")
            ids = [env.launch(jt)["id"] for _ in range(args.n)]
            agent = env.agent
            events_path = lambda j: agent.events_file(j)  # noqa: E731

            def lines(j):
                try:
                    with open(events_path(j), "rb") as f:
                        return f.read().count(b"\n")
                except FileNotFoundError:
                    return 0
            db_path = os.path.join(env.controller.state_dir, "drover.db")
            h.wait_for("all %d jobs running with their first half stored" % args.n,
                       lambda: all(v == 1 + args.events for v in acked(db_path, ids).values())
                       and len(acked(db_path, ids)) == args.n, timeout=300, interval=0.2)

            h.agent_kill9(agent)
            open(stand_in + ".trigger", "w").close()
            h.wait_for("every job to write its second half", lambda: all(lines(j) == total for j in ids),
                       timeout=120, interval=0.05)
            before = acked(db_path, ids)
            behind = sum(total - before.get(j, 0) for j in ids)

            t0 = time.monotonic()
            agent.log = open(agent.log_path, "ab")
            agent.proc = agent.psd.popen([h.AGENT_BIN, "--config", agent.config_path],
                                         stdout=agent.log, stderr=agent.log)
            first = []

            def caught_up():
                now = acked(db_path, ids)
                if not first and any(now.get(j, 0) > before.get(j, 0) for j in ids):
                    first.append(time.monotonic())
                return all(v == total for v in now.values())
            h.wait_for("every job's output caught up", caught_up, timeout=300, interval=0.005)
            t1 = time.monotonic()

            open(stand_in + ".finish", "w").close()
            bad = []
            for j in ids:
                job = env.wait_job(j, timeout=120)
                counters = [e["counter"] for e in
                            env.api.all_pages("/api/v2/jobs/%d/job_events/?order_by=counter&page_size=200" % j)]
                if job["status"] != "successful" or counters != list(range(1, total + 2)):   # + stats
                    bad.append((j, job["status"], len(counters)))
            print(json.dumps(bench_dispatch.environment(h.BUILD_DIR)))
            print("recovery after agent kill -9: %d jobs running, %d events behind (%d per job), "
                  "agent start -> first new acknowledgement: %.3f s, -> all output acknowledged: %.3f s"
                  % (args.n, behind, behind // args.n, (first[0] if first else t1) - t0, t1 - t0))
            if bad:
                print("INCOMPLETE JOBS: %r" % bad)
                return 1
    finally:
        for suffix in ("", ".events", ".trigger", ".finish"):
            try:
                os.unlink(stand_in + suffix)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
