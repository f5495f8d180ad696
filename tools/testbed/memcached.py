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

"""A memcached on loopback that tests can kill, pause and restart."""

import os
import signal
import socket
import subprocess
import tempfile

from testbed import packages
from testbed import procs

MEMCACHED_BIN = "/usr/bin/memcached"
_wait_for = procs.wait_for


class Memcached:
    """A memcached on 127.0.0.1 that tests can kill, pause and restart."""

    def __init__(self, port=None, memory_mb=64):
        self.port = port or procs.free_port()
        self.address = "127.0.0.1:%d" % self.port
        self.memory_mb = memory_mb
        self._proc = None
        self._stderr = None

    def start(self):
        if self._proc is not None and self._proc.poll() is None:
            return
        packages.ensure_packages(("memcached",))
        # An anonymous file, not a pipe: the CLI's `up` exits while memcached
        # keeps running.
        self._stderr = tempfile.TemporaryFile()
        # memcached refuses to run as root without -u; -U 0 disables UDP.
        self._proc = subprocess.Popen(
            [MEMCACHED_BIN, "-u", "memcache", "-l", "127.0.0.1",
             "-p", str(self.port), "-U", "0", "-m", str(self.memory_mb)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._stderr, start_new_session=True)
        _wait_for("memcached on %s" % self.address, self._accepts, 10,
                  interval=0.02, on_timeout=self._failure)

    def _accepts(self):
        if self._proc.poll() is not None:
            raise RuntimeError("memcached exited" + self._failure())
        # Ask for the version: something else may hold the port.
        try:
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=1) as sock:
                sock.sendall(b"version\r\n")
                return sock.recv(64).startswith(b"VERSION ")
        except OSError:
            return False

    def _failure(self):
        if self._proc.poll() is None:
            return ""
        self._stderr.seek(0)
        return ": rc=%s %s" % (self._proc.returncode,
                               self._stderr.read().decode(errors="replace"))

    @property
    def pid(self):
        return self._proc.pid

    def stop(self, first=signal.SIGTERM):
        """SIGTERM (memcached exits on its next 1 s tick), then SIGKILL."""
        if self._proc is not None:
            procs.terminate(self._proc.pid, self._proc, first=first)
            self._stderr.close()
            self._proc = None

    def kill(self):
        """SIGKILL: a crash."""
        self.stop(first=signal.SIGKILL)

    def pause(self):
        """SIGSTOP: connections stay open but nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)

    def restart(self):
        """Fresh, empty memcached on the same port."""
        self.stop()
        self.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
