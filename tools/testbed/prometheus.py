# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""A Prometheus of its own on loopback, scraping given targets every second.

Debian's ``prometheus`` package, never its system service: the binary is
started here with a configuration, a listen address (127.0.0.1) and a
storage directory of the caller's, and stopped with it.
"""

import json
import os
import subprocess
import urllib.parse
import urllib.request

from testbed import packages
from testbed import procs

PROMETHEUS_BIN = "/usr/bin/prometheus"


def _config(targets, interval):
    # YAML is a superset of JSON: no YAML library needed.
    return json.dumps({
        "global": {"scrape_interval": interval,
                   "scrape_timeout": interval,
                   "evaluation_interval": interval},
        "scrape_configs": [{"job_name": "glance-progress",
                            "static_configs": [{"targets": list(targets)}]}],
    }, indent=2)


class Prometheus:
    """``prometheus`` on 127.0.0.1 scraping ``targets`` (HOST:PORT)."""

    def __init__(self, workdir, targets, port=None, interval="1s"):
        self.workdir = os.path.abspath(workdir)
        self.targets = tuple(targets)
        self.interval = interval
        self.port = port or procs.free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.config_path = os.path.join(self.workdir, "prometheus.yml")
        self.log_path = os.path.join(self.workdir, "prometheus.log")
        self._proc = None
        self._log = None

    def start(self, timeout=60):
        packages.ensure_packages(("prometheus",))
        os.makedirs(os.path.join(self.workdir, "data"), exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(_config(self.targets, self.interval))
        self._log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            [PROMETHEUS_BIN, "--config.file=" + self.config_path,
             "--web.listen-address=127.0.0.1:%d" % self.port,
             "--storage.tsdb.path=" + os.path.join(self.workdir, "data"),
             "--storage.tsdb.retention.time=1h"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True)
        procs.wait_for("prometheus on %s" % self.url, self._ready, timeout,
                       on_timeout=self._failure)

    def _ready(self):
        if self._proc.poll() is not None:
            raise RuntimeError("prometheus exited" + self._failure())
        try:
            with urllib.request.urlopen(self.url + "/-/ready",
                                        timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _failure(self):
        with open(self.log_path, errors="replace") as f:
            tail = f.read()[-2000:]
        return ": rc=%s %s" % (self._proc.poll(), tail)

    def api(self, path, **params):
        """The ``data`` of a /api/v1 answer; RuntimeError if not success."""
        url = "%s/api/v1/%s?%s" % (self.url, path,
                                   urllib.parse.urlencode(params))
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError("prometheus %s: %s" % (path, body))
        return body["data"]

    def query(self, expr):
        """The instant vector of ``expr``: [(labels, float value)]."""
        data = self.api("query", query=expr)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def targets_health(self):
        """{scrapeUrl: (health, lastError)} of the active targets."""
        data = self.api("targets")
        return {t["scrapeUrl"]: (t["health"], t["lastError"])
                for t in data["activeTargets"]}

    @property
    def pid(self):
        return self._proc.pid

    def stop(self):
        if self._proc is not None:
            procs.terminate(self._proc.pid, self._proc)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
