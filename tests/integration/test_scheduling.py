"""Unit limits from the agent config on the job's unit, two jobs in parallel on one node, and a job that
waits for capacity and starts as soon as it frees up."""
import time

from drover_harness import DroverTestCase, main, wait_for

LIMITS = """unit:
  memory_max: 512M
  cpu_quota: 50%
  tasks_max: 300
"""


class TestUnitLimits(DroverTestCase):
    AGENTS = [{"name": "node1", "extra_config": LIMITS}]

    def test_limits_visible_on_unit(self):
        job = self.launch(self.template("sleep.yml", timeout=120))
        self.wait_job(job["id"], statuses=("running",))
        unit = "drover-job-%d.service" % job["id"]
        wait_for("unit to be active", lambda: self.systemctl_show(unit, "ActiveState")["ActiveState"] == "active")
        props = self.systemctl_show(unit, "MemoryMax", "CPUQuotaPerSecUSec", "TasksMax", "RuntimeMaxUSec",
                                    "Slice", "Type")
        self.assertEqual(props["MemoryMax"], str(512 * 1024 * 1024))
        self.assertEqual(props["CPUQuotaPerSecUSec"], "500ms")
        self.assertEqual(props["TasksMax"], "300")
        self.assertEqual(props["RuntimeMaxUSec"], "2min")
        self.assertEqual(props["Slice"], "drover-jobs.slice")
        self.assertEqual(props["Type"], "exec")
        self.api.post("/api/v2/jobs/%d/cancel/" % job["id"])
        self.assertEqual(self.wait_job(job["id"])["status"], "canceled")


class TestParallel(DroverTestCase):
    def test_two_jobs_in_parallel_on_one_node(self):
        jt = self.template("sleep.yml", ask_variables_on_launch=True)
        a = self.launch(jt, {"extra_vars": {"sleep_seconds": 4}})
        b = self.launch(jt, {"extra_vars": {"sleep_seconds": 4}})

        def both_running():
            units = self.units()
            return len(units) == 2 and units
        wait_for("two job units at once", both_running, timeout=30)
        ja, jb = self.wait_job(a["id"]), self.wait_job(b["id"])
        self.assertEqual((ja["status"], jb["status"]), ("successful", "successful"))
        self.assertEqual(ja["execution_node"], jb["execution_node"])
        # they overlapped in time
        self.assertLess(max(ja["started"], jb["started"]), min(ja["finished"], jb["finished"]))


class TestCapacity(DroverTestCase):
    # one local host: impact = min(forks 5, 1 host) + 1 = 2; capacity 3 fits one such job at a time
    AGENTS = [{"name": "node1", "capacity": 3}]

    def test_job_waits_for_capacity(self):
        jt = self.template("sleep.yml", ask_variables_on_launch=True)
        first = self.launch(jt, {"extra_vars": {"sleep_seconds": 3}})
        self.wait_job(first["id"], statuses=("running",))
        second = self.launch(jt, {"extra_vars": {"sleep_seconds": 1}})
        time.sleep(1)
        waiting = self.api.ok("GET", "/api/v2/jobs/%d/" % second["id"])
        self.assertEqual(waiting["status"], "pending")
        self.assertIn("capacity", waiting["job_explanation"].lower())
        node = self.api.ok("GET", "/api/v2/instances/?hostname=node1")["results"][0]
        self.assertEqual(node["capacity"], 3)
        self.assertEqual(node["consumed_capacity"], 2)
        f = self.wait_job(first["id"])
        s = self.wait_job(second["id"])
        self.assertEqual((f["status"], s["status"]), ("successful", "successful"))
        self.assertGreaterEqual(s["started"], f["finished"])


if __name__ == "__main__":
    main()
