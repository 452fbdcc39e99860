"""Soak: N short jobs through one node while its agent is killed with SIGKILL and started again three
times during the run. Every job must end successful with its stored event counters exactly 1..final
counter, equal to the node's events file, all from its first attempt (nothing lost, nothing doubled,
nothing run twice).

N comes from DROVER_SOAK_JOBS (default 60, what the default test command runs); the full run is
`DROVER_SOAK_JOBS=1000` (docs/testing.md)."""
import os
import time

from drover_harness import (DroverTestCase, agent_kill9, agent_restart, assert_events_complete, event_attempts,
                            main, wait_for)

SHORT_PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks:
    - name: one
      debug:
        msg: "job {{ tower_job_id | default('?') }}"
    - name: two
      command: /bin/true
"""


class TestSoak(DroverTestCase):
    # impact 2 per job: capacity 8 runs 4 jobs at once
    AGENTS = [{"name": "node1", "capacity": 8}]

    @classmethod
    def setup_objects(cls):
        super().setup_objects()
        with open(os.path.join(cls.controller.projects_root, "demo", "short.yml"), "w") as f:
            f.write(SHORT_PLAYBOOK)

    def finished_count(self, ids):
        jobs = self.api.all_pages("/api/v2/jobs/?page_size=200&status__in=successful,failed,error,canceled")
        return len([j for j in jobs if j["id"] in ids])

    def test_soak_with_agent_restarts(self):
        n = int(os.environ.get("DROVER_SOAK_JOBS", "60"))
        jt = self.template("short.yml")
        started = time.monotonic()
        ids = set()
        for _ in range(n):
            ids.add(self.launch(jt)["id"])
        restarts = 0
        for fraction in (0.25, 0.5, 0.75):
            wait_for("%d%% of the jobs final" % (fraction * 100),
                     lambda: self.finished_count(ids) >= int(n * fraction), timeout=60 + n * 3, interval=0.5)
            agent_kill9(self.agent)
            time.sleep(0.5)
            agent_restart(self.agent)
            restarts += 1
        wait_for("every job final", lambda: self.finished_count(ids) == n, timeout=120 + n * 3, interval=0.5)
        elapsed = time.monotonic() - started
        self.assertEqual(restarts, 3)

        bad = []
        for jid in sorted(ids):
            job = self.api.ok("GET", "/api/v2/jobs/%d/" % jid)
            if job["status"] != "successful":
                bad.append((jid, job["status"], job["job_explanation"]))
                continue
            counters = assert_events_complete(self, self.api, jid, self.agent)
            self.assertEqual(event_attempts(self.controller, jid), {1: len(counters)}, "job %d" % jid)
        self.assertEqual(bad, [])
        self.assertEqual(self.units(), [], "no job unit is left behind")
        print("\nsoak: %d jobs, 3 agent kills, %.1f s (%.2f jobs/s)" % (n, elapsed, n / elapsed))


if __name__ == "__main__":
    main()
