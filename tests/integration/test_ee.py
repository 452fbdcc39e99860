"""test_ee.py: execution environments end to end with real podman inside the private systemd.

A drover EE image (packaging/ee/build-ee.sh: debootstrap + python3 + ansible-core, `podman import`)
lives in a podman store under the build dir (<build>/ee/storage, or $DROVER_EE_DIR/storage; the
rootfs tarball is cached there too, so only the first run debootstraps: about 60 s, then 12 s to
import). The agent runs jobs as `podman run` inside their transient units with the options private-systemd.md names for these machines. Covered: events of a
container job match the same playbook on the systemd runtime; timeout and cancel leave no container;
`pull: never` with a missing image; `pull: always` from a real registry (Debian's docker-registry on
loopback, htpasswd auth through a "Container Registry" credential) and a wrong password (clear error,
the secret nowhere); the EE resolution order; MemoryMax enforced on a container job.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drover_harness as h  # noqa: E402

# $DROVER_EE_DIR shares the rootfs tarball and image store between build dirs
EE_DIR = os.environ.get("DROVER_EE_DIR") or os.path.join(h.BUILD_DIR, "ee")
STORE = os.path.join(EE_DIR, "storage")
IMAGE = "localhost/drover-ee:latest"
BUILD_EE = os.path.join(h.SOURCE_DIR, "packaging", "ee", "build-ee.sh")
REGISTRY_BIN = "/usr/bin/docker-registry"
RUN_OPTIONS = ["--cgroups=disabled", "--ulimit=nofile=4096:4096", "--ulimit=nproc=4096:4096",
               "--network=none", "--log-driver=k8s-file", "--init"]


def podman_global(runroot):
    return ["--events-backend=file", "--cgroup-manager=cgroupfs", "--storage-driver=overlay",
            "--root=" + STORE, "--runroot=" + runroot]


# podman's database records the run root: host and private systemd use the same one (on disk;
# its tmpdir /run/libpod is the private systemd's tmpfs, so podman sees each boot as a reboot)
INNER_GLOBAL = podman_global(os.path.join(EE_DIR, "runroot"))
HOST_PODMAN = ["podman"] + INNER_GLOBAL


def ensure_image():
    """Import the EE image into the test store (building the rootfs tarball on first use)."""
    os.makedirs(EE_DIR, exist_ok=True)
    if subprocess.run(HOST_PODMAN + ["image", "exists", IMAGE]).returncode == 0:
        return
    t0 = time.monotonic()
    subprocess.run([BUILD_EE, "--build-dir", EE_DIR, "--image", IMAGE, "--"] + HOST_PODMAN[1:], check=True)
    sys.stderr.write("test_ee: EE image ready in %.1f s\n" % (time.monotonic() - t0))


def podman_config(pull_options=()):
    y = lambda l: "[" + ", ".join(json.dumps(x) for x in l) + "]"  # noqa: E731
    return ("podman:\n  enabled: true\n  path: /usr/bin/podman\n  global_options: %s\n  run_options: %s\n"
            "  pull_options: %s\n" % (y(INNER_GLOBAL), y(RUN_OPTIONS), y(list(pull_options))))


class EEBase(h.DroverTestCase):
    AGENTS = [{"name": "node1", "extra_config": podman_config()}]

    @classmethod
    def setUpClass(cls):
        ensure_image()
        super().setUpClass()
        cls.secrets = []

    @classmethod
    def inner_podman(cls, *args):
        return cls.psd.run(["podman"] + INNER_GLOBAL + list(args), capture_output=True, text=True)

    def assert_no_containers(self):
        """No container (running or not) and no container mount is left in the private systemd."""
        out = self.inner_podman("ps", "-a", "--format", "{{.Names}}")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "", "containers left behind")
        mounts = self.psd.run(["cat", "/proc/self/mountinfo"], capture_output=True, text=True).stdout
        points = [m.split()[4] for m in mounts.splitlines() if len(m.split()) > 4]
        left = [p for p in points if p.startswith(STORE + "/") and ("/overlay-containers/" in p or p.endswith("/merged"))]
        self.assertEqual(left, [], "container mounts left behind")

    @classmethod
    def ee(cls, image, pull="missing", **fields):
        body = {"name": "ee-%d" % time.monotonic_ns(), "image": image, "pull": pull}
        body.update(fields)
        return cls.api.ok("POST", "/api/v2/execution_environments/", body)

    def events(self, job_id):
        return self.api.all_pages("/api/v2/jobs/%d/job_events/?order_by=counter&page_size=200" % job_id)

    def shape(self, job_id):
        """The parts of a job's events that do not depend on timing, pids or uuids."""
        evs = self.events(job_id)
        index = {e["uuid"]: i for i, e in enumerate(evs)}
        out = []
        for e in evs:
            d = e.get("event_data") or {}
            out.append((e["event"], e.get("task") or "", e.get("host_name") or "", bool(e.get("changed")),
                        bool(e.get("failed")), index.get(e.get("parent_uuid")), d.get("task_action", "")))
        return out

    def host_summaries(self, job_id):
        res = self.api.all_pages("/api/v2/jobs/%d/job_host_summaries/" % job_id)
        return sorted((r.get("host_name"), r.get("ok"), r.get("changed"), r.get("failures"), r.get("dark"),
                       r.get("skipped")) for r in res)


class NoPodmanNode(EEBase):
    """A node that does not offer podman never runs a container job on the systemd runtime: the job
    ends `error` with an explanation naming the runtime and the EE, and no unit is started."""
    AGENTS = [{"name": "plain1", "extra_config": "podman:\n  enabled: false\n"}]

    def test_container_job_without_podman_node(self):
        node = self.api.ok("GET", "/api/v2/instances/?hostname=plain1")["results"][0]
        self.assertNotIn("podman", node.get("runtimes", []))
        ee = self.ee(IMAGE)
        job = self.launch(self.template("ok.yml", execution_environment=ee["id"]))
        done = self.wait_job(job["id"], timeout=30)
        self.assertEqual(done["status"], "error", done)
        self.assertIn("podman", done["job_explanation"])
        self.assertIn(ee["name"], done["job_explanation"])
        self.assertIsNone(done.get("started"))
        self.assertEqual(self.units(), [])
        # the same template without an EE still runs here, on the systemd runtime
        plain = self.launch(self.template("ok.yml"))
        self.assertEqual(self.wait_job(plain["id"], timeout=60)["status"], "successful")


class ContainerJobs(EEBase):
    def test_1_events_match_systemd_runtime(self):
        plain = self.launch(self.template("ok.yml"))
        p = self.wait_job(plain["id"], timeout=120)
        self.assertEqual(p["status"], "successful", p.get("job_explanation"))
        ee = self.ee(IMAGE, "never")
        job = self.launch(self.template("ok.yml", execution_environment=ee["id"]))
        j = self.wait_job(job["id"], timeout=180)
        self.assertEqual(j["status"], "successful", "%s\n%s" % (j.get("job_explanation"), self.agent.log_tail()))
        self.assertEqual(j.get("execution_environment"), ee["id"])
        self.assertIsNone(p.get("execution_environment"))
        self.assertEqual(self.shape(j["id"]), self.shape(p["id"]))
        self.assertEqual(self.host_summaries(j["id"]), self.host_summaries(p["id"]))
        # it really ran in the container: podman run is the recorded command
        args = j.get("job_args")
        args = json.loads(args) if isinstance(args, str) else args
        self.assertIn("run", args)
        self.assertIn("drover-job-%d" % j["id"], args)
        self.assertIn(IMAGE, args)
        self.assertEqual(args[args.index(IMAGE) + 1], "ansible-playbook")
        self.assert_no_containers()

    def test_2_timeout(self):
        ee = self.ee(IMAGE, "missing")
        job = self.launch(self.template("sleep.yml", execution_environment=ee["id"], timeout=6,
                                        extra_vars=json.dumps({"sleep_seconds": 120})))
        j = self.wait_job(job["id"], timeout=90)
        self.assertEqual(j["status"], "failed")
        self.assertEqual(j["job_explanation"], "Job terminated due to timeout")
        self.assert_no_containers()

    def test_3_cancel(self):
        ee = self.ee(IMAGE, "missing")
        job = self.launch(self.template("sleep.yml", execution_environment=ee["id"],
                                        extra_vars=json.dumps({"sleep_seconds": 120})))
        name = "drover-job-%d" % job["id"]

        def container_running():
            out = self.inner_podman("ps", "--format", "{{.Names}}").stdout.split()
            return name in out
        h.wait_for("container %s" % name, container_running, timeout=90, interval=0.3)
        labels = self.inner_podman("inspect", "--format", "{{json .Config.Labels}}", name).stdout
        self.assertEqual(json.loads(labels).get("drover.job"), str(job["id"]))
        t0 = time.monotonic()
        self.api.ok("POST", "/api/v2/jobs/%d/cancel/" % job["id"])
        j = self.wait_job(job["id"], timeout=60)
        self.assertEqual(j["status"], "canceled")
        self.assertEqual(j["job_explanation"], "Job canceled")
        self.assertLess(time.monotonic() - t0, 20, "cancel of a container job took too long")
        self.assert_no_containers()
        self.assertEqual(self.units("drover-job-%d.service" % job["id"]), [])

    def test_35_agent_restart(self):
        """kill -9 of the agent while a container job runs: the unit (and its container) keep running,
        the restarted agent follows it to the end, and nothing is left."""
        ee = self.ee(IMAGE, "missing")
        job = self.launch(self.template("sleep.yml", execution_environment=ee["id"],
                                        extra_vars=json.dumps({"sleep_seconds": 8})))
        name = "drover-job-%d" % job["id"]
        h.wait_for("container %s" % name,
                   lambda: name in self.inner_podman("ps", "--format", "{{.Names}}").stdout.split(),
                   timeout=90, interval=0.3)
        h.agent_kill9(self.agent)
        time.sleep(1)
        self.assertIn(name, self.inner_podman("ps", "--format", "{{.Names}}").stdout.split())
        h.agent_restart(self.agent)
        j = self.wait_job(job["id"], timeout=90)
        self.assertEqual(j["status"], "successful", j.get("job_explanation"))
        h.assert_events_complete(self, self.api, job["id"])
        self.assert_no_containers()

    def test_4_pull_never_missing_image(self):
        image = "localhost/drover-ee-missing:%d" % time.monotonic_ns()
        ee = self.ee(image, "never")
        job = self.launch(self.template("ok.yml", execution_environment=ee["id"]))
        j = self.wait_job(job["id"], timeout=60)
        self.assertEqual(j["status"], "error")
        self.assertIn(image, j["job_explanation"])
        self.assertIn("never", j["job_explanation"])
        self.assert_no_containers()

    def test_5_resolution_order(self):
        tags = {}
        for k in ("template", "project", "org"):
            tags[k] = "localhost/drover-ee:%s" % k
            self.assertEqual(subprocess.run(HOST_PODMAN + ["tag", IMAGE, tags[k]]).returncode, 0)
        ees = {k: self.ee(tags[k], "never") for k in tags}
        org = self.api.ok("POST", "/api/v2/organizations/", {"name": "ee-org-%d" % time.monotonic_ns(),
                                                             "default_environment": ees["org"]["id"]})
        proj = self.api.ok("POST", "/api/v2/projects/", {"name": "ee-proj-%d" % time.monotonic_ns(),
                                                         "organization": org["id"], "scm_type": "",
                                                         "local_path": "demo"})

        def run(**fields):
            t = self.template("ok.yml", project=proj["id"], organization=org["id"], **fields)
            j = self.wait_job(self.launch(t)["id"], timeout=180)
            self.assertEqual(j["status"], "successful", j.get("job_explanation"))
            return j["execution_environment"]

        self.assertEqual(run(execution_environment=ees["template"]["id"]), ees["template"]["id"])
        self.api.ok("PATCH", "/api/v2/projects/%d/" % proj["id"], {"default_environment": ees["project"]["id"]})
        self.assertEqual(run(execution_environment=ees["template"]["id"]), ees["template"]["id"])
        self.assertEqual(run(), ees["project"]["id"])
        self.api.ok("PATCH", "/api/v2/projects/%d/" % proj["id"], {"default_environment": None})
        self.assertEqual(run(), ees["org"]["id"])
        self.assert_no_containers()


class RegistryPull(EEBase):
    """pull: always from Debian's docker-registry on loopback, with htpasswd auth."""
    USER = "drover"
    PASSWORD = "s3cret-%d-reg" % os.getpid()
    WRONG = "wrong-%d-pass" % os.getpid()

    @classmethod
    def setUpClass(cls):
        if not os.access(REGISTRY_BIN, os.X_OK) or not shutil.which("htpasswd"):
            raise unittest.SkipTest("docker-registry or htpasswd (apache2-utils) not installed")
        super().setUpClass()
        try:
            cls.start_registry()
        except BaseException:
            cls.dump_logs()
            cls.teardown_all()
            raise

    @classmethod
    def start_registry(cls):
        cls.reg_dir = tempfile.mkdtemp(prefix="registry-", dir=cls.workdir)
        cls.port = h.free_port()
        pw = subprocess.run(["htpasswd", "-Bbn", cls.USER, cls.PASSWORD], check=True, capture_output=True,
                            text=True).stdout
        with open(os.path.join(cls.reg_dir, "htpasswd"), "w") as f:
            f.write(pw)
        with open(os.path.join(cls.reg_dir, "config.yml"), "w") as f:
            f.write("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n"
                    "http:\n  addr: 127.0.0.1:%d\nauth:\n  htpasswd:\n    realm: drover\n    path: %s/htpasswd\n"
                    % (cls.reg_dir, cls.port, cls.reg_dir))
        cls.reg_log = open(os.path.join(cls.reg_dir, "registry.log"), "wb")
        cls.registry = subprocess.Popen([REGISTRY_BIN, "serve", os.path.join(cls.reg_dir, "config.yml")],
                                        stdout=cls.reg_log, stderr=cls.reg_log)
        h.wait_for("registry", lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:%d/v2/"
                                                        % cls.port]).returncode == 0, timeout=20)
        cls.remote = "localhost:%d/drover/ee:latest" % cls.port
        subprocess.run(HOST_PODMAN + ["tag", IMAGE, cls.remote], check=True)
        subprocess.run(HOST_PODMAN + ["push", "-q", "--tls-verify=false", "--creds",
                                      "%s:%s" % (cls.USER, cls.PASSWORD), cls.remote], check=True)
        # the node must really pull: drop the local copy of the registry's name
        subprocess.run(HOST_PODMAN + ["rmi", cls.remote], check=True, capture_output=True)
        cls.ctype = cls.api.ok("GET", "/api/v2/credential_types/?name=Container%20Registry")["results"][0]

    @classmethod
    def teardown_all(cls):
        reg = getattr(cls, "registry", None)
        if reg and reg.poll() is None:
            reg.terminate()
            try:
                reg.wait(10)
            except subprocess.TimeoutExpired:
                reg.kill()
                reg.wait()
        remote = getattr(cls, "remote", None)
        if remote:
            subprocess.run(HOST_PODMAN + ["rmi", "-i", remote], capture_output=True)
        super().teardown_all()

    def credential(self, password):
        return self.api.ok("POST", "/api/v2/credentials/", {
            "name": "registry-%d" % time.monotonic_ns(), "organization": self.org["id"],
            "credential_type": self.ctype["id"],
            "inputs": {"host": "localhost:%d" % self.port, "username": self.USER, "password": password,
                       "verify_ssl": False}})

    def assert_secret_nowhere(self, job_id, secret):
        j = self.api.ok("GET", "/api/v2/jobs/%d/" % job_id)
        self.assertNotIn(secret, json.dumps(j))
        self.assertNotIn(secret, json.dumps(self.events(job_id)))
        for a in self.agents:
            self.assertNotIn(secret, a.log_tail(100000))
        self.assertNotIn(secret, self.controller.log_tail(100000))
        jd = self.agent.job_dir(job_id)
        for root, _dirs, files in os.walk(jd):
            for fn in files:
                p = os.path.join(root, fn)
                if os.path.islink(p):
                    continue
                with open(p, "rb") as f:
                    self.assertNotIn(secret.encode(), f.read(), p)
        self.assertFalse(os.path.exists(os.path.join(jd, "auth.json")), "auth file left behind")

    def test_1_pull_always_with_credential(self):
        ee = self.ee(self.remote, "always", credential=self.credential(self.PASSWORD)["id"])
        job = self.launch(self.template("ok.yml", execution_environment=ee["id"]))
        j = self.wait_job(job["id"], timeout=240)
        self.assertEqual(j["status"], "successful", "%s\n%s" % (j.get("job_explanation"), self.agent.log_tail()))
        self.assertEqual(self.inner_podman("image", "exists", self.remote).returncode, 0)
        self.assert_secret_nowhere(j["id"], self.PASSWORD)
        self.assert_no_containers()

    def test_2_wrong_password(self):
        ee = self.ee(self.remote, "always", credential=self.credential(self.WRONG)["id"])
        job = self.launch(self.template("ok.yml", execution_environment=ee["id"]))
        j = self.wait_job(job["id"], timeout=120)
        self.assertEqual(j["status"], "error")
        self.assertIn(self.remote, j["job_explanation"])
        self.assertRegex(j["job_explanation"].lower(), "unauthorized|authentication")
        self.assert_secret_nowhere(j["id"], self.WRONG)
        self.assert_no_containers()


class ContainerMemory(EEBase):
    """MemoryMax of the agent's units applies to a container job (its processes stay in the unit's cgroup)."""
    AGENTS = [{"name": "node1", "extra_config": podman_config() + "unit:\n  memory_max: 300M\n"}]

    def test_memory_max_enforced(self):
        with open(os.path.join(self.controller.projects_root, "demo", "hog.yml"), "w") as f:
            f.write("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: allocate 1 GiB\n"
                    "      command: python3 -c \"b = bytearray(1 << 30); import time; time.sleep(5)\"\n")
        plain = self.wait_job(self.launch(self.template("hog.yml"))["id"], timeout=180)
        ee = self.ee(IMAGE, "never")
        job = self.launch(self.template("hog.yml", execution_environment=ee["id"]))
        j = self.wait_job(job["id"], timeout=180)
        self.assertEqual(j["status"], "failed", j.get("job_explanation"))
        # the same outcome as on the systemd runtime
        self.assertEqual((j["status"], j["job_explanation"]), (plain["status"], plain["job_explanation"]))
        # the kernel killed the hog inside the unit's memory cgroup
        with open(os.path.join(self.agent.job_dir(j["id"]), "artifacts", str(j["id"]), "unit-result")) as f:
            fields = f.read().split()
        self.assertGreater(int(fields[3]), 0, "no oom kill recorded: %r" % fields)
        failed = [e for e in self.events(j["id"]) if e["event"] == "runner_on_failed"]
        self.assertTrue(failed, "the hog task did not fail")
        self.assert_no_containers()


class GlobalDefault(EEBase):
    """The last step of the resolution order: a job whose template, project and organization name no
    EE runs in the controller's global default (execution_environments.global_default), a managed EE
    whose image comes from the controller config; an organization default wins over it."""
    CONTROLLER_CONFIG = ("execution_environments:\n  default_image: %s\n"
                         "  global_default: Default execution environment\n" % IMAGE)

    def test_global_default(self):
        default = self.api.ok("GET", "/api/v2/execution_environments/?name=Default%20execution%20environment")
        default = default["results"][0]
        self.assertTrue(default["managed"])
        self.assertEqual(default["image"], IMAGE)
        j = self.wait_job(self.launch(self.template("ok.yml"))["id"], timeout=180)
        self.assertEqual(j["status"], "successful", j.get("job_explanation"))
        self.assertEqual(j["execution_environment"], default["id"])
        args = j.get("job_args")
        self.assertIn("drover-job-%d" % j["id"], args if isinstance(args, list) else json.loads(args))

        subprocess.run(HOST_PODMAN + ["tag", IMAGE, "localhost/drover-ee:org"], check=True)
        org_ee = self.ee("localhost/drover-ee:org", "never")
        org = self.api.ok("POST", "/api/v2/organizations/", {"name": "gd-org-%d" % time.monotonic_ns(),
                                                             "default_environment": org_ee["id"]})
        proj = self.api.ok("POST", "/api/v2/projects/", {"name": "gd-proj-%d" % time.monotonic_ns(),
                                                         "organization": org["id"], "scm_type": "",
                                                         "local_path": "demo"})
        t = self.template("ok.yml", project=proj["id"], organization=org["id"])
        j = self.wait_job(self.launch(t)["id"], timeout=180)
        self.assertEqual(j["status"], "successful", j.get("job_explanation"))
        self.assertEqual(j["execution_environment"], org_ee["id"])
        self.assert_no_containers()


class ContainerJobUser(EEBase):
    """unit.user: podman runs as root (no User= on a container unit), the playbook as the job user."""
    AGENTS = [{"name": "node1", "extra_config": podman_config() + "unit:\n  user: nobody\n"}]

    def test_job_user(self):
        with open(os.path.join(self.controller.projects_root, "demo", "whoami.yml"), "w") as f:
            f.write("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: who\n      command: id -u\n"
                    "      register: who\n    - name: check\n      assert:\n        that: who.stdout != '0'\n")
        ee = self.ee(IMAGE, "never")
        j = self.wait_job(self.launch(self.template("whoami.yml", execution_environment=ee["id"]))["id"], timeout=180)
        self.assertEqual(j["status"], "successful", "%s\n%s" % (j.get("job_explanation"), self.agent.log_tail()))
        args = j.get("job_args")
        args = args if isinstance(args, list) else json.loads(args)
        self.assertTrue([a for a in args if a.startswith("--user=")], args)
        self.assert_no_containers()


if __name__ == "__main__":
    h.main()
