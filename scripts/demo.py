"""demo.py: the README's first command after the build. Starts drover-controller and drover-agent (inside a
private systemd when PID 1 is not systemd), creates an inventory, a project and a job template through the
API, launches the template with `droverctl job launch --follow` so its output streams live, then prints how
to reach the API. Ctrl-C (or the end of a non-interactive run) stops everything it started."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import drover_harness as h  # noqa: E402
import privsd  # noqa: E402


class HostSystemd:
    """PID 1 is systemd: run the agent directly against it."""

    def start(self):
        return self

    def popen(self, argv, **kw):
        return subprocess.Popen(argv, **kw)

    def run(self, argv, **kw):
        return subprocess.run(argv, **kw)

    def stop(self):
        pass

    def log_tail(self):
        return ""


def preferred_port(port):
    """drover's usual port when it is free, else any free loopback port."""
    import socket
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            return h.free_port()


def main():
    workdir = os.environ.get("DROVER_DEMO_DIR", "/var/tmp/drover-demo")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    with open("/proc/1/comm") as f:
        pid1_is_systemd = f.read().strip() == "systemd"
    if pid1_is_systemd:
        print("demo: PID 1 is systemd: jobs run as transient units of the host's systemd")
        psd = HostSystemd()
    else:
        print("demo: PID 1 is not systemd: booting a private systemd for the agent's job units")
        psd = privsd.PrivateSystemd(os.path.join(workdir, "systemd"), "drover-demo")
    controller = agent = None
    try:
        psd.start()
        controller = h.Controller(workdir, admin_password=None, port=preferred_port(8443))
        controller.start()
        print("demo: controller listening on %s (log: %s)" % (controller.base, controller.log_path))
        project_dir = os.path.join(controller.projects_root, "demo")
        shutil.copytree(os.path.join(h.SOURCE_DIR, "packaging", "demo-project"), project_dir)
        agent = h.Agent(psd, controller, workdir, name="node1", keep_job_dirs=False)
        agent.start()
        print("demo: agent node1 enrolled and ready (log: %s)" % agent.log_path)

        api = controller.api
        org = api.ok("GET", "/api/v2/organizations/?name=Default")["results"][0]
        inv = api.ok("POST", "/api/v2/inventories/", {"name": "demo", "organization": org["id"]})
        api.ok("POST", "/api/v2/hosts/", {"name": "localhost", "inventory": inv["id"], "variables": json.dumps(
            {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"})})
        proj = api.ok("POST", "/api/v2/projects/", {"name": "demo", "organization": org["id"], "scm_type": "",
                                                    "local_path": "demo"})
        api.ok("POST", "/api/v2/job_templates/", {"name": "Demo", "inventory": inv["id"], "project": proj["id"],
                                                  "playbook": "site.yml", "organization": org["id"]})
        print("demo: created inventory 'demo', project 'demo' and job template 'Demo' through the API")

        env = dict(os.environ, DROVER_URL=controller.base, DROVER_CA_FILE=controller.ca_file,
                   DROVER_USER="admin", DROVER_PASSWORD=controller.admin_password,
                   XDG_CONFIG_HOME=os.path.join(workdir, "config"))
        print("demo: $ droverctl job launch Demo --follow\n", flush=True)
        rc = subprocess.call([h.CLI_BIN, "job", "launch", "Demo", "--follow"], env=env)
        print("\ndemo: droverctl exited with %d" % rc)
        pwfile = os.path.join(controller.state_dir, "admin-password")
        print("""
The controller keeps running until you press Ctrl-C.
  API:        %s/api/v2/
  CA file:    %s   (clients pin it)
  Log in:     %s login --url %s --ca-file %s --user admin
              (the generated admin password is in %s)
  Try:        curl --cacert %s -u admin:"$(cat %s)" %s/api/v2/jobs/
""" % (controller.base, controller.ca_file, h.CLI_BIN, controller.base, controller.ca_file, pwfile,
       controller.ca_file, pwfile, controller.base), flush=True)
        if sys.stdin.isatty() and not os.environ.get("DROVER_DEMO_NO_WAIT"):
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return rc
    except KeyboardInterrupt:
        return 130
    finally:
        print("demo: stopping agent, controller and systemd", flush=True)
        if agent:
            agent.stop()
        if controller:
            controller.stop()
        psd.stop()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
