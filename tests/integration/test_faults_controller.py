"""Controller-side faults, each produced for real against real processes (private systemd, controller,
agent, ansible-playbook), each asserting that the stored event counters are exactly 1..final counter:

- the controller killed with SIGKILL mid-job, and stopped for 60 s mid-job (a job writing many events);
- an events upload whose reply is lost after the controller committed it (the one injected fault:
  DROVER_TEST_DROP_EVENT_REPLIES, see docs/testing.md);
- fencing: two nodes racing for one job (real agents, and two raw-protocol nodes polling at once), a lost
  assignment reply re-sent as the same attempt, a result before its events (final means complete), and
  cancel through the long-poll, heartbeat and upload answers;
- a node declared lost (SIGSTOP of its agent past limits.node_lost_timeout) and returning;
- cancel while the node is offline: delivered when it returns, or closing the job when it is declared lost.
"""
import os
import signal
import threading
import time

from drover_harness import (DroverTestCase, RawNode, agent_kill9, agent_restart, agent_signal,
                            assert_events_complete, controller_kill9, controller_restart, event_attempts,
                            events_file_counters, main, stored_counters, wait_for)

# Many events over a long time: every item of the loop is an event (plus the task and stats events).
STREAM_PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks:
    - name: stream events slowly
      shell: "sleep {{ pause | default(0.3) }}; echo item {{ item }}"
      loop: "{{ range(0, items | default(40) | int) | list }}"
"""


def add_playbooks(ctl):
    d = os.path.join(ctl.projects_root, "demo")
    with open(os.path.join(d, "stream.yml"), "w") as f:
        f.write(STREAM_PLAYBOOK)


class TestControllerRestart(DroverTestCase):
    """kill -9 of the controller mid-job, and a 60 s outage mid-job."""

    @classmethod
    def setup_objects(cls):
        super().setup_objects()
        add_playbooks(cls.controller)

    def run_with_outage(self, items, pause, outage):
        jt = self.template("stream.yml", ask_variables_on_launch=True)
        job = self.launch(jt, {"extra_vars": {"items": items, "pause": pause}})
        jid = job["id"]
        self.wait_job(jid, statuses=("running",))
        wait_for("some events stored", lambda: len(stored_counters(self.api, jid)) >= 5, timeout=60)
        controller_kill9(self.controller)
        killed_at = time.monotonic()
        if outage:
            # the job keeps writing its events file while nobody can upload them
            wait_for("the spool to grow while the controller is down",
                     lambda: len(events_file_counters(self.agent, jid)) >= 15, timeout=60)
            time.sleep(max(0.0, outage - (time.monotonic() - killed_at)))
        controller_restart(self.controller)
        type(self).api = self.controller.api
        self.assertIsNone(self.agent.proc.poll(), "the agent must survive the controller outage")
        done = self.wait_job(jid, timeout=240)
        self.assertEqual(done["status"], "successful", done["job_explanation"])
        counters = assert_events_complete(self, self.api, jid, self.agent)
        self.assertGreaterEqual(len(counters), items + 3)
        # the node was never declared lost (grace period after the restart)
        node = self.api.ok("GET", "/api/v2/instances/?hostname=node1")["results"][0]
        self.assertEqual(node["node_state"], "ready")
        return done

    def test_1_controller_kill9_mid_job(self):
        self.run_with_outage(items=30, pause=0.2, outage=0)

    def test_2_controller_down_60s_mid_job(self):
        outage = float(os.environ.get("DROVER_OUTAGE_SECONDS", "60"))
        self.run_with_outage(items=int(outage * 1.6), pause=0.5, outage=outage)


class TestUploadReplyLost(DroverTestCase):
    """The replies to events uploads #2..#3 are dropped after the controller committed them; the agent
    re-sends, the repeats are no-ops."""

    @classmethod
    def setUpClass(cls):
        os.environ["DROVER_TEST_DROP_EVENT_REPLIES"] = "2-3"
        try:
            super().setUpClass()
        finally:
            del os.environ["DROVER_TEST_DROP_EVENT_REPLIES"]

    @classmethod
    def setup_objects(cls):
        super().setup_objects()
        add_playbooks(cls.controller)

    def test_reply_lost_nothing_doubled(self):
        jt = self.template("stream.yml", ask_variables_on_launch=True)
        job = self.launch(jt, {"extra_vars": {"items": 12, "pause": 0.3}})
        done = self.wait_job(job["id"], timeout=120)
        self.assertEqual(done["status"], "successful", done["job_explanation"])
        assert_events_complete(self, self.api, job["id"], self.agent)
        with open(self.controller.log_path, errors="replace") as f:
            log = f.read()
        self.assertIn("TEST HOOK ENABLED", log)
        self.assertEqual(log.count("closing the connection without an answer"), 2)


class TestTwoAgentsRace(DroverTestCase):
    """Two enrolled nodes in the same group with one slot each (impact 2, capacity 2)."""
    AGENTS = [{"name": "node1", "capacity": 2}, {"name": "node2", "capacity": 2}]

    def test_exactly_one_runs_it(self):
        jt = self.template("sleep.yml", ask_variables_on_launch=True)
        job = self.launch(jt, {"extra_vars": {"sleep_seconds": 3}})
        jid = job["id"]
        self.wait_job(jid, statuses=("running",))
        units = set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            units.update(self.units())
            time.sleep(0.1)
        self.assertEqual(units, {"drover-job-%d.service" % jid})
        done = self.wait_job(jid)
        self.assertEqual(done["status"], "successful")
        counters = assert_events_complete(self, self.api, jid)
        self.assertEqual(event_attempts(self.controller, jid), {1: len(counters)})
        ran = [a for a in self.agents if os.path.isdir(a.job_dir(jid))]
        self.assertEqual([a.name for a in ran], [done["execution_node"]])


class TestProtocolFencing(DroverTestCase):
    """Raw protocol: two nodes polling at once, lost assignment replies, final means complete, cancel
    through every answer. No drover-agent here: the nodes are this test."""
    AGENTS = []

    def launch_now(self):
        jt = getattr(type(self), "_jt", None) or self.template("ok.yml")
        type(self)._jt = jt
        return self.launch(jt)["id"]

    def two_nodes(self):
        tag = str(time.monotonic_ns())
        return RawNode(self.controller, "raw-a-" + tag), RawNode(self.controller, "raw-b-" + tag)

    def retire(self, *nodes):
        for n in nodes:
            self.api.patch("/api/v2/instances/%d/" % n.instance, {"enabled": False})

    def test_1_two_nodes_polling_concurrently(self):
        a, b = self.two_nodes()
        results = {}
        barrier = threading.Barrier(2)

        def poll(node):
            barrier.wait()
            results[node.name] = node.work(wait=10)
        threads = [threading.Thread(target=poll, args=(n,)) for n in (a, b)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        jid = self.launch_now()
        for t in threads:
            t.join(30)
        got = {name: [x["job"] for x in r[1]["assignments"]] for name, r in results.items()}
        winners = [name for name, jobs in got.items() if jid in jobs]
        self.assertEqual(len(winners), 1, got)
        win, lose = (a, b) if winners[0] == a.name else (b, a)
        # the loser cannot take it
        s, body, _ = lose.post("jobs/%d/start" % jid, {"attempt": 1})
        self.assertEqual(s, 403, body)
        s, body, _ = lose.post("jobs/%d/events" % jid, {"attempt": 1, "events": [{"counter": 1, "event": "x"}]})
        self.assertEqual(s, 403, body)
        # a lost assignment reply: the next poll answers the same attempt again
        s, again, _ = win.work(wait=0)
        self.assertEqual([(x["job"], x["attempt"]) for x in again["assignments"]], [(jid, 1)])
        # once the node lists it as running it is not sent again
        s, again, _ = win.work(running=[(jid, 1)], wait=0)
        self.assertEqual(again["assignments"], [])
        s, body, _ = win.post("jobs/%d/start" % jid, {"attempt": 1, "unit": "drover-job-%d.service" % jid})
        self.assertEqual(s, 200, body)
        s, body, _ = win.post("jobs/%d/start" % jid, {"attempt": 2})
        self.assertEqual(s, 409, body)
        s, body, _ = win.post("jobs/%d/result" % jid, {"attempt": 1, "status": "successful", "rc": 0,
                                                       "final_counter": 0})
        self.assertEqual((s, body["finished"]), (200, True))
        self.retire(a, b)

    def test_2_result_before_events_waits(self):
        a, b = self.two_nodes()
        self.retire(b)
        jid = self.launch_now()
        s, w, _ = a.work(wait=10)
        self.assertEqual([x["job"] for x in w["assignments"]], [jid])
        a.post("jobs/%d/start" % jid, {"attempt": 1})
        ev = lambda n: {"counter": n, "event": "verbose", "uuid": "u%d" % n, "stdout": "line %d" % n}  # noqa: E731
        s, body, _ = a.post("jobs/%d/events" % jid, {"attempt": 1, "events": [ev(1), ev(3)]})
        self.assertEqual((s, body["acked"]), (200, 1))
        s, body, _ = a.post("jobs/%d/result" % jid, {"attempt": 1, "status": "successful", "rc": 0,
                                                     "final_counter": 3})
        self.assertEqual((s, body["finished"], body["acked"]), (200, False, 1))
        job = self.api.ok("GET", "/api/v2/jobs/%d/" % jid)
        self.assertEqual((job["status"], job["event_processing_finished"]), ("running", False))
        s, body, _ = a.post("jobs/%d/events" % jid, {"attempt": 1, "events": [ev(2), ev(3)]})
        self.assertEqual((s, body["acked"]), (200, 3))
        job = self.api.ok("GET", "/api/v2/jobs/%d/" % jid)
        self.assertEqual((job["status"], job["event_processing_finished"]), ("successful", True))
        self.assertEqual(stored_counters(self.api, jid), [1, 2, 3])
        self.retire(a)

    def test_3_cancel_in_every_answer(self):
        a, b = self.two_nodes()
        self.retire(b)
        jid = self.launch_now()
        s, w, _ = a.work(wait=10)
        self.assertEqual([x["job"] for x in w["assignments"]], [jid])
        a.post("jobs/%d/start" % jid, {"attempt": 1})
        # a long-poll already waiting is answered at once by the cancel
        box = {}
        t = threading.Thread(target=lambda: box.update(r=a.work(running=[(jid, 1)], wait=30)))
        started = time.monotonic()
        t.start()
        time.sleep(0.5)
        s, body, _ = self.api.post("/api/v2/jobs/%d/cancel/" % jid)
        self.assertIn(s, (200, 202), body)
        t.join(30)
        self.assertLess(time.monotonic() - started, 10)
        want = [{"job": jid, "attempt": 1}]
        self.assertEqual(box["r"][1]["cancel"], want)
        s, hb, _ = a.heartbeat(running=[(jid, 1)])
        self.assertEqual((s, hb["cancel"]), (200, want))
        s, up, _ = a.post("jobs/%d/events" % jid, {"attempt": 1, "events": [{"counter": 1, "event": "verbose"}]})
        self.assertEqual((s, up["cancel"]), (200, want))
        s, body, _ = a.post("jobs/%d/result" % jid, {"attempt": 1, "status": "canceled", "final_counter": 1})
        self.assertEqual((s, body["finished"]), (200, True))
        self.assertEqual(self.api.ok("GET", "/api/v2/jobs/%d/" % jid)["status"], "canceled")
        self.retire(a)


class TestBounded(DroverTestCase):
    """Overload answers 429 with Retry-After instead of falling over."""
    AGENTS = []
    CONTROLLER_CONFIG = "limits:\n  max_long_polls: 2\n  max_streams: 1\n"

    def test_too_many_long_polls_and_streams(self):
        import http.client
        import ssl
        node = RawNode(self.controller, "raw-bounded")
        box = []
        threads = [threading.Thread(target=lambda: box.append(node.work(wait=6))) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1)
        s, body, headers = node.work(wait=1)
        self.assertEqual(s, 429, body)
        self.assertEqual(headers.get("Retry-After"), "5")
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(r[0] for r in box), [200, 200])
        self.assertEqual(node.work(wait=0)[0], 200, "slots are given back")

        # a job nobody runs stays pending: its stream stays open
        self.api.patch("/api/v2/instances/%d/" % node.instance, {"enabled": False})
        jid = self.launch(self.template("ok.yml"))["id"]
        ctx = ssl.create_default_context(cafile=self.controller.ca_file)
        conn = http.client.HTTPSConnection("127.0.0.1", self.controller.port, context=ctx, timeout=30)
        conn.request("GET", "/api/v2/jobs/%d/stream/" % jid, headers={"Authorization": self.api.auth_header()})
        first = conn.getresponse()
        self.assertEqual(first.status, 200)
        try:
            s, body, headers = self.api.get("/api/v2/jobs/%d/stream/" % jid)
            self.assertEqual(s, 429, body)
            self.assertEqual(headers.get("Retry-After"), "5")
        finally:
            conn.close()
        self.api.post("/api/v2/jobs/%d/cancel/" % jid)


class TestLostNode(DroverTestCase):
    """limits.node_lost_timeout 3 s; the agent is frozen with SIGSTOP (a real silent node)."""
    CONTROLLER_CONFIG = "limits:\n  node_lost_timeout: 3s\n"

    def freeze(self):
        agent_signal(self.agent, signal.SIGSTOP)

    def thaw(self):
        agent_signal(self.agent, signal.SIGCONT)

    def node(self, name="node1"):
        return self.api.ok("GET", "/api/v2/instances/?hostname=%s" % name)["results"][0]

    def test_1_running_job_errors_and_returning_node_stops_it(self):
        jt = self.template("sleep.yml", ask_variables_on_launch=True)
        job = self.launch(jt, {"extra_vars": {"sleep_seconds": 40}})
        jid = job["id"]
        self.wait_job(jid, statuses=("running",))
        unit = "drover-job-%d.service" % jid
        wait_for("the unit", lambda: unit in self.units())
        wait_for("first events", lambda: stored_counters(self.api, jid))
        self.freeze()
        try:
            done = self.wait_job(jid, timeout=30)
            self.assertEqual(done["status"], "error")
            self.assertIn("node1", done["job_explanation"])
            n = self.node()
            self.assertEqual((n["node_state"], n["capacity"]), ("unavailable", 0))
            record = stored_counters(self.api, jid)
            self.assertIn(unit, self.units(), "the unit keeps running while its agent is frozen")
        finally:
            self.thaw()
        wait_for("node1 ready again", lambda: self.node()["node_state"] == "ready", timeout=30)
        wait_for("the returning node to stop the unit it no longer owns",
                 lambda: unit not in self.units(), timeout=60)
        time.sleep(2)
        self.assertEqual(stored_counters(self.api, jid), record, "what the node sent after the loss was kept out")
        after = self.api.ok("GET", "/api/v2/jobs/%d/" % jid)
        self.assertEqual(after["status"], "error")

    def test_2_waiting_job_is_placed_again_elsewhere(self):
        raw = RawNode(self.controller, "raw-lost", capacity=100000)   # the most free capacity: it gets the job
        raw.heartbeat()
        jt = self.template("ok.yml")
        jid = self.launch(jt)["id"]
        s, w, _ = raw.work(wait=5)
        self.assertEqual([(x["job"], x["attempt"]) for x in w["assignments"]], [(jid, 1)])
        # it even sends some output before reporting the start (which never comes)...
        s, body, _ = raw.post("jobs/%d/events" % jid, {"attempt": 1, "events": [
            {"counter": n, "event": "verbose", "stdout": "stale %d" % n} for n in (1, 2, 3)]})
        self.assertEqual((s, body["acked"]), (200, 3))
        # raw-lost never starts it and stops reporting: after 3 s it is lost, the job runs on node1
        done = self.wait_job(jid, timeout=60)
        self.assertEqual((done["status"], done["execution_node"]), ("successful", "node1"))
        self.assertEqual(self.api.ok("GET", "/api/v2/instances/%d/" % raw.instance)["node_state"], "unavailable")
        counters = assert_events_complete(self, self.api, jid, self.agent)
        self.assertEqual(event_attempts(self.controller, jid), {2: len(counters)})
        # raw-lost returns: told to stop attempt 1, and whatever it sends for it is refused
        s, hb, _ = raw.heartbeat(running=[(jid, 1)])
        self.assertEqual((s, hb["stop"]), (200, [{"job": jid, "attempt": 1}]))
        s, body, _ = raw.post("jobs/%d/start" % jid, {"attempt": 1})
        self.assertEqual(s, 409, body)
        s, body, _ = raw.post("jobs/%d/events" % jid, {"attempt": 1, "events": [{"counter": 99, "event": "x"}]})
        self.assertEqual(s, 409, body)
        s, body, _ = raw.post("jobs/%d/result" % jid, {"attempt": 1, "status": "failed", "final_counter": 0})
        self.assertEqual(s, 409, body)
        self.assertEqual(stored_counters(self.api, jid), counters)
        self.api.patch("/api/v2/instances/%d/" % raw.instance, {"enabled": False})

    def test_3_cancel_while_offline_closes_job_when_lost(self):
        jt = self.template("sleep.yml", ask_variables_on_launch=True)
        jid = self.launch(jt, {"extra_vars": {"sleep_seconds": 40}})["id"]
        self.wait_job(jid, statuses=("running",))
        unit = "drover-job-%d.service" % jid
        wait_for("the unit", lambda: unit in self.units())
        self.freeze()
        try:
            self.api.post("/api/v2/jobs/%d/cancel/" % jid)
            done = self.wait_job(jid, timeout=30)
            self.assertEqual(done["status"], "canceled")
            self.assertIn("node1", done["job_explanation"])
        finally:
            self.thaw()
        wait_for("the returning node to stop the unit", lambda: unit not in self.units(), timeout=60)
        self.assertEqual(self.api.ok("GET", "/api/v2/jobs/%d/" % jid)["status"], "canceled")

    def test_4_grace_period_after_controller_restart(self):
        """The controller is down longer than node_lost_timeout while the node is silent too: after the
        restart the node still gets the whole timeout before it is declared lost."""
        wait_for("node1 ready", lambda: self.node()["node_state"] == "ready", timeout=30)
        self.freeze()
        try:
            controller_kill9(self.controller)
            time.sleep(5)
            controller_restart(self.controller)
            t0 = time.monotonic()
            type(self).api = self.controller.api
            time.sleep(1.5)
            self.assertEqual(self.node()["node_state"], "ready", "declared lost from a last_seen before the start")
            wait_for("node1 declared lost after the grace period",
                     lambda: self.node()["node_state"] == "unavailable", timeout=30)
            self.assertGreaterEqual(time.monotonic() - t0, 2.5)
        finally:
            self.thaw()
        wait_for("node1 ready again", lambda: self.node()["node_state"] == "ready", timeout=60)


class TestCancelWhileOffline(DroverTestCase):
    """A cancel for a node that is briefly offline (SIGSTOP, shorter than the lost timeout) lands when it
    returns; also with the agent killed and started again."""
    CONTROLLER_CONFIG = "limits:\n  node_lost_timeout: 30s\n"

    def test_1_cancel_delivered_on_return(self):
        jt = self.template("sleep.yml", ask_variables_on_launch=True)
        jid = self.launch(jt, {"extra_vars": {"sleep_seconds": 60}})["id"]
        self.wait_job(jid, statuses=("running",))
        unit = "drover-job-%d.service" % jid
        wait_for("the unit", lambda: unit in self.units())
        agent_signal(self.agent, signal.SIGSTOP)
        try:
            self.api.post("/api/v2/jobs/%d/cancel/" % jid)
            time.sleep(4)
            self.assertEqual(self.api.ok("GET", "/api/v2/jobs/%d/" % jid)["status"], "running")
            self.assertIn(unit, self.units())
        finally:
            agent_signal(self.agent, signal.SIGCONT)
        done = self.wait_job(jid, timeout=60)
        self.assertEqual(done["status"], "canceled")
        wait_for("the unit to be gone", lambda: unit not in self.units(), timeout=30)
        assert_events_complete(self, self.api, jid, self.agent)

    def test_2_cancel_while_agent_dead(self):
        jt = self.template("sleep.yml", ask_variables_on_launch=True)
        jid = self.launch(jt, {"extra_vars": {"sleep_seconds": 60}})["id"]
        self.wait_job(jid, statuses=("running",))
        unit = "drover-job-%d.service" % jid
        wait_for("the unit", lambda: unit in self.units())
        agent_kill9(self.agent)
        self.api.post("/api/v2/jobs/%d/cancel/" % jid)
        time.sleep(2)
        self.assertIn(unit, self.units())
        agent_restart(self.agent)
        done = self.wait_job(jid, timeout=60)
        self.assertEqual(done["status"], "canceled")
        wait_for("the unit to be gone", lambda: unit not in self.units(), timeout=30)
        assert_events_complete(self, self.api, jid, self.agent)


if __name__ == "__main__":
    main()
