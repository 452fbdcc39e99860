"""Agent-side faults against real processes (private systemd, controller, drover-agent, ansible-playbook):
the agent killed with SIGKILL mid-job, the agent stopped and started through systemd, a cancel of a job
that ignores SIGTERM, the per-job and the total spool limit, a torn last line in the events file, and a
full disk on the node. Each test asserts that the stored event counters are exactly 1..final_counter
(nothing lost, nothing doubled) and the job's final status."""
import json
import os
import signal
import time

from drover_harness import (PLAYBOOKS, AGENT_UNIT, Agent, DroverTestCase, agent_kill9, agent_log_count, agent_restart,
                            agent_start_unit, agent_systemctl, assert_events_complete, controller_kill9,
                            controller_restart, main, stored_counters, wait_for)

PLAYBOOKS.update({
    # ~130 events over ~6 s: a loop with a small pause between items
    "many.yml": """- hosts: all
  gather_facts: false
  tasks:
    - name: many events
      debug:
        msg: "item {{ item }}"
      loop: "{{ range(1, (items | default(60) | int) + 1) | list }}"
      loop_control:
        pause: "{{ pause | default(0.1) | float }}"
""",
    # big events: each item carries ~2 KB of output
    "big.yml": """- hosts: all
  gather_facts: false
  tasks:
    - name: big events
      debug:
        msg: "{{ 'x' * 2000 }} {{ item }}"
      loop: "{{ range(1, (items | default(200) | int) + 1) | list }}"
      loop_control:
        pause: "{{ pause | default(0) | float }}"
""",
    # large events fast: each item carries `kb` KB of output (in stdout and in event_data.res)
    "huge.yml": """- hosts: all
  gather_facts: false
  tasks:
    - name: huge events
      debug:
        msg: "{{ 'y' * ((kb | default(200) | int) * 1024) }} {{ item }}"
      loop: "{{ range(1, (items | default(300) | int) + 1) | list }}"
""",
    # the task appends the start of an event line (no newline) to the events file, then waits to be
    # killed: what the file looks like when a job is SIGKILLed (OOM killer, kill -9) while writing
    "torn.yml": """- hosts: all
  gather_facts: false
  tasks:
    - name: before
      debug:
        msg: "a complete event"
    - name: write half an event line, then wait to be killed
      shell: printf '{"event":"runner_on_ok","counter":9' >> "$DROVER_EVENTS_FILE"; sleep 60
""",
})


def unit_of(job_id):
    return "drover-job-%d.service" % job_id


def wait_stored(tc, job_id, n, timeout=30):
    return wait_for("job %d to have %d stored events" % (job_id, n),
                    lambda: len(stored_counters(tc.api, job_id)) >= n, timeout=timeout)


def unit_active(tc, job_id):
    return tc.systemctl_show(unit_of(job_id), "ActiveState").get("ActiveState") == "active"


class TestAgentKill9(DroverTestCase):
    """kill -9 of the agent while a job runs: the unit keeps running; the restarted agent finds the job
    dir and the unit, resumes uploading from the acknowledged offset and reports the outcome, also one
    the unit left (unit-result) while the agent was down."""

    def test_kill9_restart_while_running(self):
        job = self.launch(self.template("many.yml"), {"extra_vars": {"items": 60, "pause": 0.1}})
        wait_stored(self, job["id"], 10)
        agent_kill9(self.agent)
        time.sleep(0.5)
        self.assertTrue(unit_active(self, job["id"]), "the job unit did not survive the agent's kill -9")
        with open(os.path.join(self.agent.job_dir(job["id"]), "ack")) as f:
            acked_before = f.read().split()
        time.sleep(1.5)
        agent_restart(self.agent)
        done = self.wait_job(job["id"], timeout=60)
        self.assertEqual(done["status"], "successful", done)
        counters = assert_events_complete(self, self.api, job["id"], self.agent)
        self.assertGreater(len(counters), int(acked_before[1]))
        self.assertGreaterEqual(len(counters), 60)
        self.assertIn("resuming supervision", self.agent.log_tail(400))

    def test_kill9_unit_finishes_while_down(self):
        job = self.launch(self.template("many.yml"), {"extra_vars": {"items": 20, "pause": 0.1}})
        wait_stored(self, job["id"], 5)
        agent_kill9(self.agent)
        # the job ends while no agent runs: its outcome is only in the job dir (unit-result)
        result = os.path.join(self.agent.job_dir(job["id"]), "artifacts", str(job["id"]), "unit-result")
        wait_for("the unit to finish without the agent", lambda: os.path.exists(result) and not unit_active(self, job["id"]),
                 timeout=30)
        self.assertEqual(self.api.ok("GET", "/api/v2/jobs/%d/" % job["id"])["status"], "running")
        agent_restart(self.agent)
        done = self.wait_job(job["id"], timeout=30)
        self.assertEqual(done["status"], "successful", done)
        assert_events_complete(self, self.api, job["id"], self.agent)


class TestAgentKilledBeforeUnitStart(DroverTestCase):
    """The agent stopped dead (SIGSTOP, then kill -9) while it prepares a job, before the unit exists:
    (1) while creating the job dir (frozen when job.json appears): the restarted agent removes the
    incomplete dir and the controller sends the same attempt again; (2) after the dir is complete
    (frozen when the project link appears): the restarted agent starts the unit itself. The freeze is
    timed by watching files, so on a fast node the next step may already have happened; the result
    must be the same either way, and the log says which path was taken."""

    def freeze_kill_restart(self, job, path_fn, after_kill=None):
        from drover_harness import agent_pid
        pid = agent_pid(self.agent)
        deadline = time.monotonic() + 30
        while not path_fn():
            self.assertLess(time.monotonic(), deadline, "the job dir never appeared")
            time.sleep(0.0005)
        os.kill(pid, signal.SIGSTOP)
        had_unit = bool(self.units())
        os.kill(pid, signal.SIGKILL)
        # nsenter stops itself when its child stops: let it go on to reap the killed agent
        os.kill(self.agent.proc.pid, signal.SIGCONT)
        self.agent.proc.wait(10)
        self.agent.proc = None
        if after_kill:
            after_kill(had_unit)
        agent_restart(self.agent)
        done = self.wait_job(job["id"], timeout=60)
        self.assertEqual(done["status"], "successful", done)
        assert_events_complete(self, self.api, job["id"], self.agent)
        return had_unit

    def launch_warm(self):
        jt = self.template("many.yml")
        # warm the project cache so that creating the dir and starting the unit follow each other closely
        warm = self.launch(jt, {"extra_vars": {"items": 1, "pause": 0}})
        self.assertEqual(self.wait_job(warm["id"])["status"], "successful")
        return self.launch(jt, {"extra_vars": {"items": 20, "pause": 0.1}})

    def test_1_killed_while_creating_dir(self):
        n = agent_log_count(self.agent, "was left incomplete")
        job = self.launch_warm()
        root = self.agent.job_dir(job["id"])
        self.cut_started = False

        def cut_creation_short(had_unit):
            # Creating the dir takes well under a millisecond without fsyncs, so the freeze usually lands
            # after it. Put the dir back in the state a kill during creation leaves (its last two steps,
            # the project link and the events file, not done yet) so this path is tested every run.
            # only while the start was not reported yet: a real kill during creation cannot come later
            started = self.api.ok("GET", "/api/v2/jobs/%d/" % job["id"])["status"] != "waiting"
            self.cut_started = started
            if not had_unit and not started:
                for rel in ("project", os.path.join("artifacts", str(job["id"]), "job_events.jsonl")):
                    p = os.path.join(root, rel)
                    if os.path.lexists(p):
                        os.unlink(p)
        had_unit = self.freeze_kill_restart(job, lambda: os.path.exists(os.path.join(root, "job.json")),
                                            cut_creation_short)
        taken = agent_log_count(self.agent, "was left incomplete") - n
        print("unit existed at the freeze: %s; incomplete-dir path taken: %d" % (had_unit, taken))
        if not had_unit and not self.cut_started:
            self.assertEqual(taken, 1)

    def test_2_killed_before_unit_start(self):
        n = agent_log_count(self.agent, "its unit was never started")
        job = self.launch_warm()
        had_unit = self.freeze_kill_restart(job, lambda: os.path.lexists(os.path.join(self.agent.job_dir(job["id"]), "project")))
        taken = agent_log_count(self.agent, "its unit was never started") - n
        print("unit existed at the freeze: %s; never-started path taken: %d" % (had_unit, taken))
        if not had_unit:
            self.assertEqual(taken, 1)


class TestAgentSystemdStop(DroverTestCase):
    """The agent as drover-agent.service (the shipped unit file) in the private systemd: `systemctl stop`
    stops only the agent, never the job units (separate transient units in drover-jobs.slice with no
    dependency on the agent's unit); `systemctl start` resumes them."""

    AGENTS = []

    @classmethod
    def setup_objects(cls):
        super().setup_objects()
        cls.agent = Agent(cls.psd, cls.controller, cls.workdir, name="node1")
        cls.agents = [cls.agent]
        agent_start_unit(cls.agent)
        wait_for("node1 to be ready", lambda: [i for i in cls.api.ok("GET", "/api/v2/instances/?hostname=node1")["results"]
                                               if i.get("node_state") == "ready"], timeout=30)

    def test_stop_start(self):
        show = self.systemctl_show(AGENT_UNIT, "KillMode", "ActiveState")
        self.assertEqual(show, {"KillMode": "process", "ActiveState": "active"})
        job = self.launch(self.template("many.yml"), {"extra_vars": {"items": 60, "pause": 0.1}})
        wait_stored(self, job["id"], 10)
        deps = self.systemctl_show(unit_of(job["id"]), "Slice", "Requires", "BindsTo", "PartOf", "Requisite",
                                   "StopPropagatedFrom", "ControlGroup")
        self.assertEqual(deps["Slice"], "drover-jobs.slice")
        for k in ("Requires", "BindsTo", "PartOf", "Requisite", "StopPropagatedFrom"):
            self.assertNotIn("drover-agent", deps.get(k, ""), deps)
        self.assertNotIn("drover-agent", deps["ControlGroup"])

        agent_systemctl(self.agent, "stop")
        self.assertEqual(self.systemctl_show(AGENT_UNIT, "ActiveState")["ActiveState"], "inactive")
        self.assertTrue(unit_active(self, job["id"]), "stopping the agent stopped the job unit")
        time.sleep(2)
        self.assertTrue(unit_active(self, job["id"]))
        agent_systemctl(self.agent, "start")
        done = self.wait_job(job["id"], timeout=60)
        self.assertEqual(done["status"], "successful", done)
        assert_events_complete(self, self.api, job["id"], self.agent)
        self.assertIn("Received SIGTERM, stopping (job units keep running)", self.agent.log_tail(400))

    def test_systemd_restarts_killed_agent(self):
        """kill -9 of the agent's main process: Restart=on-failure brings it back (RestartSec=5s), the
        job unit kept running meanwhile and the new agent finishes it."""
        job = self.launch(self.template("many.yml"), {"extra_vars": {"items": 100, "pause": 0.1}})
        wait_stored(self, job["id"], 10)
        pid_before = self.systemctl_show(AGENT_UNIT, "MainPID")["MainPID"]
        n_start = agent_log_count(self.agent, "First heartbeat accepted")
        self.psd.run(["systemctl", "kill", "--signal=KILL", AGENT_UNIT], check=True)
        time.sleep(1)
        self.assertTrue(unit_active(self, job["id"]), "the job unit did not survive the agent's kill -9")
        wait_for("systemd to restart the agent",
                 lambda: agent_log_count(self.agent, "First heartbeat accepted") > n_start, timeout=30)
        self.assertNotEqual(self.systemctl_show(AGENT_UNIT, "MainPID")["MainPID"], pid_before)
        done = self.wait_job(job["id"], timeout=60)
        self.assertEqual(done["status"], "successful", done)
        assert_events_complete(self, self.api, job["id"], self.agent)


def vm_hwm_kib(pid):
    """Peak resident set size of a process (VmHWM) in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class TestControllerOutageMemory(DroverTestCase):
    """The controller killed (-9) while a job writes ~100 MB of events: the job keeps running, the agent
    keeps the output on disk and retries; once the controller is back everything arrives, in order, in
    bounded batches, and the agent's peak memory stays far below the size of its spool."""

    @classmethod
    def setUpClass(cls):
        # Sanitizer builds keep freed memory in a quarantine (256 MB by default), which would hide
        # whether the agent reuses its batch buffers: keep it small for these processes.
        saved = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = ((saved + ":") if saved else "") + "quarantine_size_mb=4"
        try:
            super().setUpClass()
        finally:
            if saved is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = saved

    def test_outage_big_spool(self):
        from drover_harness import agent_pid
        pid = agent_pid(self.agent)
        job = self.launch(self.template("huge.yml"), {"extra_vars": {"items": 250, "kb": 200}})
        wait_stored(self, job["id"], 3)
        hwm_before = vm_hwm_kib(pid)
        controller_kill9(self.controller)
        result = os.path.join(self.agent.job_dir(job["id"]), "artifacts", str(job["id"]), "unit-result")
        wait_for("the job to finish while the controller is down", lambda: os.path.exists(result), timeout=60)
        spool = os.path.getsize(self.agent.events_file(job["id"]))
        self.assertGreater(spool, 80 << 20)
        time.sleep(1)
        controller_restart(self.controller)
        self.api = type(self).api = self.controller.api
        done = self.wait_job(job["id"], timeout=90)
        self.assertEqual(done["status"], "successful", done)
        counters = assert_events_complete(self, self.api, job["id"], self.agent)
        self.assertGreaterEqual(len(counters), 250)
        hwm = vm_hwm_kib(pid)
        sys_msg = "agent peak RSS %d KiB -> %d KiB for a %d byte spool" % (hwm_before, hwm, spool)
        print(sys_msg)
        # one batch is at most 4 MiB of lines (a single line up to 8 MiB): the growth must not scale
        # with the spool (~100 MB here)
        self.assertLess((hwm - hwm_before) * 1024, spool // 2, sys_msg)
        log = self.agent.log_tail(2000)
        self.assertIn("unreachable", log)
        self.assertIn("reachable again", log)


class TestCancelIgnoringTerm(DroverTestCase):
    """A cancel of a job whose process ignores SIGTERM (trap '' TERM): systemd sends SIGKILL after
    unit.stop_timeout (2 s here); the job ends canceled with its output stored."""

    AGENTS = [{"name": "node1", "extra_config": "unit:\n  stop_timeout: 2s\n"}]

    def test_cancel_trap(self):
        self.assertEqual(self.systemctl_show("drover-jobs.slice", "ActiveState")["ActiveState"] in ("active", "inactive"), True)
        job = self.launch(self.template("trap.yml"), {"extra_vars": {"sleep_seconds": 60}})
        wait_for("the trap task to run", lambda: any(
            e["event"] == "playbook_on_task_start"
            for e in self.api.all_pages("/api/v2/jobs/%d/job_events/" % job["id"])), timeout=30)
        self.assertEqual(self.systemctl_show(unit_of(job["id"]), "TimeoutStopUSec")["TimeoutStopUSec"], "2s")
        time.sleep(1)
        t0 = time.monotonic()
        status, body, _ = self.api.post("/api/v2/jobs/%d/cancel/" % job["id"])
        self.assertIn(status, (200, 202), body)
        done = self.wait_job(job["id"], timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(done["status"], "canceled", done)
        self.assertGreaterEqual(took, 1.5, "the SIGTERM grace was not honoured")
        self.assertLess(took, 15)
        # the shell that ignores SIGTERM was SIGKILLed after the grace: the unit is gone
        self.assertEqual(self.units(), [])
        assert_events_complete(self, self.api, job["id"], self.agent)


class TestSpoolLimit(DroverTestCase):
    """spool.max_job_size: a job writing more events than the limit keeps running; its further lines
    are not uploaded; one "[drover] output truncated" event (the next counter) marks the cut and is
    the final counter. spool.max_total_size: with the controller away the unacknowledged spool grows
    past the limit, the node advertises capacity 0 and takes no new work until it is delivered."""

    AGENTS = [{"name": "node1", "extra_config": "spool:\n  max_job_size: 1M\n  max_total_size: 64K\n"}]

    def test_job_limit_truncation(self):
        job = self.launch(self.template("huge.yml"), {"extra_vars": {"items": 60, "kb": 20}})
        done = self.wait_job(job["id"], timeout=60)
        self.assertEqual(done["status"], "successful", done)
        counters = assert_events_complete(self, self.api, job["id"])
        evs = self.api.all_pages("/api/v2/jobs/%d/job_events/?order_by=counter&page_size=200" % job["id"])
        self.assertEqual(evs[0]["event"], "playbook_on_start")
        last = evs[-1]
        self.assertEqual(last["event"], "verbose")
        self.assertIn("[drover] output truncated: spool limit of 1048576 bytes reached", last["stdout"])
        self.assertEqual([e for e in evs if "output truncated" in (e["stdout"] or "")], [last])
        # the node's events file holds more than was uploaded; what was uploaded is a prefix of it
        with open(self.agent.events_file(job["id"]), "rb") as f:
            lines = f.read().splitlines()
        self.assertGreater(len(lines), len(counters))
        self.assertLessEqual(sum(len(l) + 1 for l in lines[:len(counters) - 1]), 1048576)
        written = [json.loads(l)["uuid"] for l in lines[:len(counters) - 1]]
        self.assertEqual([e["uuid"] for e in evs[:-1]], written)
        with open(os.path.join(self.agent.job_dir(job["id"]), "spool-truncated")) as f:
            self.assertEqual(int(f.read().split()[1]), counters[-1])

    def test_total_limit_no_capacity(self):
        job = self.launch(self.template("big.yml"), {"extra_vars": {"items": 60, "pause": 0.1}})
        wait_stored(self, job["id"], 3)
        controller_kill9(self.controller)
        wait_for("the agent to notice the total spool limit",
                 lambda: agent_log_count(self.agent, "reached spool.max_total_size") >= 1, timeout=30)
        self.assertIn("advertising no capacity and taking no new jobs", self.agent.log_tail(400))
        time.sleep(2)
        controller_restart(self.controller)
        self.api = type(self).api = self.controller.api
        done = self.wait_job(job["id"], timeout=60)
        self.assertEqual(done["status"], "successful", done)
        assert_events_complete(self, self.api, job["id"])
        wait_for("the agent to take work again", lambda: agent_log_count(self.agent, "taking new jobs again") >= 1,
                 timeout=15)
        # and it does: a new job runs
        job2 = self.launch(self.template("ok.yml"))
        self.assertEqual(self.wait_job(job2["id"], timeout=60)["status"], "successful")
        assert_events_complete(self, self.api, job2["id"], self.agent)


class TestTornLine(DroverTestCase):
    """A torn last line: the job is SIGKILLed (like the OOM killer would) while its events file ends in
    half a line. The half line is never uploaded while the unit runs; once the unit has finished it is
    replaced by a placeholder event so the sequence stays gapless."""

    def test_torn_last_line(self):
        job = self.launch(self.template("torn.yml"))
        path = self.agent.events_file(job["id"])

        def torn():
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                return False
            return data and not data.endswith(b"\n") and data
        data = wait_for("a torn last line in the events file", torn, timeout=30)
        complete = data.count(b"\n")
        wait_stored(self, job["id"], complete)
        time.sleep(2)
        self.assertEqual(len(stored_counters(self.api, job["id"])), complete, "the partial line was uploaded")
        self.psd.run(["systemctl", "kill", "--signal=KILL", unit_of(job["id"])], check=True)
        done = self.wait_job(job["id"], timeout=30)
        self.assertEqual(done["status"], "failed", done)
        self.assertIn("SIGKILL", done["job_explanation"])
        counters = assert_events_complete(self, self.api, job["id"])
        self.assertEqual(len(counters), complete + 1)
        evs = self.api.all_pages("/api/v2/jobs/%d/job_events/?order_by=counter&page_size=200" % job["id"])
        self.assertEqual(evs[-1]["event"], "warning")
        self.assertIn("malformed event line", evs[-1]["stdout"])


class TestDiskFull(DroverTestCase):
    """The node's job directories on a full file system (a 1 MiB tmpfs mounted over <state_dir>/jobs
    inside the private systemd's mount namespace): the job ends as error with "No space left on
    device" in its explanation and the agent's log, never successful; the agent keeps running and
    the next job (once space is free again) succeeds."""

    AGENTS = [{"name": "node1", "keep_job_dirs": False}]

    def test_disk_full(self):
        jobs_dir = os.path.join(self.agent.state_dir, "jobs")
        os.makedirs(jobs_dir, exist_ok=True)
        self.psd.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "drover-test-full", jobs_dir], check=True)
        job = self.launch(self.template("big.yml"), {"extra_vars": {"items": 600}})
        done = self.wait_job(job["id"], timeout=60)
        self.assertEqual(done["status"], "error", done)
        self.assertIn("No space left on device", done["job_explanation"])
        assert_events_complete(self, self.api, job["id"])
        self.assertIn("no space left", self.agent.log_tail(400).lower())
        self.assertIsNone(self.agent.proc.poll(), "the agent died")
        # the failed job's dir is gone, so there is room again
        job2 = self.launch(self.template("ok.yml"))
        done2 = self.wait_job(job2["id"], timeout=60)
        self.assertEqual(done2["status"], "successful", done2)
        assert_events_complete(self, self.api, job2["id"])


if __name__ == "__main__":
    main()
