"""A successful playbook end to end: launch through the API, run as a transient unit, events stored
exactly as the callback wrote them, stdout and host summaries served, unit and data dir gone."""
import json
import os

from drover_harness import DroverTestCase, main, wait_for


class TestJobSuccess(DroverTestCase):
    def test_successful_playbook(self):
        jt = self.template("ok.yml")
        job = self.launch(jt)
        self.assertEqual(job["status"], "pending")
        self.assertEqual(job["job"], job["id"])
        done = self.wait_job(job["id"])
        self.assertEqual(done["status"], "successful", done)
        self.assertFalse(done["failed"])
        self.assertTrue(done["event_processing_finished"])
        self.assertEqual(done["execution_node"], "node1")
        self.assertIsNotNone(done["started"])
        self.assertIsNotNone(done["finished"])
        self.assertGreater(done["elapsed"], 0)
        args = json.loads(done["job_args"])
        self.assertTrue(args[0].endswith("ansible-playbook"), args)
        self.assertIn("ok.yml", args)
        self.assertIn("ANSIBLE_STDOUT_CALLBACK", done["job_env"])

        # stored events == what the callback wrote (count, order, names, parent links)
        with open(self.agent.events_file(job["id"])) as f:
            written = [json.loads(line) for line in f]
        stored = self.api.all_pages("/api/v2/jobs/%d/job_events/?page_size=200" % job["id"])
        self.assertEqual(len(stored), len(written))
        self.assertEqual([e["counter"] for e in stored], list(range(1, len(written) + 1)))
        self.assertEqual([e["event"] for e in stored], [e["event"] for e in written])
        self.assertEqual([e["uuid"] for e in stored], [e["uuid"] for e in written])
        self.assertEqual([e["parent_uuid"] for e in stored], [e["parent_uuid"] for e in written])
        names = [e["event"] for e in stored]
        self.assertEqual(names[0], "playbook_on_start")
        self.assertEqual(names[1], "playbook_on_play_start")
        self.assertEqual(names[-1], "playbook_on_stats")
        self.assertEqual(names.count("runner_item_on_ok"), 3)
        by_uuid = {e["uuid"]: e for e in stored}
        for e in stored:
            if e["event"] == "playbook_on_task_start":
                self.assertEqual(by_uuid[e["parent_uuid"]]["event"], "playbook_on_play_start")
            if e["event"].startswith("runner_on_"):
                self.assertEqual(by_uuid[e["parent_uuid"]]["event"], "playbook_on_task_start")

        # event filters
        page = self.api.ok("GET", "/api/v2/jobs/%d/job_events/?event=runner_on_ok" % job["id"])
        self.assertTrue(page["count"] >= 2 and all(e["event"] == "runner_on_ok" for e in page["results"]))
        page = self.api.ok("GET", "/api/v2/jobs/%d/job_events/?counter__gt=%d" % (job["id"], len(stored) - 2))
        self.assertEqual([e["counter"] for e in page["results"]], [len(stored) - 1, len(stored)])

        # stdout
        status, text, headers = self.api.get("/api/v2/jobs/%d/stdout/?format=txt" % job["id"])
        self.assertEqual(status, 200)
        self.assertIn("TASK [say hello]", text)
        self.assertIn("hello from localhost", text)
        self.assertIn("PLAY RECAP", text)
        status, js, _ = self.api.get("/api/v2/jobs/%d/stdout/?format=json" % job["id"])
        self.assertEqual(status, 200)
        self.assertIn("TASK [change something]", js["content"])

        # host summaries from playbook_on_stats
        hs = self.api.ok("GET", "/api/v2/jobs/%d/job_host_summaries/" % job["id"])
        self.assertEqual(hs["count"], 1)
        s = hs["results"][0]
        self.assertEqual(s["host_name"], "localhost")
        self.assertEqual((s["ok"], s["changed"], s["failures"], s["dark"]), (3, 1, 0, 0))

        # nothing left behind on the node: unit gone (data dir kept only because the test asked)
        self.assertEqual(self.units(), [])
        with open(os.path.join(self.agent.job_dir(job["id"]), "artifacts", str(job["id"]), "status")) as f:
            self.assertEqual(f.read().strip(), "successful")


class TestDataDirRemoved(DroverTestCase):
    AGENTS = [{"name": "node1", "keep_job_dirs": False}]

    def test_private_data_dir_removed_after_job(self):
        job = self.launch(self.template("ok.yml"))
        done = self.wait_job(job["id"])
        self.assertEqual(done["status"], "successful")
        # the agent removes the dir right after the controller accepted the result
        wait_for("the private data dir to be removed", lambda: not os.path.exists(self.agent.job_dir(job["id"])),
                 timeout=10)
        self.assertEqual(self.units(), [])


if __name__ == "__main__":
    main()
