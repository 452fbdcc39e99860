"""Failing, timed out and canceled jobs: status, explanation, and no unit left behind."""
import time

from drover_harness import DroverTestCase, main, wait_for


class TestJobOutcomes(DroverTestCase):
    def test_failing_playbook(self):
        job = self.launch(self.template("fail.yml"))
        done = self.wait_job(job["id"])
        self.assertEqual(done["status"], "failed")
        self.assertTrue(done["failed"])
        self.assertTrue(done["event_processing_finished"])
        events = self.api.all_pages("/api/v2/jobs/%d/job_events/?event=runner_on_failed" % job["id"])
        self.assertEqual(len(events), 1)
        hs = self.api.ok("GET", "/api/v2/jobs/%d/job_host_summaries/" % job["id"])["results"]
        self.assertEqual(hs[0]["failures"], 1)
        self.assertEqual(self.units(), [])

    def test_timeout(self):
        jt = self.template("sleep.yml", timeout=2)
        job = self.launch(jt)
        started = time.monotonic()
        done = self.wait_job(job["id"], timeout=40)
        self.assertEqual(done["status"], "failed")
        self.assertEqual(done["job_explanation"], "Job terminated due to timeout")
        self.assertLess(time.monotonic() - started, 25)
        self.assertEqual(self.units(), [])

    def test_cancel_running_job(self):
        job = self.launch(self.template("sleep.yml"))
        self.wait_job(job["id"], statuses=("running",), timeout=30)
        # wait until the playbook is really inside the sleep task
        wait_for("the sleep task to start", lambda: self.api.ok(
            "GET", "/api/v2/jobs/%d/job_events/?event=runner_on_start" % job["id"])["count"] > 0, timeout=30)
        self.assertEqual(self.api.ok("GET", "/api/v2/jobs/%d/cancel/" % job["id"]), {"can_cancel": True})
        t0 = time.monotonic()
        status, _, _ = self.api.post("/api/v2/jobs/%d/cancel/" % job["id"])
        self.assertEqual(status, 202)
        done = self.wait_job(job["id"], timeout=10, )
        elapsed = time.monotonic() - t0
        self.assertEqual(done["status"], "canceled")
        self.assertTrue(done["failed"])
        self.assertLess(elapsed, 2.0, "cancel took %.2fs" % elapsed)
        self.assertEqual(self.units(), [])
        self.assertEqual(self.api.ok("GET", "/api/v2/jobs/%d/cancel/" % job["id"]), {"can_cancel": False})


if __name__ == "__main__":
    main()
