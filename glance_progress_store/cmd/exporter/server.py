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

"""The exporter's listener: ``/metrics``, ``/uploads.json`` and ``/``,
and the command that runs it with its refresher."""

import http.server
import json
import logging
import signal
import socket
import sys
import threading
import time

from prometheus_client import exposition
from prometheus_client import registry as prom_registry

from glance_progress_store.cmd import exporter
from glance_progress_store.cmd.exporter import metrics
from glance_progress_store.cmd.exporter import page
from glance_progress_store.cmd.exporter import refresher as refreshing
from glance_progress_store.read import discovery
from glance_progress_store.read import states

LOG = logging.getLogger(__name__)

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
            document = page.uploads_document(app.refresher.status, time.time(),
                                             app.refresher.since)
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
        self.registry.register(metrics.SnapshotCollector(refresher))
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


def _label_values(settings):
    return tuple(sorted(settings.backends)) or ('',)


def run(args, settings, out=sys.stderr):
    """``glance-progress exporter``: serve until SIGTERM; the exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.WARNING,
            format='glance-progress exporter: %(levelname)s: %(message)s')
    since = args.since or None

    def read():
        return discovery.discover(settings, since=since,
                                  stall_after=args.stall_after,
                                  socket_timeout=exporter.SOCKET_TIMEOUT)

    refresher = refreshing.Refresher(read, settings.servers(),
                                     _label_values(settings), args.refresh,
                                     since)
    host, port = args.listen
    try:
        service = Exporter(refresher, host, port)
    except ListenError as e:
        out.write('glance-progress: error: %s\n' % e)
        return states.EXIT_UNREACHABLE
    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        service.start()
        out.write('glance-progress exporter: serving %s (metrics at '
                  '%smetrics), reading %s every %gs\n'
                  % (service.url(), service.url(),
                     ', '.join(refresher.status.servers) or 'no server',
                     args.refresh))
        out.flush()
        while not stopped.wait(1.0):
            pass
        return states.EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)
        service.close()
