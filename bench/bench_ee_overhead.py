#!/usr/bin/python3
"""bench_ee_overhead.py: what running a job in an execution environment (podman) costs.

A 1-task playbook (`debug: msg=hello` on localhost, local connection), run -n times (default 20) each:

  bare       ansible-playbook on the host, no drover (wall time of the process)
  bare-ee    `podman run --rm <EE image> ansible-playbook ...` (in the private systemd's namespaces,
             with the agent's run options), no drover (wall time)
  systemd    a drover job on the systemd runtime: launch POST -> job final (wall), and the job's
             `elapsed` (the agent's started -> finished)
  container  the same job template with an execution environment (pull: missing, image present)

Prints the median, min and max of each, and the container - systemd difference. The drover figures use
bench_dispatch.BenchEnv (private systemd + controller + one agent, daemons at log_level info); the EE
image is the one tests/integration/test_ee.py uses (packaging/ee/build-ee.sh, podman store under
$DROVER_BUILD_DIR/ee). Jobs run one after another on an idle node. Prints figures; never asserts
timing. Needs root. See docs/benchmarks.md.

    DROVER_BUILD_DIR=/work/main/build-bench python3 bench/bench_ee_overhead.py [-n 20]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_dispatch  # noqa: E402

PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks:
    - name: one task
      debug:
        msg: hello
"""


def summary(name, values):
    return "%-17s median %7.0f ms   min %7.0f ms   max %7.0f ms   (n=%d)" % (
        name, statistics.median(values) * 1000, min(values) * 1000, max(values) * 1000, len(values))


def timed(argv, **kw):
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--build-dir")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    h = bench_dispatch._import_harness(args.build_dir)
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
    import test_ee  # noqa: E402  (the EE image store and podman options of the integration tests)

    test_ee.ensure_image()
    env = bench_dispatch.environment(h.BUILD_DIR)
    bench_dispatch.print_environment(env)
    results = {}

    tmp = tempfile.mkdtemp(prefix="bench-ee-", dir=os.path.join(h.BUILD_DIR))
    pb = os.path.join(tmp, "one.yml")
    with open(pb, "w") as f:
        f.write(PLAYBOOK)
    bare = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=/usr/bin/python3"]
    benv = dict(os.environ, ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "tmp"), HOME=tmp)

    with bench_dispatch.BenchEnv("bench-ee", {"one.yml": PLAYBOOK}, agent_config=test_ee.podman_config(),
                                 keep=args.keep) as b:
        # bare ansible-playbook; bare podman run inside the private systemd's namespaces (crun refuses
        # the host's hybrid cgroup layout outside them; nsenter costs a few ms)
        results["bare"] = [timed(bare + [pb], env=benv, cwd=tmp) for _ in range(args.n)]
        podman_run = ["nsenter", "-t", str(b.psd.pid), "-m", "-p"] + test_ee.HOST_PODMAN + [
            "run", "--rm", "-v", "%s:%s:ro" % (tmp, tmp), "-w", tmp] + test_ee.RUN_OPTIONS + [test_ee.IMAGE]
        results["bare-ee"] = [timed(podman_run + bare + [pb]) for _ in range(args.n)]

        # through drover
        ee = b.api.ok("POST", "/api/v2/execution_environments/",
                      {"name": "bench-ee", "image": test_ee.IMAGE, "pull": "missing"})
        for mode, fields in (("systemd", {}), ("container", {"execution_environment": ee["id"]})):
            t = b.template("one.yml", **fields)
            wall, elapsed = [], []
            b.wait_job(b.launch(t)["id"])        # warm-up: project cache, image layers in the page cache
            for _ in range(args.n):
                t0 = time.monotonic()
                j = b.wait_job(b.launch(t)["id"])
                wall.append(time.monotonic() - t0)
                if j["status"] != "successful":
                    sys.exit("job %d: %s %s" % (j["id"], j["status"], j.get("job_explanation")))
                elapsed.append(float(j.get("elapsed") or 0))
            results[mode] = wall
            results[mode + "/elapsed"] = elapsed
    subprocess.run(["rm", "-rf", tmp])

    print()
    print("1-task playbook, %d runs each (wall: launch POST -> job final; elapsed: the job's own field)" % args.n)
    for k in ("bare", "bare-ee", "systemd", "systemd/elapsed", "container", "container/elapsed"):
        print(summary(k, results[k]))
    d = statistics.median(results["container"]) - statistics.median(results["systemd"])
    print("container - systemd (median wall): %+.0f ms; bare-ee - bare: %+.0f ms" % (
        d * 1000, (statistics.median(results["bare-ee"]) - statistics.median(results["bare"])) * 1000))
    print(json.dumps({k: round(statistics.median(v) * 1000) for k, v in results.items()}))


if __name__ == "__main__":
    main()
