"""drover_harness: run the real thing for integration tests.

A private systemd (privsd.PrivateSystemd), a drover-controller on the host (HTTPS on a free loopback port,
SQLite in a temp dir), and drover-agents inside the private systemd's namespaces (so they reach its
/run/systemd/private). Job directories, logs and the database live on the real disk under the test's
work directory (kept on failure, removed on success). Nothing here is mocked.
"""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import privsd  # noqa: E402

BUILD_DIR = os.environ.get("DROVER_BUILD_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build-test"))
SOURCE_DIR = os.environ.get("DROVER_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
CONTROLLER_BIN = os.path.join(BUILD_DIR, "controller", "drover-controller")
AGENT_BIN = os.path.join(BUILD_DIR, "agent", "drover-agent")
CLI_BIN = os.path.join(BUILD_DIR, "cli", "droverctl")
ADMIN_PASSWORD = "drover-test-password"
FINAL = ("successful", "failed", "error", "canceled")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout=30.0, interval=0.05):
    """Poll fn() until it returns a truthy value; fail the test with `what` after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


class ApiError(Exception):
    pass


class Api:
    """A tiny HTTPS JSON client for the controller (urllib, CA pinned)."""

    def __init__(self, base, ca_file, user="admin", password=ADMIN_PASSWORD, token=None):
        self.base = base
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.user, self.password, self.token = user, password, token

    def auth_header(self):
        if self.token:
            return "Bearer " + self.token
        if self.user is None:
            return None
        raw = ("%s:%s" % (self.user, self.password)).encode()
        return "Basic " + base64.b64encode(raw).decode()

    def request(self, method, path, body=None, raw=None, headers=None, auth=True):
        """Returns (status, parsed JSON or text, headers). Never raises for HTTP errors."""
        url = self.base + path
        data = None
        hdrs = {"Accept": "application/json"}
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if auth and self.auth_header():
            hdrs["Authorization"] = self.auth_header()
        hdrs.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=60) as r:
                status, text, rh = r.status, r.read().decode("utf-8", "replace"), r.headers
        except urllib.error.HTTPError as e:
            status, text, rh = e.code, e.read().decode("utf-8", "replace"), e.headers
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return status, parsed, rh

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body if body is not None else {}, **kw)

    def patch(self, path, body, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def ok(self, method, path, body=None, expect=(200, 201, 202, 204)):
        status, parsed, _ = self.request(method, path, body)
        if status not in expect:
            raise ApiError("%s %s -> %d %r" % (method, path, status, parsed))
        return parsed

    def all_pages(self, path):
        results = []
        while path:
            page = self.ok("GET", path)
            results.extend(page["results"])
            path = page.get("next")
        return results


class Controller:
    def __init__(self, workdir, extra_config="", admin_password=ADMIN_PASSWORD, port=None):
        self.workdir = workdir
        self.admin_password = admin_password
        self.port = port or free_port()
        self.state_dir = os.path.join(workdir, "controller")
        self.projects_root = os.path.join(workdir, "projects")
        os.makedirs(self.projects_root, exist_ok=True)
        self.config_path = os.path.join(workdir, "controller.yaml")
        self.log_path = os.path.join(workdir, "controller.log")
        self.extra_config = extra_config
        self.proc = None
        self.ca_file = None
        self.base = "https://127.0.0.1:%d" % self.port

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write("listen: 127.0.0.1:%d\n" % self.port)
            f.write("state_dir: %s\n" % self.state_dir)
            f.write("projects_root: %s\n" % self.projects_root)
            f.write("log_level: debug\n")
            if self.admin_password:
                f.write("admin:\n  username: admin\n  password: %s\n" % self.admin_password)
            f.write(self.extra_config)

    def start(self):
        self.write_config()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([CONTROLLER_BIN, "--config", self.config_path],
                                     stdout=self.log, stderr=self.log)
        self.ca_file = os.path.join(self.state_dir, "tls", "ca.crt")

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("controller exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            if not os.path.exists(self.ca_file):
                return False
            try:
                s, _, _ = Api(self.base, self.ca_file).get("/api/v2/ping/")
                return s == 200
            except (OSError, ssl.SSLError):
                return False
        wait_for("controller to answer /api/v2/ping/", up, timeout=30)
        if not self.admin_password:
            # generated on first start, written 0600 to the state directory
            with open(os.path.join(self.state_dir, "admin-password")) as f:
                self.admin_password = f.read().strip()
        self.api = Api(self.base, self.ca_file, password=self.admin_password)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""


class Agent:
    """A drover-agent running inside the private systemd's namespaces."""

    def __init__(self, psd, controller, workdir, name="node1", capacity=0, extra_config="",
                 keep_job_dirs=True):
        self.psd, self.controller, self.name = psd, controller, name
        self.dir = os.path.join(workdir, "agent-" + name)
        self.state_dir = os.path.join(self.dir, "state")
        os.makedirs(self.state_dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "agent.yaml")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.capacity = capacity
        self.extra_config = extra_config
        self.keep_job_dirs = keep_job_dirs
        self.proc = None

    def start(self, enroll=True):
        if enroll and not os.path.exists(os.path.join(self.state_dir, "node-secret")):
            tok = self.controller.api.ok("POST", "/api/v2/instances/enrollment_tokens/", {"hostname": self.name})
            token = tok["token"]
        else:
            token = None
        with open(self.config_path, "w") as f:
            f.write("controller_url: %s\n" % self.controller.base)
            f.write("ca_file: %s\n" % self.controller.ca_file)
            if token:
                f.write("enrollment_token: %s\n" % token)
            f.write("node_name: %s\n" % self.name)
            f.write("state_dir: %s\n" % self.state_dir)
            f.write("share_dir: %s\n" % os.path.join(SOURCE_DIR, "agent"))
            f.write("log_level: debug\n")
            f.write("heartbeat_interval: 1s\n")
            if self.capacity:
                f.write("capacity: %d\n" % self.capacity)
            f.write("keep_job_dirs: %s\n" % ("true" if self.keep_job_dirs else "false"))
            f.write(self.extra_config)
        self.log = open(self.log_path, "ab")
        self.proc = self.psd.popen([AGENT_BIN, "--config", self.config_path], stdout=self.log, stderr=self.log)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("agent exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            res = self.controller.api.ok("GET", "/api/v2/instances/?hostname=%s" % self.name)["results"]
            return res and res[0].get("node_state") == "ready" and res[0]
        self.instance = wait_for("agent %s to be ready" % self.name, ready, timeout=30)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, n=80):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def job_dir(self, job_id):
        return os.path.join(self.state_dir, "jobs", str(job_id))

    def events_file(self, job_id):
        return os.path.join(self.job_dir(job_id), "artifacts", str(job_id), "job_events.jsonl")


PLAYBOOKS = {
    "ok.yml": """- hosts: all
  gather_facts: false
  tasks:
    - name: say hello
      debug:
        msg: "hello from {{ inventory_hostname }}"
    - name: change something
      command: /bin/true
      changed_when: true
    - name: a loop
      debug:
        msg: "item {{ item }}"
      loop: [1, 2, 3]
""",
    "fail.yml": """- hosts: all
  gather_facts: false
  tasks:
    - name: this fails
      command: /bin/false
""",
    "sleep.yml": """- hosts: all
  gather_facts: false
  tasks:
    - name: sleep a while
      command: sleep {{ sleep_seconds | default(30) }}
""",
    "trap.yml": """- hosts: all
  gather_facts: false
  tasks:
    - name: ignore SIGTERM
      shell: trap '' TERM; sleep {{ sleep_seconds | default(60) }}
""",
}


class DroverTestCase(unittest.TestCase):
    """Boots private systemd + controller + one agent per test class. Subclasses may set
    AGENTS (list of dicts of Agent kwargs) and CONTROLLER_CONFIG."""

    AGENTS = [{"name": "node1"}]
    CONTROLLER_CONFIG = ""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise RuntimeError("integration tests need root (they boot a private systemd); see docs/testing.md")
        base = os.path.join(BUILD_DIR, "test-runs")
        os.makedirs(base, exist_ok=True)
        cls.workdir = tempfile.mkdtemp(prefix=cls.__name__ + "-", dir=base)
        cls.psd = privsd.PrivateSystemd(os.path.join(cls.workdir, "systemd"), "drover-" + os.path.basename(cls.workdir))
        cls.psd.start()
        try:
            cls.controller = Controller(cls.workdir, cls.CONTROLLER_CONFIG).start()
            cls.api = cls.controller.api
            for name, text in PLAYBOOKS.items():
                d = os.path.join(cls.controller.projects_root, "demo")
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
            cls.agents = [Agent(cls.psd, cls.controller, cls.workdir, **kw).start() for kw in cls.AGENTS]
            cls.agent = cls.agents[0] if cls.agents else None
            cls.setup_objects()
        except BaseException:
            cls.dump_logs()
            cls.teardown_all()
            raise
        cls.failed = False

    @classmethod
    def setup_objects(cls):
        api = cls.api
        org = api.ok("GET", "/api/v2/organizations/?name=Default")["results"][0]
        cls.org = org
        cls.inventory = api.ok("POST", "/api/v2/inventories/", {"name": "local", "organization": org["id"]})
        api.ok("POST", "/api/v2/hosts/", {"name": "localhost", "inventory": cls.inventory["id"],
                                          "variables": json.dumps({"ansible_connection": "local",
                                                                   "ansible_python_interpreter": "/usr/bin/python3"})})
        cls.project = api.ok("POST", "/api/v2/projects/", {"name": "demo", "organization": org["id"],
                                                           "scm_type": "", "local_path": "demo"})

    @classmethod
    def template(cls, playbook, **fields):
        body = {"name": "%s-%d" % (playbook, time.monotonic_ns()), "inventory": cls.inventory["id"],
                "project": cls.project["id"], "playbook": playbook, "organization": cls.org["id"]}
        body.update(fields)
        return cls.api.ok("POST", "/api/v2/job_templates/", body)

    @classmethod
    def launch(cls, template, body=None):
        status, job, headers = cls.api.post("/api/v2/job_templates/%d/launch/" % template["id"], body or {})
        if status != 201:
            raise ApiError("launch -> %d %r" % (status, job))
        return job

    @classmethod
    def wait_job(cls, job_id, statuses=FINAL, timeout=60):
        def done():
            j = cls.api.ok("GET", "/api/v2/jobs/%d/" % job_id)
            return j if j["status"] in statuses else None
        return wait_for("job %d to reach %s" % (job_id, statuses), done, timeout=timeout)

    @classmethod
    def units(cls, pattern="drover-job-*"):
        """Names of loaded job units inside the private systemd."""
        out = cls.psd.run(["systemctl", "list-units", "--all", "--no-legend", "--plain", pattern],
                          capture_output=True, text=True).stdout
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    @classmethod
    def systemctl_show(cls, unit, *props):
        out = cls.psd.run(["systemctl", "show", unit] + ["-p" + p for p in props],
                          capture_output=True, text=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    @classmethod
    def dump_logs(cls):
        for a in getattr(cls, "agents", []) or []:
            sys.stderr.write("---- agent %s log ----\n%s\n" % (a.name, a.log_tail()))
        if getattr(cls, "controller", None):
            sys.stderr.write("---- controller log ----\n%s\n" % cls.controller.log_tail())
        if getattr(cls, "psd", None):
            sys.stderr.write("---- systemd log ----\n%s\n" % cls.psd.log_tail())

    @classmethod
    def teardown_all(cls):
        for a in getattr(cls, "agents", []) or []:
            a.stop()
        if getattr(cls, "controller", None):
            cls.controller.stop()
        if getattr(cls, "psd", None):
            cls.psd.stop()

    def run(self, result=None):
        result = super().run(result)
        if result and (result.failures or result.errors):
            type(self).failed = True
        return result

    @classmethod
    def tearDownClass(cls):
        if cls.failed:
            cls.dump_logs()
        cls.teardown_all()
        if not cls.failed and not os.environ.get("DROVER_KEEP_TEST_DIRS"):
            shutil.rmtree(cls.workdir, ignore_errors=True)


def main():
    unittest.main(verbosity=2)
