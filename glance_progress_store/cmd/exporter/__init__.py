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

"""``glance-progress exporter``: the fleet's uploads for Prometheus and a
live page.

A background thread reads :func:`glance_progress_store.read.discovery.discover`
every ``--refresh`` seconds into a :class:`Refresher`; everything the
listener serves is made from that cached :class:`Status`, so a scrape storm
costs memcached nothing. On one listener (127.0.0.1 unless ``--listen``
says otherwise):

``/metrics``
    Prometheus text format, from :class:`SnapshotCollector`: metric
    families built at each scrape from the cached snapshot, so an upload's
    label sets exist only while discovery lists it (in flight, or within
    ``--since``).
``/uploads.json``
    The snapshot's views, the memcached servers that could not be read and
    when it was taken: what the page shows.
``/``
    The live page (:mod:`glance_progress_store.cmd.exporter.page`).

The single-store keys (``[glance_store]``, no backend) have the label
``backend=""``: "default" would clash with a multi-store backend of that
name.

Run it as its own process (a systemd unit, a container), never inside
glance-api's workers.

One job per module: :mod:`.refresher` reads discovery, :mod:`.metrics`
makes the metric families, :mod:`.page` the live page and its JSON,
:mod:`.server` serves them. This module only holds what the command line
needs, so that ``glance-progress --help`` does not import
prometheus_client.
"""

import re

DEFAULT_LISTEN = '127.0.0.1:9478'
DEFAULT_REFRESH = 2.0
DEFAULT_SINCE = 300.0
SOCKET_TIMEOUT = 3.0

DESCRIPTION = """\
Serve the uploads in flight on every memcached server of glance-api's
configuration, found by discovery, for Prometheus and people:

  /metrics        Prometheus text format (the metric names: the admin
                  guide's exporter page, doc/source/admin/exporter.rst)
  /uploads.json   the uploads and the memcached servers that did not answer
  /               a live page of the uploads, refreshed every second

Memcached is read every --refresh seconds by one thread, whatever the
number of scrapes. It listens on 127.0.0.1 unless --listen says otherwise:
put it behind a reverse proxy with authentication before exposing it. Run
it as a service of its own, not inside glance-api.
"""


def parse_listen(text):
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port); ValueError."""
    match = re.fullmatch(r'\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):'
                         r'(\d{1,5})', text or '')
    if not match:
        raise ValueError('expected HOST:PORT or [IPV6]:PORT, got %r' % text)
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ValueError('port %d is out of range' % port)
    return host, port
