"""A real glance-api (uWSGI) per mode, on the session's Ceph and memcached.

The same code (tools/glance_stack.py) runs the demo; here glance is
configured with progress_rbd exactly as in etc/glance-api.conf.snippet and
driven with python-glanceclient, as operators drive it.
"""

import functools
import http.server
import os
import threading

import pytest

import glance_stack

from tests import helpers

# Small enough for a test to exceed it; larger than every other upload here.
IMAGE_SIZE_CAP = 64 * helpers.MiB


def _running(api):
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope='session')
def glance_single(ceph, memcached, workdir):
    yield from _running(glance_stack.GlanceAPI(
        os.path.join(workdir, 'glance-single'), ceph, memcached.address,
        mode='single',
        extra_conf={'DEFAULT': {'image_size_cap': IMAGE_SIZE_CAP}}))


@pytest.fixture(scope='session')
def glance_multi(ceph, memcached, workdir):
    yield from _running(glance_stack.GlanceAPI(
        os.path.join(workdir, 'glance-multi'), ceph, memcached.address,
        mode='multi', backends=helpers.BACKENDS))


@pytest.fixture(scope='session')
def web_server(workdir):
    """Serves files from a directory on 127.0.0.1, for web-download."""
    root = os.path.join(workdir, 'www')
    os.makedirs(root, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.root = root
    server.url = 'http://127.0.0.1:%d' % server.server_address[1]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
