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

"""Throw-away one-node Ceph cluster, memcached and glance-api on loopback.

Used by the tests, the demo and the benchmarks so that they run against
the real librados/librbd, a real memcached and a real glance-api instead
of mocks.  Stdlib only, so it works from any interpreter (the daemons and
CLIs are Debian packages).  One module per job:

- ``packages``: the Debian packages, Ceph's bindings for a venv;
- ``procs``: ports, commands, /proc, stopping processes;
- ``ceph``, ``memcached``, ``glance_api``, ``keystone``, ``prometheus``,
  ``rabbitmq``, ``postgres``, ``horizon``, ``skyline``: one daemon kind each;
- ``stack``: all of them as one unit (``LocalStack``) and its state file;
- ``sizes``: '512M' and friends;
- ``cli``: ``python3 tools/testbed up|down|status|install|link-bindings``.

The names below are what tests and tools use: ``testbed.CephCluster``...
"""

from testbed.ceph import CephCluster  # noqa: F401
from testbed.ceph import DEFAULT_POOL  # noqa: F401
from testbed.glance_api import GlanceAPI  # noqa: F401
from testbed.horizon import Horizon  # noqa: F401
from testbed.keystone import Keystone  # noqa: F401
from testbed.memcached import Memcached  # noqa: F401
from testbed.packages import ensure_packages  # noqa: F401
from testbed.postgres import PostgreSQL  # noqa: F401
from testbed.procs import clean_env  # noqa: F401
from testbed.procs import free_port  # noqa: F401
from testbed.procs import wait_for  # noqa: F401
from testbed.prometheus import Prometheus  # noqa: F401
from testbed.rabbitmq import RabbitMQ  # noqa: F401
from testbed import sizes  # noqa: F401
from testbed.sizes import parse_size  # noqa: F401
from testbed.skyline import Skyline  # noqa: F401
from testbed.stack import LocalStack  # noqa: F401
