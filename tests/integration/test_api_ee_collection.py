"""test_api_ee_collection.py: the real awx.awx collection (21.14.0) drives drover-controller's credential
types, credentials and execution environments: a custom credential type, a Container Registry credential,
an EE using it, organization/project defaults and a template's EE; a second run changes nothing (with
update_secrets: false); the secret is encrypted in the database, shown as $encrypted$, never logged; a
launched job shows the EE it resolved to. (Running jobs in containers is test_ee.py's.)"""
import os

from drover_harness import DroverTestCase, main, run_awx_playbook

SECRET = "reg-Secret-%d-x" % os.getpid()

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  collections: [awx.awx]
  module_defaults:
    group/awx.awx.controller:
      controller_host: "{{ url }}"
      controller_username: admin
      controller_password: "{{ password }}"
      validate_certs: true
  tasks:
    - credential_type:
        name: My API
        kind: cloud
        inputs: {fields: [{id: api_key, label: API Key, type: string, secret: true}], required: [api_key]}
        injectors: {env: {MY_API_KEY: "{{ '{{' }} api_key {{ '}}' }}"}}
      register: ctype
    - credential:
        name: registry
        organization: Default
        credential_type: Container Registry
        inputs: {host: "registry.example:5000", username: robot, password: "{{ secret }}", verify_ssl: false}
        update_secrets: false
      register: cred
    - execution_environment:
        name: team-ee
        image: registry.example:5000/team/ee:1
        pull: missing
        organization: Default
        credential: registry
      register: ee
    - organization: {name: Default, default_environment: team-ee}
      register: org
    - project:
        name: ee-playbooks
        organization: Default
        scm_type: manual
        local_path: demo
        default_environment: team-ee
      register: proj
    - job_template:
        name: ee-hello
        organization: Default
        inventory: local
        project: ee-playbooks
        playbook: ok.yml
        execution_environment: team-ee
      register: jt
    - copy:
        dest: "{{ out }}"
        content: "{{ {'ctype': ctype, 'cred': cred, 'ee': ee, 'org': org, 'proj': proj, 'jt': jt} | to_json }}"
"""


class TestEECollection(DroverTestCase):
    AGENTS = []

    def run_playbook(self, name):
        return run_awx_playbook(self, PLAYBOOK, name, {"secret": SECRET})

    def test_collection(self):
        first, _ = self.run_playbook("first")
        for key in ("ctype", "cred", "ee", "org", "proj", "jt"):
            self.assertTrue(first[key]["changed"], key)
        second, output = self.run_playbook("second")
        for key in ("ctype", "cred", "ee", "org", "proj", "jt"):
            self.assertFalse(second[key]["changed"], "%s reported changed on the second run: %s" % (key, output))

        cred = self.api.ok("GET", "/api/v2/credentials/?name=registry")["results"][0]
        self.assertEqual(cred["inputs"]["password"], "$encrypted$")
        self.assertEqual(cred["inputs"]["username"], "robot")
        ee = self.api.ok("GET", "/api/v2/execution_environments/?name=team-ee")["results"][0]
        self.assertEqual(ee["credential"], cred["id"])
        self.assertEqual(ee["summary_fields"]["credential"]["name"], "registry")
        managed = self.api.ok("GET", "/api/v2/execution_environments/?managed=true")
        self.assertEqual(managed["count"], 3)

        # a launched job shows its EE (no node offers podman here: it waits or errors, never runs)
        jt = self.api.ok("GET", "/api/v2/job_templates/?name=ee-hello")["results"][0]
        job = self.api.ok("POST", "/api/v2/job_templates/%d/launch/" % jt["id"], {})
        self.assertEqual(job["execution_environment"], ee["id"])
        self.assertEqual(job["summary_fields"]["execution_environment"]["image"], "registry.example:5000/team/ee:1")

        # the secret: encrypted at rest, never in the log
        for suffix in ("", "-wal"):
            p = os.path.join(self.controller.state_dir, "drover.db" + suffix)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    data = f.read()
                self.assertNotIn(SECRET.encode(), data, p)
        self.assertNotIn(SECRET, self.controller.log_tail(100000))


if __name__ == "__main__":
    main()
