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
"""

import collections
import dataclasses
import http.server
import json
import logging
import re
import signal
import socket
import sys
import threading
import time

from prometheus_client import core as prom_core
from prometheus_client import exposition
from prometheus_client import registry as prom_registry

from glance_progress_store.cmd.exporter import page
from glance_progress_store.read import discovery
from glance_progress_store.read import states

LOG = logging.getLogger(__name__)

DEFAULT_LISTEN = '127.0.0.1:9478'
DEFAULT_REFRESH = 2.0
DEFAULT_SINCE = 300.0
SOCKET_TIMEOUT = 3.0

#: The states of an upload in flight, in the order of the gauge's labels.
IN_FLIGHT = (states.UPLOADING, states.FINALIZING, states.STALLED)
#: The failure reasons the store writes (store._classify); anything else a
#: record says is counted as "other", so that a hostile memcached cannot
#: make label sets without bound.
REASONS = ('source_error', 'verifier_failed', 'size_mismatch',
           'storage_full', 'storage_timeout', 'storage_error',
           'interrupted')
OTHER_REASON = 'other'

# The page's order: what needs an operator first.
_STATE_ORDER = {states.FAILED: 0, states.STALLED: 1, states.BAD: 2,
                states.UNKNOWN: 2, states.UPLOADING: 3,
                states.FINALIZING: 4, states.STORED: 5}

EXPORTER_CODES = (
    (states.EXIT_OK, 'stopped by SIGTERM'),
    (states.EXIT_UNREACHABLE, 'cannot listen: address in use or not '
     'assignable'),
    (states.EXIT_USAGE, 'usage or configuration error (a bad --listen)'),
    (states.EXIT_INTERRUPTED, 'interrupted (Ctrl-C)'),
)


def backend_label(backend):
    """The ``backend`` label of a view: ``""`` for the single-store keys."""
    return backend or ''


def reason_label(reason):
    return reason if reason in REASONS else OTHER_REASON


@dataclasses.dataclass(frozen=True)
class Status:
    """What the exporter knows at one moment; replaced, never changed."""

    servers: tuple  # every memcached server of the configuration
    backends: tuple  # the backend labels the configuration has
    snapshot: object = None  # the last discovery.Snapshot read, if any
    failures: dict = dataclasses.field(default_factory=dict)
    refreshes: int = 0  # discovery reads that returned
    refresh_errors: int = 0  # discovery reads that raised
    refresh_duration_s: object = None  # of the last read
    refresh_error: object = None  # why the last read raised, or None


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
        if view.state in IN_FLIGHT)
    backends = sorted(set(status.backends) | {b for b, _ in counts})
    for backend in backends:
        for state in IN_FLIGHT:
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


def sort_key(view):
    return (_STATE_ORDER.get(view.state, 2), -(view.age_s or 0),
            view.image_id, backend_label(view.backend))


def uploads_document(status, now):
    """The JSON of ``/uploads.json``: what the page shows."""
    snapshot = status.snapshot
    views = sorted(snapshot.views, key=sort_key) if snapshot else []
    unreadable = dict(snapshot.unreadable) if snapshot else {}
    return {
        'now': now,
        'taken_at': snapshot.taken_at if snapshot else None,
        'views': [dataclasses.asdict(v) for v in views],
        'unreadable': unreadable,
        'servers': sorted(status.servers),
        'refresh_error': status.refresh_error,
    }


class Refresher:
    """Reads discovery every `interval` seconds into :attr:`status`."""

    def __init__(self, read, servers, backends, interval, since,
                 clock=time.time):
        self._read = read
        self._interval = interval
        self._since = since
        self._clock = clock
        self._seen = {}  # failed record -> its updated_at
        self._stop = threading.Event()
        self._thread = None
        self.status = Status(tuple(servers), tuple(backends))

    def refresh(self):
        """One read; never raises (a failed read is counted and logged)."""
        status = self.status
        started = time.monotonic()
        try:
            snapshot = self._read()
        except Exception as e:
            duration = time.monotonic() - started
            LOG.warning('refresh failed after %.1f s: %s', duration, e)
            self.status = dataclasses.replace(
                status, refresh_errors=status.refresh_errors + 1,
                refresh_duration_s=duration,
                refresh_error='%s: %s' % (type(e).__name__, e))
            return
        duration = time.monotonic() - started
        for server, why in sorted(snapshot.unreadable.items()):
            LOG.debug('memcached %s unreadable: %s', server, why)
        self.status = dataclasses.replace(
            status, snapshot=snapshot,
            failures=self._count_failures(status.failures, snapshot),
            refreshes=status.refreshes + 1, refresh_duration_s=duration,
            refresh_error=None)

    def _count_failures(self, failures, snapshot):
        failures = dict(failures)
        for view in snapshot.views:
            if view.state != states.FAILED:
                continue
            key = (view.image_id, view.backend, view.started_at)
            if key in self._seen:
                continue
            self._seen[key] = view.updated_at or snapshot.taken_at
            label = (backend_label(view.backend), reason_label(view.reason))
            failures[label] = failures.get(label, 0) + 1
        # A record older than --since is not listed again: forget it.
        horizon = snapshot.taken_at - 2 * (self._since or 0) - 60
        for key, updated_at in list(self._seen.items()):
            if updated_at < horizon:
                del self._seen[key]
        return failures

    def _run(self):
        # Every `interval` seconds from the start of the previous read, or
        # right after it when a read took longer.
        while True:
            spent = self.status.refresh_duration_s or 0.0
            if self._stop.wait(max(0.0, self._interval - spent)):
                return
            self.refresh()

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='glance-progress-refresh')
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + SOCKET_TIMEOUT * 2)


# --- HTTP ------------------------------------------------------------------

_SECURITY_HEADERS = (
    ('X-Content-Type-Options', 'nosniff'),
    ('Referrer-Policy', 'no-referrer'),
    ('Cache-Control', 'no-store'),
)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = 'glance-progress-exporter'
    sys_version = ''

    def _send(self, code, content_type, body, headers=()):
        self.send_response(code)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for name, value in _SECURITY_HEADERS + tuple(headers):
            self.send_header(name, value)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def do_GET(self):
        app = self.server.app
        path = self.path.split('?', 1)[0]
        if path == '/metrics':
            encoder, content_type = exposition.choose_encoder(
                self.headers.get('Accept', ''))
            self._send(200, content_type, encoder(app.registry))
        elif path == '/uploads.json':
            document = uploads_document(app.refresher.status, time.time())
            self._send(200, 'application/json',
                       json.dumps(document).encode('utf-8'))
        elif path == '/':
            self._send(200, 'text/html; charset=utf-8', page.PAGE,
                       (('Content-Security-Policy', page.CSP),
                        ('X-Frame-Options', 'DENY')))
        else:
            self._send(404, 'text/plain; charset=utf-8', b'not found\n')

    do_HEAD = do_GET

    def _not_allowed(self):
        self._send(405, 'text/plain; charset=utf-8', b'GET or HEAD only\n',
                   (('Allow', 'GET, HEAD'),))

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def log_message(self, fmt, *args):
        LOG.debug('%s %s', self.address_string(), fmt % args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections of a burst of
    # scrapers, which the kernel then retries after one second.
    request_queue_size = 128


class ListenError(Exception):
    """The listener could not be opened: one line for the operator."""


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


def _bind(host, port):
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ListenError('cannot listen on %s:%d: %s' % (host, port,
                                                          e.strerror))
    family, _, _, _, address = infos[0]

    class Server(_Server):
        address_family = family

    try:
        return Server(address[:2], _Handler)
    except OSError as e:
        raise ListenError('cannot listen on %s:%d: %s' % (
            host, port, e.strerror or e))


class Exporter:
    """The refresher, the registry and the listener, as one unit."""

    def __init__(self, refresher, host, port):
        self.refresher = refresher
        self.registry = prom_registry.CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(refresher))
        self._server = _bind(host, port)
        self._server.app = self
        self._serving = None

    @property
    def address(self):
        return self._server.server_address[:2]

    def url(self):
        host, port = self.address
        return 'http://%s:%d/' % ('[%s]' % host if ':' in host else host,
                                  port)

    def start(self):
        self.refresher.refresh()  # the first scrape has data
        self.refresher.start()
        self._serving = threading.Thread(target=self._server.serve_forever,
                                         kwargs={'poll_interval': 0.2},
                                         daemon=True, name='exporter-http')
        self._serving.start()

    def close(self):
        if self._serving is not None:
            self._server.shutdown()
            self._serving.join(5)
        self._server.server_close()
        self.refresher.stop()


# --- Command line ----------------------------------------------------------

_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400}


def parse_duration(text):
    """``300``, ``45s``, ``10m``, ``2h``, ``1d`` -> seconds; ValueError."""
    match = re.fullmatch(r'(\d+(?:\.\d+)?)([smhd]?)', (text or '').strip())
    if not match:
        raise ValueError('expected a duration like 300, 45s, 10m, 2h or '
                         '1d, got %r' % text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def _listen_type(text):
    import argparse
    try:
        return parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def _duration_type(text):
    import argparse
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def _refresh_type(text):
    import argparse
    value = _duration_type(text)
    if value < 0.1:
        raise argparse.ArgumentTypeError('must be at least 0.1')
    return value


DESCRIPTION = """\
Serve the uploads in flight on every memcached server of glance-api's
configuration, found by discovery, for Prometheus and people:

  /metrics        Prometheus text format (metric names: README)
  /uploads.json   the uploads and the memcached servers that did not answer
  /               a live page of the uploads, refreshed every second

Memcached is read every --refresh seconds by one thread, whatever the
number of scrapes. It listens on 127.0.0.1 unless --listen says otherwise:
put it behind a reverse proxy with authentication before exposing it. Run
it as a service of its own, not inside glance-api.
"""


def add_parser(subs, common):
    """The ``exporter`` sub-command, with the other sub-commands' options."""
    import argparse
    parser = subs.add_parser(
        'exporter', parents=[common],
        epilog=states.exit_help(EXPORTER_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='serve /metrics for Prometheus and a live page',
        description=DESCRIPTION)
    parser.add_argument(
        '--listen', type=_listen_type, default=parse_listen(DEFAULT_LISTEN),
        metavar='HOST:PORT',
        help='address to listen on (default: %s)' % DEFAULT_LISTEN)
    parser.add_argument(
        '--refresh', type=_refresh_type, default=DEFAULT_REFRESH,
        metavar='S', help='seconds between reads of memcached (default: '
                          '%g)' % DEFAULT_REFRESH)
    parser.add_argument(
        '--since', type=_duration_type, default=DEFAULT_SINCE,
        metavar='DURATION',
        help='also list uploads stored or failed within DURATION (300, 45s, '
             '10m, 2h); failures are counted from these; 0: only uploads '
             'in flight (default: 5m)')
    parser.set_defaults(func=run_command)
    return parser


def _label_values(settings):
    return tuple(sorted(settings.backends)) or ('',)


def _servers(settings):
    return tuple(sorted({server for source in settings.sources()
                         for server in source.servers}))


def run_command(args, settings, out=sys.stderr):
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.WARNING,
            format='glance-progress exporter: %(levelname)s: %(message)s')
    since = args.since or None

    def read():
        return discovery.discover(settings, since=since,
                                  stall_after=args.stall_after,
                                  socket_timeout=SOCKET_TIMEOUT)

    refresher = Refresher(read, _servers(settings), _label_values(settings),
                          args.refresh, since)
    host, port = args.listen
    try:
        exporter = Exporter(refresher, host, port)
    except ListenError as e:
        out.write('glance-progress: error: %s\n' % e)
        return states.EXIT_UNREACHABLE
    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        exporter.start()
        out.write('glance-progress exporter: serving %s (metrics at '
                  '%smetrics), reading %s every %gs\n'
                  % (exporter.url(), exporter.url(),
                     ', '.join(refresher.status.servers) or 'no server',
                     args.refresh))
        out.flush()
        while not stopped.wait(1.0):
            pass
        return states.EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)
        exporter.close()
