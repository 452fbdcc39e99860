"""test_units.py: the agent's execution side against a real (private) systemd: agent/unit.c
(StartTransientUnit with limits, state, properties, list, kill, stop, start failures), the
ExecStopPost recorder (unit-result lines for exit 0, exit 3, timeout, kill, stop, memory limit),
and a whole job through job-dir.c + job-command.c + the drover callback plugin (events file
content: counters 1..N, parents, stats) with job_outcome().

Uses $DROVER_BUILD_DIR/tests/tools/unit-probe (tests/tools/unit-probe.c). Needs root.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from privsd import PrivateSystemd  # noqa: E402

BUILD_DIR = os.environ.get("DROVER_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE_DIR = os.environ.get("DROVER_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PROBE = os.path.abspath(os.path.join(BUILD_DIR, "tests", "tools", "unit-probe"))
SVC = "org.freedesktop.systemd1.Service"

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: say hi
      debug:
        msg: "hi {{ inventory_hostname }} {{ greeting }}"
    - name: run true
      command: /bin/true
    - name: loop
      debug:
        msg: "{{ item }}"
      loop: [1, 2]
"""

FAILING_PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: fail
      command: /bin/false
"""


class UnitTests(unittest.TestCase):
    sd = None
    work = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise RuntimeError("test_units.py needs root")
        if not os.access(PROBE, os.X_OK):
            raise RuntimeError("%s is missing: build the tree (tests/tools)" % PROBE)
        cls.work = os.path.abspath(os.path.join(BUILD_DIR, "tests", "integration-work", "units-%d" % os.getpid()))
        shutil.rmtree(cls.work, ignore_errors=True)
        os.makedirs(cls.work)
        cls.sd = PrivateSystemd(os.path.join(cls.work, "sd"), "drover-test-units-%d" % os.getpid())
        cls.sd.start()

    @classmethod
    def tearDownClass(cls):
        if cls.sd is not None:
            cls.sd.stop()
            if cls.sd.cgroups:
                raise RuntimeError("cgroups left behind")
        if cls.work and os.environ.get("DROVER_KEEP_TEST_DIRS") is None:
            shutil.rmtree(cls.work, ignore_errors=True)

    # ---- helpers ----
    def probe(self, *args, env=None, check=True):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("PROBE_"):
                del e[k]
        e.update(env or {})
        r = self.sd.run([PROBE] + [str(a) for a in args], env=e, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            self.fail("unit-probe %s failed (%d): %s\n--- systemd log:\n%s"
                      % (" ".join(map(str, args)), r.returncode, r.stderr, self.sd.log_tail(30)))
        return r

    def wait_file(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    data = f.read()
                if data.endswith("\n"):
                    return data
            time.sleep(0.05)
        self.fail("%s did not appear within %ss\n%s" % (path, timeout, self.sd.log_tail(30)))

    def result_of(self, name, *argv, env=None, timeout=30):
        rp = os.path.join(self.work, name + ".result")
        self.probe("start", name + ".service", rp, *argv, env=env)
        return self.wait_file(rp, timeout).split()

    def state(self, name):
        return self.probe("state", name).stdout.split()

    # ---- tests ----
    def test_exit_0(self):
        res = self.result_of("u-exit0", "/bin/true")
        self.assertEqual(res[:3], ["success", "exited", "0"])
        self.assertRegex(res[3], r"^-?\d+$")
        # collected once inactive (CollectMode=inactive-or-failed): not loaded, and no stub loaded
        time.sleep(0.2)
        self.assertEqual(self.state("u-exit0.service")[0], "not-loaded")
        self.assertEqual(self.probe("list", "u-exit0*").stdout.strip(), "")

    def test_exit_3(self):
        res = self.result_of("u-exit3", "/bin/sh", "-c", "exit 3")
        self.assertEqual(res[:3], ["exit-code", "exited", "3"])

    def test_limits_properties_and_kill(self):
        out = os.path.join(self.work, "limits.out")
        env = {"PROBE_MEMORY_MAX": str(200 * 1024 * 1024), "PROBE_CPU_QUOTA_USEC": "500000",
               "PROBE_TASKS_MAX": "64", "PROBE_RUNTIME_MAX_USEC": str(120 * 1000000),
               "PROBE_STOP_TIMEOUT_USEC": str(3 * 1000000), "PROBE_SLICE": "drover-jobs.slice",
               "PROBE_STDOUT": out, "PROBE_STDERR": out, "PROBE_CWD": self.work,
               "PROBE_ENV": "GREETING=hello world;EMPTY="}
        rp = os.path.join(self.work, "limits.result")
        # argv must reach the program untouched: $$ and $GREETING are expanded by sh, not systemd
        self.probe("start", "u-limits.service", rp, "/bin/sh", "-c",
                   'echo "pid=$$ greeting=$GREETING cwd=$(pwd)"; exec sleep 300', env=env)
        st = self.state("u-limits.service")
        self.assertEqual(st, ["loaded", "active", "running", "success", "nojob"])
        self.assertEqual(self.probe("prop", "u-limits.service", SVC, "MemoryMax").stdout.strip(), str(200 * 1024 * 1024))
        self.assertEqual(self.probe("prop", "u-limits.service", SVC, "CPUQuotaPerSecUSec").stdout.strip(), "500000")
        self.assertEqual(self.probe("prop", "u-limits.service", SVC, "TasksMax").stdout.strip(), "64")
        self.assertEqual(self.probe("prop", "u-limits.service", SVC, "RuntimeMaxUSec").stdout.strip(), str(120 * 1000000))
        self.assertEqual(self.probe("prop", "u-limits.service", SVC, "TimeoutStopUSec").stdout.strip(), str(3 * 1000000))
        self.assertIn("u-limits.service", self.probe("list", "u-lim*.service").stdout.split())
        # a second unit with the same name: -EEXIST (exit 2)
        r = self.probe("start", "u-limits.service", rp, "/bin/true", check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        with open(out) as f:
            line = f.read()
        self.assertRegex(line, r"^pid=\d+ greeting=hello world cwd=%s\n" % self.work)
        self.probe("kill", "u-limits.service", 9)
        res = self.wait_file(rp).split()
        self.assertEqual(res[:3], ["signal", "killed", "KILL"])
        self.assertEqual(res[3], "0")       # memory cgroup found, no OOM kill
        time.sleep(0.2)
        self.assertEqual(self.state("u-limits.service")[0], "not-loaded")
        self.assertEqual(self.probe("kill", "u-limits.service", 9, check=False).returncode, 1)

    def test_timeout(self):
        res = self.result_of("u-timeout", "/bin/sleep", "30",
                             env={"PROBE_RUNTIME_MAX_USEC": "1000000", "PROBE_STOP_TIMEOUT_USEC": "2000000"})
        self.assertEqual(res[:3], ["timeout", "killed", "TERM"])

    def test_timeout_ignoring_term(self):
        res = self.result_of("u-timeout-kill", "/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done",
                             env={"PROBE_RUNTIME_MAX_USEC": "500000", "PROBE_STOP_TIMEOUT_USEC": "1000000"})
        self.assertEqual(res[:3], ["timeout", "killed", "KILL"])

    def test_stop(self):
        rp = os.path.join(self.work, "stop.result")
        self.probe("start", "u-stop.service", rp, "/bin/sleep", "300")
        self.probe("stop", "u-stop.service")
        res = self.wait_file(rp).split()
        self.assertEqual(res[0], "success")     # SIGTERM counts as clean: the agent must remember the cancel
        self.probe("stop", "u-stop.service")    # not loaded any more: still success

    def test_missing_binary(self):
        rp = os.path.join(self.work, "missing.result")
        r = self.probe("start", "u-missing.service", rp, "/nonexistent/binary", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("203", r.stderr)
        self.assertIn("exit-code", r.stderr)

    def test_memory_limit(self):
        rp = os.path.join(self.work, "oom.result")
        self.probe("start", "u-oom.service", rp, "/usr/bin/python3", "-c",
                   "import time\nb = []\nwhile True:\n    b.append(bytearray(8 * 1024 * 1024))\n",
                   env={"PROBE_MEMORY_MAX": str(64 * 1024 * 1024)})
        res = self.wait_file(rp, 60).split()
        self.assertIn(res[0], ("signal", "oom-kill"), res)
        self.assertGreater(int(res[3]), 0, res)

    # ---- a whole job ----
    def run_job(self, job_id, playbook_text, extra=None, user=None):
        state_dir = os.path.join(self.work, "state")
        project = os.path.join(self.work, "project-%d" % job_id)
        os.makedirs(project, exist_ok=True)
        with open(os.path.join(project, "site.yml"), "w") as f:
            f.write(playbook_text)
        assignment = {
            "job": job_id, "attempt": 1, "name": "Demo", "job_type": "run", "playbook": "site.yml",
            "inventory": {"_meta": {"hostvars": {"localhost": {"ansible_connection": "local",
                                                               "ansible_python_interpreter": "/usr/bin/python3"}}},
                          "all": {"children": ["ungrouped", "local"], "vars": {"greeting": "from-all"}},
                          "local": {"hosts": ["localhost"]}},
            "extra_vars": {}, "limit": "", "forks": 5, "verbosity": 0, "job_tags": "", "skip_tags": "",
            "diff_mode": False, "timeout": 120, "env": {"SOME_TOKEN": "s3cr3t"},
        }
        assignment.update(extra or {})
        apath = os.path.join(self.work, "assignment-%d.json" % job_id)
        with open(apath, "w") as f:
            json.dump(assignment, f)
        env = {"PROBE_SHARE_DIR": os.path.abspath(os.path.join(SOURCE_DIR, "agent"))}
        if user:
            env["PROBE_USER"] = user
        r = self.probe("job", state_dir, apath, project, env=env)
        self.assertEqual(r.stdout.strip(), "drover-job-%d.service" % job_id)
        root = os.path.join(state_dir, "jobs", str(job_id))
        art = os.path.join(root, "artifacts", str(job_id))
        res = self.wait_file(os.path.join(art, "unit-result"), 120).split()
        outcome = self.probe("outcome", state_dir, job_id).stdout.split(" ", 2)
        with open(os.path.join(art, "job_events.jsonl")) as f:
            events = [json.loads(line) for line in f]
        with open(os.path.join(art, "stdout")) as f:
            stdout = f.read()
        with open(os.path.join(art, "stderr")) as f:
            stderr = f.read()
        return res, outcome, events, stdout, stderr

    def check_stream(self, events, stdout):
        self.assertEqual([e["counter"] for e in events], list(range(1, len(events) + 1)))
        by_uuid = {e["uuid"]: e for e in events}
        self.assertEqual(len(by_uuid), len(events))
        self.assertEqual(events[0]["event"], "playbook_on_start")
        self.assertEqual(events[-1]["event"], "playbook_on_stats")
        pb = events[0]["uuid"]
        for e in events:
            self.assertEqual(e["runner_ident"], str(self.current_job))
            self.assertEqual(e["event_data"]["playbook"], "site.yml")
            self.assertEqual(e["event_data"]["playbook_uuid"], pb)
            parent = by_uuid.get(e["parent_uuid"])
            kind = e["event"]
            if kind == "playbook_on_start":
                self.assertEqual(e["parent_uuid"], "")
            elif kind in ("playbook_on_play_start", "playbook_on_stats"):
                self.assertEqual(e["parent_uuid"], pb)
            elif kind == "playbook_on_task_start":
                self.assertEqual(parent["event"], "playbook_on_play_start")
            elif kind.startswith("runner_"):
                self.assertEqual(parent["event"], "playbook_on_task_start")
                self.assertEqual(e["event_data"]["task_uuid"], parent["uuid"])
                self.assertEqual(e["event_data"]["host"], "localhost")
        # stdout of the events, in order, is the job's stdout
        lines = stdout.splitlines()
        for e in events:
            if e["end_line"] > e["start_line"]:
                self.assertEqual("\n".join(lines[e["start_line"]:e["end_line"]]), e["stdout"])

    def test_job_successful(self):
        self.current_job = 101
        res, outcome, events, stdout, stderr = self.run_job(101, PLAYBOOK)
        self.assertEqual(res[:3], ["success", "exited", "0"], stderr)
        self.assertEqual(outcome[:2], ["successful", "0"])
        names = [e["event"] for e in events]
        self.assertEqual(names, ["playbook_on_start", "playbook_on_play_start",
                                 "playbook_on_task_start", "runner_on_start", "runner_on_ok",
                                 "playbook_on_task_start", "runner_on_start", "runner_on_ok",
                                 "playbook_on_task_start", "runner_on_start", "runner_item_on_ok",
                                 "runner_item_on_ok", "runner_on_ok", "playbook_on_stats"], stdout)
        self.check_stream(events, stdout)
        hi = events[4]
        self.assertEqual(hi["event_data"]["res"]["msg"], "hi localhost from-all")
        self.assertEqual(hi["event_data"]["task"], "say hi")
        self.assertIn("hi localhost from-all", hi["stdout"])
        stats = events[-1]["event_data"]
        self.assertEqual(stats["ok"], {"localhost": 3})
        self.assertEqual(stats["changed"], {"localhost": 1})
        self.assertEqual(stats["failures"], {})
        self.assertEqual(stats["processed"], {"localhost": 1})
        self.assertIn("PLAY RECAP", stdout)

    def test_job_as_user(self):
        self.current_job = 104
        whoami = "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: id -un\n      register: r\n" \
                 "    - debug: msg={{ r.stdout }}\n"
        res, outcome, events, stdout, stderr = self.run_job(104, whoami, user="nobody")
        self.assertEqual(res[:3], ["success", "exited", "0"], stdout + stderr)
        self.assertEqual(outcome[:2], ["successful", "0"])
        self.check_stream(events, stdout)
        ok = [e for e in events if e["event"] == "runner_on_ok"]
        self.assertEqual(ok[0]["event_data"]["res"]["stdout"], "nobody")

    def test_job_failed(self):
        self.current_job = 102
        res, outcome, events, stdout, _ = self.run_job(102, FAILING_PLAYBOOK)
        self.assertEqual(res[:3], ["exit-code", "exited", "2"])
        self.assertEqual(outcome[:2], ["failed", "2"])
        self.check_stream(events, stdout)
        self.assertIn("runner_on_failed", [e["event"] for e in events])
        self.assertEqual(events[-1]["event_data"]["failures"], {"localhost": 1})

    def test_job_timeout(self):
        self.current_job = 103
        slow = "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: sleep 60\n"
        res, outcome, events, stdout, _ = self.run_job(103, slow, {"timeout": 2})
        self.assertEqual(res[0], "timeout")
        self.assertEqual(outcome[0], "failed")
        self.assertEqual(outcome[1], "254")
        self.assertIn("timeout", outcome[2])
        self.assertEqual([e["counter"] for e in events], list(range(1, len(events) + 1)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
