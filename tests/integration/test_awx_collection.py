"""The real awx.awx collection (Debian's ansible package, 21.14.0) drives drover-controller: organization,
inventory, host, project, job_template, job_launch with wait, job_list; a second run changes nothing."""

from drover_harness import DroverTestCase, main, run_awx_playbook

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
    - organization: {name: Ops, description: "ops team"}
      register: org
    - inventory: {name: lab, organization: Ops, variables: {env: lab}}
      register: inv
    - host:
        name: localhost
        inventory: lab
        variables: {ansible_connection: local, ansible_python_interpreter: /usr/bin/python3}
      register: host
    - project:
        name: playbooks
        organization: Ops
        scm_type: manual
        local_path: demo
      register: proj
    - job_template:
        name: hello
        organization: Ops
        inventory: lab
        project: playbooks
        playbook: ok.yml
        ask_limit_on_launch: true
      register: jt
    - job_launch: {name: hello, limit: localhost, wait: true, timeout: 120}
      register: launched
    - job_list: {status: successful, all_pages: true}
      register: listed
    - copy:
        dest: "{{ out }}"
        content: "{{ {'org': org, 'inv': inv, 'host': host, 'proj': proj, 'jt': jt,
                      'launched': launched, 'listed': listed} | to_json }}"
"""


class TestAwxCollection(DroverTestCase):
    def run_playbook(self, name):
        results, output = run_awx_playbook(self, PLAYBOOK, name, {})
        # the product headers must satisfy the collection's version check (no warning of either kind)
        self.assertNotIn("You are running collection version", output)
        self.assertNotIn("You are using the", output)
        return results, output

    def test_collection_end_to_end(self):
        first, _ = self.run_playbook("first")
        self.assertTrue(first["org"]["changed"])
        self.assertEqual(first["launched"]["status"], "successful")
        job_id = first["launched"]["id"]
        self.assertIn(job_id, [j["id"] for j in first["listed"]["results"]])
        job = self.api.ok("GET", "/api/v2/jobs/%d/" % job_id)
        self.assertEqual(job["status"], "successful")
        self.assertEqual(job["limit"], "localhost")
        # second run: every object exists and is unchanged (fields round-trip with the same types)
        second, output = self.run_playbook("second")
        for key in ("org", "inv", "host", "proj", "jt"):
            self.assertFalse(second[key]["changed"], "%s reported changed on the second run: %s" % (key, output))
        self.assertEqual(second["launched"]["status"], "successful")


if __name__ == "__main__":
    main()
