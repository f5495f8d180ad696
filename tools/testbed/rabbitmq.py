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

"""A private RabbitMQ node on loopback that tests can freeze and stop.

Debian's rabbitmq-server, run as a node of its own: its own node name,
AMQP and distribution ports (free ones, on 127.0.0.1), its own epmd on a
free port (``ERL_EPMD_PORT``: never the system's 4369), its own Erlang
cookie (``HOME``), configuration, database and logs under ``workdir``.
A system RabbitMQ, if any, is neither used nor disturbed (the packages
are installed with services kept from starting: packages.POLICY_RC_D).
"""

import os
import signal
import socket
import subprocess

from testbed import packages
from testbed import procs

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
EPMD = "/usr/bin/epmd"
USER = "glance"
PASSWORD = "testbed-secret"
# What an AMQP 0-9-1 client sends first; a broker answers Connection.Start.
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"

CONFIG = """\
listeners.tcp.1 = 127.0.0.1:{port}
loopback_users = none
default_user = {user}
default_pass = {password}
default_vhost = /
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
# the test bed's disks may be small or busy: never block publishers
disk_free_limit.absolute = 1MB
log.console = false
log.file.level = info
"""


class RabbitMQ(procs.Service):
    """A one-node RabbitMQ on 127.0.0.1: ``transport_url`` for glance.

    ``freeze()`` stops the Erlang VM with SIGSTOP (connections stay open
    and nothing answers), ``thaw()`` resumes it; ``stop()`` stops the
    node and the epmd it started, ``start()`` starts it again on the
    same ports with the same data.
    """

    def __init__(self, workdir, port=None):
        self.workdir = os.path.abspath(workdir)
        self.port = port or procs.free_port()
        self.dist_port = procs.free_port()
        self.epmd_port = procs.free_port()
        self.nodename = "gps%d@localhost" % self.port
        self.transport_url = "rabbit://%s:%s@127.0.0.1:%d/" % (
            USER, PASSWORD, self.port)
        self.log_dir = os.path.join(self.workdir, "log")
        self.log_path = os.path.join(self.workdir, "rabbitmq-server.out")
        self._proc = None
        self._epmd = None

    def glance_conf(self, topics=None):
        """glance-api.conf sections (GlanceAPI's ``extra_conf``) that send
        glance's notifications here, as an operator turns them on:
        glance's default driver is noop."""
        section = {"driver": "messagingv2",
                   "transport_url": self.transport_url}
        if topics:
            section["topics"] = ",".join(topics)
        return {"oslo_messaging_notifications": section}

    def env(self):
        """The environment of this node's server and of rabbitmqctl."""
        w = self.workdir
        return dict(
            procs.clean_env(),
            HOME=w,  # the Erlang cookie: $HOME/.erlang.cookie
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONF_ENV_FILE=os.path.join(w, "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=os.path.join(w, "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(w, "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(w, "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=os.path.join(w, "mnesia"),
            RABBITMQ_LOG_BASE=self.log_dir,
            RABBITMQ_PID_FILE=os.path.join(w, "rabbitmq.pid"),
            # distribution on loopback only
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                "-kernel inet_dist_use_interface {127,0,0,1}"),
        )

    def _write_config(self):
        os.makedirs(self.log_dir, exist_ok=True)
        os.makedirs(os.path.join(self.workdir, "mnesia"), exist_ok=True)
        files = {
            "rabbitmq-env.conf": "",
            "rabbitmq.conf": CONFIG.format(port=self.port, user=USER,
                                           password=PASSWORD),
            "advanced.config": "[].\n",
            "enabled_plugins": "[].\n",
        }
        for name, text in files.items():
            with open(os.path.join(self.workdir, name), "w") as f:
                f.write(text)

    def start(self, timeout=60):
        """Start the node; return once it speaks AMQP (about 10 s)."""
        if self._proc is not None:
            return
        packages.ensure_packages(("rabbitmq-server",))
        self._write_config()
        env = self.env()
        # Our own epmd, in the foreground: erl uses it instead of starting
        # a daemon of its own that would outlive the node.
        self._epmd = subprocess.Popen(
            [EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [SERVER], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            procs.wait_for("RabbitMQ on 127.0.0.1:%d" % self.port,
                           self._answers, timeout, interval=0.2,
                           on_timeout=self._failure)
        except BaseException:
            self.stop()
            raise

    def _answers(self):
        if self._proc.poll() is not None:
            raise RuntimeError("rabbitmq-server exited" + self._failure())
        try:
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=1) as sock:
                sock.sendall(_AMQP_HEADER)
                # a method frame (type 1) on channel 0: Connection.Start
                return sock.recv(8).startswith(b"\x01\x00\x00")
        except OSError:
            return False

    def beam_pid(self):
        """The Erlang VM's pid (beam.smp), a child of the start script."""
        for stat in procs.processes():
            if (stat.pgrp == self._proc.pid and stat.state != "Z" and
                    "beam" in procs.pid_cmdline(stat.pid).split(" ")[0]):
                return stat.pid
        raise RuntimeError("no beam process for RabbitMQ %s" % self.nodename)

    def freeze(self):
        """SIGSTOP the VM: connections stay open, nothing answers."""
        os.kill(self.beam_pid(), signal.SIGSTOP)

    def thaw(self):
        os.kill(self.beam_pid(), signal.SIGCONT)

    def ctl(self, *args, timeout=60):
        """rabbitmqctl against this node; its stdout."""
        cmd = [CTL, "-n", self.nodename, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout, env=self.env())
        if proc.returncode != 0:
            raise RuntimeError("%s failed (rc=%d): %s" % (
                " ".join(cmd), proc.returncode,
                (proc.stderr or proc.stdout).strip()))
        return proc.stdout

    def queue_depth(self, name):
        """Messages ready in a queue, or None if it does not exist."""
        out = self.ctl("list_queues", "-q", "--no-table-headers", "name",
                       "messages_ready")
        for line in out.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == name:
                return int(fields[1])
        return None

    def stop(self):
        """SIGTERM the start script (it stops the node cleanly), SIGKILL
        what is left of its session, then our epmd. Idempotent."""
        if self._proc is not None:
            procs.stop_group(self._proc.pid, self._proc, timeout=30)
            self._proc = None
        if self._epmd is not None:
            procs.terminate(self._epmd.pid, self._epmd)
            self._epmd = None

    def kill(self):
        """SIGKILL the node: a crash (epmd stays)."""
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait(timeout=10)
        self._proc = None
