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


def stop_process(proc, grace=10):
    """SIGTERM a process we started, SIGKILL it after `grace` seconds."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def file_tail(path, n):
    """The last n lines of a log file ("" if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
    except OSError:
        return ""


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
        stop_process(self.proc)
        self.proc = None

    def log_tail(self, n=60):
        return file_tail(self.log_path, n)


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

    def write_config(self, enroll=True):
        """agent.yaml for this node, with a fresh one-time enrollment token until it has a secret."""
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

    def start(self, enroll=True):
        self.write_config(enroll)
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
        stop_process(self.proc)
        self.proc = None

    def log_tail(self, n=80):
        return file_tail(self.log_path, n)

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


def run_awx_playbook(test, playbook, name, extra_vars):
    """Run a playbook using the real awx.awx collection against test.controller (CA pinned through
    SSL_CERT_FILE); `out` in extra_vars is where it writes its registered results. Returns
    (results, output); fails the test when ansible-playbook fails."""
    pb = os.path.join(test.workdir, name + ".yml")
    with open(pb, "w") as f:
        f.write(playbook)
    out = os.path.join(test.workdir, name + ".json")
    env = dict(os.environ, SSL_CERT_FILE=test.controller.ca_file, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(test.workdir, "ansible-tmp"),
               HOME=test.workdir, ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3")
    evars = dict(extra_vars, url=test.controller.base, password=ADMIN_PASSWORD, out=out)
    r = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", pb, "-e", json.dumps(evars)],
                       env=env, capture_output=True, text=True, timeout=300)
    test.assertEqual(r.returncode, 0, r.stdout + r.stderr)
    with open(out) as f:
        return json.load(f), r.stdout + r.stderr


def main():
    unittest.main(verbosity=2)


# ---- fault-injection helpers (issue 4, controller side): kill/restart processes for real ----

def controller_kill9(ctl):
    """kill -9 the controller (no shutdown path runs); keeps port, state and database for a restart."""
    if ctl.proc and ctl.proc.poll() is None:
        ctl.proc.kill()
        ctl.proc.wait()
    ctl.proc = None


def controller_restart(ctl, env=None, argv_prefix=None):
    """Start the controller again on the same port with the same state (after controller_kill9 or
    stop()). env: extra environment variables for the controller process only. argv_prefix: a command
    the controller is exec'ed through (e.g. an unshare/mount wrapper)."""
    ctl.write_config()
    ctl.log = open(ctl.log_path, "ab")
    penv = dict(os.environ)
    penv.update(env or {})
    argv = list(argv_prefix or []) + [CONTROLLER_BIN, "--config", ctl.config_path]
    ctl.proc = subprocess.Popen(argv, stdout=ctl.log, stderr=ctl.log, env=penv)
    ctl.ca_file = os.path.join(ctl.state_dir, "tls", "ca.crt")

    def up():
        if ctl.proc.poll() is not None:
            raise AssertionError("controller exited with %s:\n%s" % (ctl.proc.returncode, ctl.log_tail()))
        if not os.path.exists(ctl.ca_file):
            return False
        try:
            s, _, _ = Api(ctl.base, ctl.ca_file, password=ctl.admin_password).get("/api/v2/ping/")
            return s == 200
        except (OSError, ssl.SSLError):
            return False
    wait_for("controller to answer /api/v2/ping/ again", up, timeout=30)
    ctl.api = Api(ctl.base, ctl.ca_file, password=ctl.admin_password)
    return ctl


def agent_pid(agent):
    """The host PID of the drover-agent process itself (agent.proc is nsenter, its parent)."""
    if not agent.proc or agent.proc.poll() is not None:
        return None
    return privsd.PrivateSystemd._child_of(agent.proc.pid)


def agent_signal(agent, sig):
    """Send sig to the agent process. nsenter stops itself when its child stops (and resumes it when
    continued), so SIGCONT goes to both."""
    import signal
    pid = wait_for("the agent's PID", lambda: agent_pid(agent), timeout=10)
    if sig == signal.SIGCONT:
        os.kill(agent.proc.pid, sig)
    os.kill(pid, sig)
    return pid


def agent_kill9(agent):
    """kill -9 the agent process (its job units keep running in the private systemd)."""
    import signal
    pid = agent_pid(agent)
    if pid:
        os.kill(pid, signal.SIGKILL)
    if agent.proc:
        agent.proc.wait(10)
    agent.proc = None


def agent_restart(agent):
    """Start a killed/stopped agent again with its state (node secret, job directories)."""
    return agent.start(enroll=True)


def stored_counters(api, job_id):
    """The counters of every stored event of a job, in counter order (duplicates would show)."""
    evs = api.all_pages("/api/v2/jobs/%d/job_events/?order_by=counter&page_size=200" % job_id)
    return [e["counter"] for e in evs]


def events_file_counters(agent, job_id):
    """The counters in the job's events file on the node (the spool), complete lines only."""
    out = []
    try:
        with open(agent.events_file(job_id), "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    out.append(json.loads(line)["counter"])
                except (ValueError, KeyError):
                    pass
    except FileNotFoundError:
        pass
    return out


def event_attempts(ctl, job_id):
    """{attempt: number of stored events} of a job, read from the controller's database."""
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(ctl.state_dir, "drover.db"), uri=True, timeout=10)
    try:
        rows = db.execute("SELECT attempt, COUNT(*) FROM job_events WHERE job = ? GROUP BY attempt",
                          (job_id,)).fetchall()
    finally:
        db.close()
    return dict(rows)


def assert_events_complete(tc, api, job_id, agent=None):
    """Stored event counters are exactly 1..final counter: nothing lost, nothing doubled. With agent,
    the final counter is the last counter in the node's events file."""
    counters = stored_counters(api, job_id)
    tc.assertTrue(counters, "job %d has no stored events" % job_id)
    tc.assertEqual(counters, list(range(1, len(counters) + 1)), "job %d: stored counters have gaps or repeats" % job_id)
    if agent is not None:
        spool = events_file_counters(agent, job_id)
        tc.assertEqual(counters, spool, "job %d: stored events differ from the node's events file" % job_id)
    job = api.ok("GET", "/api/v2/jobs/%d/" % job_id)
    tc.assertTrue(job["event_processing_finished"])
    return counters


class RawNode:
    """A node speaking the agent protocol directly (no drover-agent): for protocol-level races."""

    def __init__(self, ctl, name, capacity=10):
        self.ctl, self.name = ctl, name
        tok = ctl.api.ok("POST", "/api/v2/instances/enrollment_tokens/", {"hostname": name})["token"]
        s, body, _ = Api(ctl.base, ctl.ca_file, user=None).post(
            "/api/agent/v1/enroll", {"token": tok, "hostname": name, "cpus": 2, "memory": 4 << 30,
                                     "capacity": capacity, "runtimes": ["systemd"], "version": "test"})
        if s != 201:
            raise ApiError("enroll %s -> %d %r" % (name, s, body))
        self.instance = body["instance"]
        self.secret = body["secret"]

    def api(self):
        return Api(self.ctl.base, self.ctl.ca_file, user=None, token=self.secret)

    def post(self, path, body):
        return self.api().post("/api/agent/v1/" + path, body)

    def heartbeat(self, running=(), capacity=None):
        body = {"cpus": 2, "memory": 4 << 30, "runtimes": ["systemd"], "version": "test",
                "running": [{"job": j, "attempt": a} for j, a in running]}
        if capacity is not None:
            body["capacity"] = capacity
        return self.post("heartbeat", body)

    def work(self, running=(), wait=0):
        return self.post("work", {"running": [{"job": j, "attempt": a} for j, a in running], "wait": wait})


# ---- fault-injection helpers (issue 4, agent side): the agent as a unit of the private systemd ----

AGENT_UNIT = "drover-agent.service"


def agent_unit_text(agent):
    """units/drover-agent.service as shipped, with ExecStart pointing at the build and the test config,
    output appended to agent.log (the private systemd has no journal) and no StateDirectory= (the
    state lives in the test's work dir)."""
    with open(os.path.join(SOURCE_DIR, "units", AGENT_UNIT)) as f:
        text = f.read()
    out = []
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            line = "ExecStart=%s --config %s" % (AGENT_BIN, agent.config_path)
        elif line.startswith("StateDirectory"):
            continue
        out.append(line)
        if line.strip() == "[Service]":
            out.append("StandardOutput=append:%s" % agent.log_path)
            out.append("StandardError=append:%s" % agent.log_path)
    return "\n".join(out) + "\n"


def agent_start_unit(agent):
    """Run the agent as drover-agent.service inside the private systemd (enrolling first if needed:
    the config is written like Agent.start() writes it). Returns when the unit is active (READY=1)."""
    agent.write_config()
    agent.psd.add_unit(AGENT_UNIT, agent_unit_text(agent))
    agent.psd.run(["systemctl", "daemon-reload"], check=True)
    agent_systemctl(agent, "start")
    return agent


def agent_systemctl(agent, verb, unit=AGENT_UNIT):
    """systemctl <verb> <unit> inside the private systemd; start waits for READY=1 (Type=notify)."""
    r = agent.psd.run(["systemctl", verb, unit], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("systemctl %s %s failed (%d): %s\n%s" % (verb, unit, r.returncode, r.stderr,
                                                                      agent.log_tail()))
    return r


def agent_log_count(agent, text):
    """How often text occurs in the agent's log (to wait for a restarted agent's lines)."""
    try:
        with open(agent.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace").count(text)
    except OSError:
        return 0
