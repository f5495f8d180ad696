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

"""The exporter's metric families, made at each scrape from the cached
:class:`~glance_progress_store.cmd.exporter.refresher.Status`.

An upload's label sets exist only while discovery lists it (in flight,
or within ``--since``).
"""

import collections
import time

from prometheus_client import core as prom_core
from prometheus_client import registry as prom_registry

from glance_progress_store.cmd.exporter.refresher import backend_label
from glance_progress_store.read import states


def _latest_per_upload(views):
    """One view per (image, backend label): Prometheus refuses a scrape
    with the same series twice."""
    latest = {}
    for view in views:
        key = (view.image_id, backend_label(view.backend))
        old = latest.get(key)
        if old is None or (view.updated_at or 0) > (old.updated_at or 0):
            latest[key] = view
    return latest


def metric_families(status, now):
    """The metric families of `status` at `now` (epoch seconds)."""
    snapshot = status.snapshot
    views = snapshot.views if snapshot is not None else ()
    unreadable = snapshot.unreadable if snapshot is not None else {}
    uploads = _latest_per_upload(views)

    in_flight = prom_core.GaugeMetricFamily(
        'glance_progress_uploads_in_flight',
        'Uploads in flight (uploading, finalizing, or stalled: no update '
        'for --stall-after seconds), by backend and state.',
        labels=['backend', 'state'])
    stalled = prom_core.GaugeMetricFamily(
        'glance_progress_uploads_stalled',
        'Uploads in flight that have not been updated for --stall-after '
        'seconds, by backend.', labels=['backend'])
    counts = collections.Counter(
        (label, view.state) for (_, label), view in uploads.items()
        if view.state in states.IN_FLIGHT)
    backends = sorted(set(status.backends) | {b for b, _ in counts})
    for backend in backends:
        for state in states.IN_FLIGHT:
            in_flight.add_metric([backend, state], counts[backend, state])
        stalled.add_metric([backend], counts[backend, states.STALLED])
    yield in_flight
    yield stalled

    state = prom_core.GaugeMetricFamily(
        'glance_progress_upload_state',
        'Always 1: the state of each upload listed (in flight, or stored '
        'or failed within --since).',
        labels=['image_id', 'backend', 'state'])
    stored = prom_core.GaugeMetricFamily(
        'glance_progress_upload_stored_bytes',
        'Bytes of the upload stored in Ceph so far.',
        labels=['image_id', 'backend'])
    total = prom_core.GaugeMetricFamily(
        'glance_progress_upload_total_bytes',
        'Declared size of the upload; absent while unknown.',
        labels=['image_id', 'backend'])
    age = prom_core.GaugeMetricFamily(
        'glance_progress_upload_last_update_age_seconds',
        'Seconds since the upload\'s record was last updated.',
        labels=['image_id', 'backend'])
    for (image_id, label), view in sorted(uploads.items()):
        state.add_metric([image_id, label, view.state], 1)
        if view.bytes is not None:
            stored.add_metric([image_id, label], view.bytes)
        if view.total:
            total.add_metric([image_id, label], view.total)
        if view.updated_at is not None:
            age.add_metric([image_id, label],
                           max(0.0, now - view.updated_at))
    yield state
    yield stored
    yield total
    yield age

    failures = prom_core.CounterMetricFamily(
        'glance_progress_upload_failures',
        'Failed uploads seen since the exporter started, each record '
        'counted once, by backend and reason.',
        labels=['backend', 'reason'])
    for (backend, reason), count in sorted(status.failures.items()):
        failures.add_metric([backend, reason], count)
    yield failures

    up = prom_core.GaugeMetricFamily(
        'glance_progress_memcached_up',
        '1 if the last refresh read the memcached server, else 0.',
        labels=['server'])
    answered = snapshot is not None and status.refresh_error is None
    for server in sorted(set(status.servers) | set(unreadable)):
        up.add_metric([server],
                      1 if answered and server not in unreadable else 0)
    yield up

    yield prom_core.CounterMetricFamily(
        'glance_progress_refreshes',
        'Reads of every memcached server by the refresh thread.',
        value=status.refreshes)
    yield prom_core.CounterMetricFamily(
        'glance_progress_refresh_errors',
        'Refreshes that failed as a whole (see the exporter\'s log).',
        value=status.refresh_errors)
    if status.refresh_duration_s is not None:
        yield prom_core.GaugeMetricFamily(
            'glance_progress_refresh_duration_seconds',
            'How long the last refresh took.',
            value=status.refresh_duration_s)
    if snapshot is not None:
        yield prom_core.GaugeMetricFamily(
            'glance_progress_refresh_age_seconds',
            'Seconds since the snapshot served was read.',
            value=max(0.0, now - snapshot.taken_at))


class SnapshotCollector(prom_registry.Collector):
    """Families built from the refresher's cached status at each scrape."""

    def __init__(self, refresher, clock=time.time):
        self._refresher = refresher
        self._clock = clock

    def collect(self):
        return metric_families(self._refresher.status, self._clock())
