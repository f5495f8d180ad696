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

"""Every upload in flight, without knowing its image id.

Per memcached server, three reads whatever the number of uploads or of
other keys in the cache: the registry, the indexes it lists, and the
status records those name
(:mod:`glance_progress_store.upload.process_index` says who writes
them). Index entries are hints: what a reader shows comes from
the status records, so an index that lags behind an upload does no harm,
and a killed worker's uploads show ``stalled`` until its index expires.
A server that does not answer is reported, and the others are listed.
"""

import dataclasses
import time

from glance_progress_store import _memcache
from glance_progress_store.read import reader
from glance_progress_store.read import states
from glance_progress_store.read import views
from glance_progress_store import records


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What discovery found at one moment."""

    taken_at: float  # epoch seconds of the read
    views: tuple  # views.View of each upload found
    unreadable: dict  # server -> why it could not be read


def _server_uploads(connection, prefix, since, now):
    """(image id, backend) pairs that the server's indexes list."""
    key = records.registry_key(prefix)
    found = connection.get_many([key])
    if key not in found:
        return []
    try:
        index_keys = sorted(records.parse_registry(found[key].data))
    except records.BadRecord:
        return []
    pairs = {}
    for value in connection.get_many(index_keys).values():
        try:
            entries = records.parse_index(value.data)
        except records.BadRecord:
            continue
        for entry in entries:
            if entry.ended_at is None or (
                    since is not None and now - entry.ended_at <= since):
                pairs[(entry.image_id, entry.backend)] = None
    return list(pairs)


def _wanted(view, since, now):
    if view.state in states.IN_FLIGHT or view.state == states.BAD:
        return True
    return (since is not None and view.state in states.ENDED and
            now - view.updated_at <= since)


def discover(settings, since=None, stall_after=60.0, socket_timeout=3.0,
             now=None):
    """A :class:`Snapshot` of the uploads of ``settings``' sources.

    ``since`` (seconds): also stored and failed uploads updated within
    it, as far as the indexes' retention goes. ``now`` (epoch seconds,
    default: the clock) is when the read counts as taken, for stall and
    retention arithmetic.
    """
    now = time.time() if now is None else now
    found, unreadable = {}, {}
    for source in settings.sources():
        for server in source.servers:
            connection = _memcache.Connection(server, socket_timeout)
            try:
                pairs = _server_uploads(connection, source.prefix, since,
                                        now)
                status_keys = [records.keys_for(i, b, source.prefix).status
                               for i, b in pairs]
                values = connection.get_many(status_keys) if pairs else {}
            except _memcache.ServerUnavailable as e:
                unreadable[server] = e.why
                continue
            finally:
                connection.close()
            for (image_id, backend), key in zip(pairs, status_keys):
                if key not in values:
                    continue  # expired: the index outlived the record
                view = reader.record_view(
                    image_id, backend,
                    lambda: reader.parse_status(key, values[key]), now,
                    stall_after)
                if _wanted(view, since, now):
                    found[(source, image_id, backend)] = view
    return Snapshot(now, tuple(views.operator_order(found.values())),
                    unreadable)
