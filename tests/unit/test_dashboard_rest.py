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

"""The Horizon plugin's REST views against a fake glance: every answer
glance (or what stands in front of it) can give, and what the browser
gets for it (``glance_progress_store.dashboard.glance``, which the views
in ``rest.py`` call with the user's endpoint and token).

The fake glance is a real HTTP server on loopback, in this process: a
real glance cannot be made to answer garbage, a load balancer's cookie
or a 503 without the filter's header on demand, and the fast tier runs
no daemon.  The views themselves, in a real Horizon against a real
glance, are in tests/e2e/test_horizon.py.
"""

import http.server
import json
import socket
import threading

import pytest

from glance_progress_store.dashboard import glance
from glance_progress_store import records

TOKEN_A, TOKEN_B = 'token-of-alice', 'token-of-bob'
IMAGE = 'a5a5a5a5-0000-4000-8000-000000000001'
RECORD = {'image_id': IMAGE, 'state': 'uploading', 'bytes': 1024,
          'total': 4096, 'percent': 25.0}


class FakeGlance(http.server.ThreadingHTTPServer):
    """Answers every GET with ``self.answer`` (status, headers, body)
    and keeps what it was sent: (path, headers) per request."""

    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), _Handler)
        self.answer = (200, {records.HEADER: '1'}, RECORD)
        self.seen = []
        self.hang = threading.Event()  # set: answer nothing until closed
        self.closing = threading.Event()

    @property
    def endpoint(self):
        return 'http://127.0.0.1:%d' % self.server_address[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        server = self.server
        server.seen.append((self.path, dict(self.headers)))
        if server.hang.is_set():
            server.closing.wait(30)
            return
        status, headers, body = server.answer
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_glance():
    server = FakeGlance()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                              daemon=True)
    thread.start()
    yield server
    server.closing.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


def progress(fake_glance, image_id=IMAGE, token=TOKEN_A, **kw):
    return glance.progress(fake_glance.endpoint, token, image_id, **kw)


def answers(fake_glance, status, body, header=True):
    fake_glance.answer = (status, {records.HEADER: '1'} if header else {},
                          body)


# -- the status table: glance's answer -> the browser's ------------------

def test_a_record_is_passed_on_as_glance_sent_it(fake_glance):
    assert progress(fake_glance) == (200, {
        'supported': True, 'available': True, 'progress': RECORD})
    path, headers = fake_glance.seen[0]
    assert path == '/v2/images/%s/progress' % IMAGE
    assert headers['X-Auth-Token'] == TOKEN_A


@pytest.mark.parametrize('status', [401, 403])
def test_refused_is_not_found_never_401_or_403(fake_glance, status):
    for header in (True, False):
        answers(fake_glance, status, {'error': 'no'}, header=header)
        assert progress(fake_glance) == (404, glance.NOT_FOUND)


def test_the_filters_404_is_not_found(fake_glance):
    answers(fake_glance, 404, {'error': {'message': 'hidden'}})
    assert progress(fake_glance) == (404, glance.NOT_FOUND)


def test_a_plain_404_means_no_filter(fake_glance):
    answers(fake_glance, 404, b'404 Not Found', header=False)
    assert progress(fake_glance) == (200, {'supported': False})
    assert glance.support(fake_glance.endpoint, TOKEN_A) == {
        'supported': False}


@pytest.mark.parametrize('status, header, body', [
    (503, True, {'error': {'message': 'memcached down'}}),
    (502, True, {'error': {'message': 'glance answered garbage'}}),
    # a load balancer's or uWSGI's error: not the filter's, and no
    # verdict on the filter either (before: "not supported", for good)
    (503, False, b'<html>Service Unavailable</html>'),
    (500, False, b'Internal Server Error'),
    (200, False, RECORD),
    # a body that is not a record
    (200, True, b'not json'),
    (200, True, [1, 2, 3]),
])
def test_anything_else_is_unavailable_for_now(fake_glance, status, header,
                                              body):
    answers(fake_glance, status, body, header=header)
    code, answer = progress(fake_glance)
    assert code == 200
    assert (answer['supported'], answer['available']) == (True, False)
    assert answer['message']


def test_a_glance_that_does_not_answer_is_unavailable(fake_glance):
    fake_glance.hang.set()
    code, answer = progress(fake_glance, timeout=0.3)
    assert (code, answer['available']) == (200, False)


def test_a_glance_that_refuses_connections_is_unavailable():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(('127.0.0.1', 0))
        endpoint = 'http://127.0.0.1:%d' % s.getsockname()[1]
    code, answer = glance.progress(endpoint, TOKEN_A, IMAGE)
    assert (code, answer['available']) == (200, False)
    probe = glance.support(endpoint, TOKEN_A)
    assert probe['supported'] is False and probe['error']


def test_glance_is_given_a_few_seconds_not_ten():
    # the filter answers a frozen memcached with a 503 at once; a Horizon
    # worker must not wait 10 s on a glance in trouble (issue 20)
    assert 1 <= glance.TIMEOUT <= 5


# -- the probe: a verdict only from glance's own answer -----------------

def test_the_probe_says_supported_on_the_filters_answer(fake_glance):
    answers(fake_glance, 404, {'error': {'message': 'no such image'}})
    assert glance.support(fake_glance.endpoint, TOKEN_A) == {
        'supported': True}
    assert fake_glance.seen[0][0] == '/v2/images/%s/progress' % (
        glance.PROBE_ID)


@pytest.mark.parametrize('status', [500, 502, 503, 401])
def test_a_failed_probe_is_no_verdict(fake_glance, status):
    answers(fake_glance, status, b'busy', header=False)
    answer = glance.support(fake_glance.endpoint, TOKEN_A)
    assert answer['supported'] is False
    assert str(status) in answer['error']


def test_a_probe_that_times_out_is_no_verdict(fake_glance):
    fake_glance.hang.set()
    answer = glance.support(fake_glance.endpoint, TOKEN_A, timeout=0.3)
    assert answer['supported'] is False and answer['error']


# -- one user's call carries nothing of another's ------------------------

def test_a_cookie_set_for_one_user_is_not_sent_with_anothers_call(
        fake_glance):
    fake_glance.answer = (200, {records.HEADER: '1',
                                'Set-Cookie': 'lb=backend-of-alice; Path=/'},
                          RECORD)
    assert progress(fake_glance, token=TOKEN_A)[0] == 200
    assert progress(fake_glance, token=TOKEN_B)[0] == 200
    (_, alice), (_, bob) = fake_glance.seen
    assert bob['X-Auth-Token'] == TOKEN_B
    assert 'Cookie' not in bob, bob
    assert 'Cookie' not in alice


# -- ids requests would turn into other glance paths ---------------------

@pytest.mark.parametrize('image_id', ['.', '..'])
def test_dot_ids_are_refused_before_any_request(fake_glance, image_id):
    # requests normalises /v2/images/../progress into /v2/progress
    assert progress(fake_glance, image_id=image_id) == (404,
                                                        glance.NOT_FOUND)
    assert fake_glance.seen == []


def test_other_ids_are_sent_quoted_as_one_segment(fake_glance):
    progress(fake_glance, image_id='a/../b c...')
    assert fake_glance.seen[0][0] == '/v2/images/a%2F..%2Fb%20c.../progress'
