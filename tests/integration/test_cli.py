"""droverctl against the real controller and agent: login writes a 0600 config, `job launch --follow`
prints the playbook output live and exits with the job's outcome, list/show/events/node list work."""
import json
import os
import stat
import subprocess

from drover_harness import ADMIN_PASSWORD, CLI_BIN, DroverTestCase, main


class TestCli(DroverTestCase):
    def cli(self, *args, check=True, password=None):
        env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(self.workdir, "cli-config"))
        env.pop("DROVER_URL", None)
        r = subprocess.run([CLI_BIN] + list(args), env=env, capture_output=True, text=True, timeout=120,
                           input=password)
        if check and r.returncode != 0:
            self.fail("droverctl %s -> %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def setUp(self):
        self.cli("login", "--url", self.controller.base, "--ca-file", self.controller.ca_file,
                 "--user", "admin", password=ADMIN_PASSWORD + "\n")

    def test_login_config_is_private(self):
        path = os.path.join(self.workdir, "cli-config", "drover", "cli.yaml")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            self.assertNotIn(ADMIN_PASSWORD, f.read())

    def test_launch_follow_success_and_failure(self):
        self.template("ok.yml", name="cli-ok")
        r = self.cli("job", "launch", "cli-ok", "--follow")
        self.assertIn("TASK [say hello]", r.stdout)
        self.assertIn("hello from localhost", r.stdout)
        self.assertIn("PLAY RECAP", r.stdout)
        self.assertIn("successful", r.stderr)
        self.template("fail.yml", name="cli-fail")
        r = self.cli("job", "launch", "cli-fail", "--follow", check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("TASK [this fails]", r.stdout)

    def test_list_show_events_nodes(self):
        self.template("ok.yml", name="cli-list")
        r = self.cli("--json", "job", "launch", "cli-list")
        job_id = json.loads(r.stdout)["id"]
        self.wait_job(job_id)
        r = self.cli("job", "list")
        self.assertIn("cli-list", r.stdout)
        r = self.cli("job", "show", str(job_id))
        self.assertIn("successful", r.stdout)
        r = self.cli("--json", "job", "events", str(job_id))
        events = json.loads(r.stdout)
        self.assertEqual([e["counter"] for e in events], list(range(1, len(events) + 1)))
        r = self.cli("node", "list")
        self.assertIn("node1", r.stdout)

    def test_cancel(self):
        self.template("sleep.yml", name="cli-sleep")
        r = self.cli("--json", "job", "launch", "cli-sleep")
        job_id = json.loads(r.stdout)["id"]
        self.wait_job(job_id, statuses=("running",))
        self.cli("job", "cancel", str(job_id))
        self.assertEqual(self.wait_job(job_id)["status"], "canceled")


if __name__ == "__main__":
    main()
