"""A database error on the controller, produced for real: the SQLite database lives on a small tmpfs
mounted in the controller's own mount namespace (unshare), which the test fills up (disk full) in the
middle of a job. The controller must log a clear error, answer 503 with Retry-After (the agent retries),
never crash and never mark a job finished without its events; once space is back the job
completes with every event stored exactly once."""
import errno
import os
import time

from drover_harness import (DroverTestCase, assert_events_complete, controller_restart, main, stored_counters,
                            wait_for)

STREAM_PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks:
    - name: stream events slowly
      shell: "sleep {{ pause | default(0.3) }}; echo item {{ item }}"
      loop: "{{ range(0, items | default(40) | int) | list }}"
"""


class TestDatabaseErrors(DroverTestCase):
    # the outage below (> 10 s) is longer than the lost-node timeout: heartbeats cannot be recorded
    # meanwhile, so the grace period must restart after the database refused a write
    CONTROLLER_CONFIG = "limits:\n  node_lost_timeout: 8s\n"

    @classmethod
    def setup_objects(cls):
        super().setup_objects()
        with open(os.path.join(cls.controller.projects_root, "demo", "stream.yml"), "w") as f:
            f.write(STREAM_PLAYBOOK)
        # move the database onto a 16 MiB tmpfs private to the controller's mount namespace
        ctl = cls.controller
        ctl.stop()   # SIGTERM: the database is checkpointed and closed
        cls.db_dir = os.path.join(cls.workdir, "dbfs")
        os.makedirs(cls.db_dir, exist_ok=True)
        script = ("set -e; mount -t tmpfs -o size=16m,mode=0700 drover-test-db %s; cp -a %s/drover.db %s/; "
                  "exec \"$0\" \"$@\"" % (cls.db_dir, ctl.state_dir, cls.db_dir))
        ctl.extra_config += "database: sqlite:%s/drover.db\n" % cls.db_dir
        controller_restart(ctl, argv_prefix=["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script])
        cls.api = ctl.api

    def inner(self, path=""):
        """The tmpfs as the controller sees it (its mount namespace, through /proc)."""
        return "/proc/%d/root%s%s" % (self.controller.proc.pid, self.db_dir, path)

    def fill(self):
        fd = os.open(self.inner("/filler"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 512):
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as e:
                        self.assertEqual(e.errno, errno.ENOSPC)
                        break
        finally:
            os.close(fd)

    def log(self):
        with open(self.controller.log_path, errors="replace") as f:
            return f.read()

    def mid_job(self):
        jt = self.template("stream.yml", ask_variables_on_launch=True)
        jid = self.launch(jt, {"extra_vars": {"items": 40, "pause": 0.3}})["id"]
        self.wait_job(jid, statuses=("running",))
        wait_for("some events stored", lambda: len(stored_counters(self.api, jid)) >= 5, timeout=60)
        return jid

    def check_outage(self, jid, marker_before):
        # the agent keeps uploading and gets 503 + Retry-After; nothing is marked final meanwhile
        wait_for("a 503 for a database error", lambda: self.log().count("answering 503") > marker_before, timeout=60)
        time.sleep(12)
        self.assertIsNone(self.controller.proc.poll(), "the controller must not crash")
        job = self.api.ok("GET", "/api/v2/jobs/%d/" % jid)
        self.assertNotIn(job["status"], ("successful", "failed"))
        # the AWX API refuses writes with a server error and stays up (api_storage_error answers 500)
        s, body, headers = self.api.post("/api/v2/job_templates/%d/launch/" % self._jt_id, {})
        self.assertIn(s, (500, 503), body)

    def finish(self, jid):
        done = self.wait_job(jid, timeout=180)
        self.assertEqual(done["status"], "successful", done["job_explanation"])
        node = self.api.ok("GET", "/api/v2/instances/?hostname=node1")["results"][0]
        self.assertEqual(node["node_state"], "ready")
        self.assertNotIn("stopped reporting", self.log())
        assert_events_complete(self, self.api, jid, self.agent)

    def test_1_disk_full(self):
        before = self.log().count("answering 503")
        jid = self.mid_job()
        self._jt_id = self.api.ok("GET", "/api/v2/jobs/%d/" % jid)["job_template"]
        try:
            self.fill()
            self.check_outage(jid, before)
            self.assertRegex(self.log(), r"(No space left on device|database or disk is full)")
        finally:
            os.unlink(self.inner("/filler"))
        self.finish(jid)


if __name__ == "__main__":
    main()
