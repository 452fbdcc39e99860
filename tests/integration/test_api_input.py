"""Bad input answers 4xx with an AWX-style body naming the problem, and stores nothing; a node can only
see its own jobs."""
import json

from drover_harness import Api, DroverTestCase, main


class TestBadInput(DroverTestCase):
    AGENTS = []

    def count(self, endpoint):
        return self.api.ok("GET", "/api/v2/%s/" % endpoint)["count"]

    def test_malformed_json(self):
        before = self.count("organizations")
        status, body, _ = self.api.request("POST", "/api/v2/organizations/", raw='{"name": "x",')
        self.assertEqual(status, 400)
        self.assertIn("JSON parse error", body["detail"])
        self.assertEqual(self.count("organizations"), before)

    def test_wrong_types_name_the_field(self):
        before = self.count("inventories")
        status, body, _ = self.api.post("/api/v2/inventories/", {"name": 12, "organization": self.org["id"]})
        self.assertEqual(status, 400)
        self.assertIn("name", body)
        status, body, _ = self.api.post("/api/v2/inventories/", {"name": "x", "organization": "abc"})
        self.assertEqual(status, 400)
        self.assertIn("organization", body)
        status, body, _ = self.api.post("/api/v2/inventories/", {"organization": self.org["id"]})
        self.assertEqual(status, 400)
        self.assertEqual(body["name"], ["This field is required."])
        status, body, _ = self.api.post("/api/v2/job_templates/", {"name": "t", "inventory": self.inventory["id"],
                                                                   "project": self.project["id"],
                                                                   "playbook": "missing.yml"})
        self.assertEqual(status, 400)
        self.assertIn("playbook", body)
        self.assertEqual(self.count("inventories"), before)
        self.assertEqual(self.api.ok("GET", "/api/v2/job_templates/?name=t")["count"], 0)

    def test_unknown_endpoint(self):
        status, body, _ = self.api.get("/api/v2/no_such_thing/")
        self.assertEqual(status, 404)
        self.assertIn("detail", body)
        status, body, _ = self.api.post("/api/gateway/v1/tokens/", {})
        self.assertEqual(status, 404)
        status, body, _ = self.api.get("/api/v2/jobs/999999/")
        self.assertEqual(status, 404)
        self.assertIn("detail", body)

    def test_oversized_body(self):
        before = self.count("organizations")
        big = json.dumps({"name": "big", "description": "x" * (4 * 1024 * 1024)})
        status, body, _ = self.api.request("POST", "/api/v2/organizations/", raw=big)
        self.assertEqual(status, 413)
        self.assertIn("detail", body)
        self.assertEqual(self.count("organizations"), before)

    def test_missing_or_wrong_credentials(self):
        anon = Api(self.controller.base, self.controller.ca_file, user=None)
        status, body, _ = anon.get("/api/v2/jobs/")
        self.assertEqual(status, 401)
        self.assertIn("detail", body)
        wrong = Api(self.controller.base, self.controller.ca_file, password="not-the-password")
        status, body, _ = wrong.post("/api/v2/organizations/", {"name": "sneaky"})
        self.assertEqual(status, 401)
        bad_token = Api(self.controller.base, self.controller.ca_file, token="nope")
        status, body, _ = bad_token.get("/api/v2/me/")
        self.assertEqual(status, 401)
        self.assertEqual(self.api.ok("GET", "/api/v2/organizations/?name=sneaky")["count"], 0)
        # ping is public and carries the product headers
        status, body, headers = anon.get("/api/v2/ping/")
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-API-Product-Name"], "AWX")
        self.assertTrue(headers["X-API-Product-Version"].startswith("21."))

    def test_token_flow(self):
        status, tok, _ = self.api.post("/api/v2/tokens/", {"description": "t", "application": None, "scope": "write"})
        self.assertIn(status, (200, 201))
        bearer = Api(self.controller.base, self.controller.ca_file, token=tok["token"])
        me = bearer.ok("GET", "/api/v2/me/")
        self.assertEqual(me["results"][0]["username"], "admin")
        status, _, _ = self.api.delete("/api/v2/tokens/%d/" % tok["id"])
        self.assertIn(status, (202, 204))
        status, _, _ = bearer.get("/api/v2/me/")
        self.assertEqual(status, 401)


class TestNodeIsolation(DroverTestCase):
    AGENTS = [{"name": "node1"}]

    def test_node_cannot_read_another_nodes_job(self):
        job = self.launch(self.template("sleep.yml", timeout=60))
        self.wait_job(job["id"], statuses=("running",))
        # enroll a second node by hand (raw protocol) and use its secret
        tok = self.api.ok("POST", "/api/v2/instances/enrollment_tokens/", {"hostname": "intruder"})["token"]
        anon = Api(self.controller.base, self.controller.ca_file, user=None)
        status, enrolled, _ = anon.post("/api/agent/v1/enroll", {"token": tok, "hostname": "intruder", "cpus": 1,
                                                                 "memory": 4 << 30, "runtimes": ["systemd"]})
        self.assertEqual(status, 201, enrolled)
        # the one-time token cannot be used twice
        status, _, _ = anon.post("/api/agent/v1/enroll", {"token": tok, "hostname": "intruder2", "cpus": 1,
                                                          "memory": 4 << 30, "runtimes": ["systemd"]})
        self.assertIn(status, (401, 403))
        node = Api(self.controller.base, self.controller.ca_file, token=enrolled["secret"])
        status, body, _ = node.get("/api/agent/v1/jobs/%d/project" % job["id"])
        self.assertEqual(status, 403)
        self.assertIn("detail", body)
        status, body, _ = node.post("/api/agent/v1/jobs/%d/events" % job["id"],
                                    {"attempt": 1, "events": [{"counter": 999, "event": "verbose"}]})
        self.assertEqual(status, 403)
        status, body, _ = node.post("/api/agent/v1/jobs/%d/result" % job["id"],
                                    {"attempt": 1, "status": "successful", "rc": 0, "final_counter": 0})
        self.assertEqual(status, 403)
        # a user token is not a node credential
        status, _, _ = self.api.post("/api/agent/v1/heartbeat", {"capacity": 1})
        self.assertEqual(status, 401)
        self.api.post("/api/v2/jobs/%d/cancel/" % job["id"])
        done = self.wait_job(job["id"])
        self.assertEqual(done["status"], "canceled")
        stored = self.api.ok("GET", "/api/v2/jobs/%d/job_events/?counter=999" % job["id"])
        self.assertEqual(stored["count"], 0)


if __name__ == "__main__":
    main()
