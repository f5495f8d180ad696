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

"""What the REST views ask glance, and what they answer the browser.

No Django here (``rest.py`` has the views): glance's
``GET /v2/images/{id}/progress`` with one user's token, and glance's
answer turned into the plugin's JSON.  The browser's answers:

``support()``, for ``GET /api/glance-progress/``
    ``{"supported": true}``: glance's answers carry
    ``OpenStack-Upload-Progress`` (the progress filter is installed);
    ``{"supported": false}``: glance answered the path with a plain 404
    (no filter);
    ``{"supported": false, "error": "..."}``: glance did not answer, or
    answered something else: no verdict, the browser asks again later.
``progress()``, for ``GET /api/glance-progress/images/{id}/progress/``
    200 ``{"supported": true, "available": true, "progress": {...}}``,
    glance's record as it sent it;
    200 ``{"supported": false}``: a plain 404 (glance has no filter);
    200 ``{"supported": true, "available": false, "message": "..."}``:
    glance answered 503 (memcached down), anything else that is not a
    record, or could not be reached in ``TIMEOUT``: the cell says
    "progress unavailable" (no error toast) and asks again later;
    404 when glance answers 401, 403 or 404, and for the ids ``.`` and
    ``..`` (no request sent): Horizon's front end logs the user out on
    any 401 from /api/, and shows a toast on a 403.
"""

import http.cookiejar
import logging
import threading
from urllib import parse

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from glance_progress_store import records

LOG = logging.getLogger(__name__)

#: Seconds one glance request may take: the filter answers a frozen
#: memcached with a 503 at once, so a slower answer is a glance in
#: trouble, and a Horizon worker waiting longer on it helps no one.
TIMEOUT = 3
#: An id no image has: the probe only looks at the answer's header.
PROBE_ID = '00000000-0000-0000-0000-000000000000'
#: Path segments that requests normalises away (``images/../progress``
#: becomes ``/v2/progress``): no image has these ids.
DOT_SEGMENTS = ('.', '..')
NOT_FOUND = 'not found'
_REFUSED = (401, 403)
# Refuses every cookie: the thread's session serves every user.
_NO_COOKIES = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
_local = threading.local()


def _requests_session():
    """One requests session per thread, for its pooled connections, with
    no cookie jar: a cookie glance or its load balancer set for one user
    is never sent with another user's call."""
    if getattr(_local, 'session', None) is None:
        import requests  # keystoneauth1's own dependency
        session = requests.Session()
        session.cookies.set_policy(_NO_COOKIES)
        _local.session = session
    return _local.session


def glance_session(endpoint, token, verify=True):
    """A keystoneauth session carrying one user's token."""
    auth = token_endpoint.Token(endpoint=endpoint, token=token)
    return ks_session.Session(auth=auth, verify=verify,
                              session=_requests_session(),
                              app_name='glance-progress-dashboard')


def ask(endpoint, token, image_id, verify=True, timeout=TIMEOUT):
    """glance's answer to GET /v2/images/{image_id}/progress, or None
    when glance could not be reached in ``timeout`` seconds."""
    url = '%s/v2/images/%s/progress' % (endpoint,
                                        parse.quote(image_id, safe=''))
    try:
        return glance_session(endpoint, token, verify).get(
            url, raise_exc=False, timeout=timeout,
            headers={'Accept': 'application/json'})
    except ks_exceptions.ClientException as e:
        LOG.warning('upload progress of %s: glance did not answer: %s',
                    image_id, e)
        return None


def _message(response):
    try:
        return response.json()['error']['message']
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _has_filter_header(response):
    return response.headers.get(records.HEADER) == '1'


def _unavailable(message):
    return {'supported': True, 'available': False, 'message': message}


def progress_answer(response):
    """(status, JSON body) for the browser, from glance's answer."""
    if response is None:
        return 200, _unavailable('The image service did not answer.')
    if response.status_code in _REFUSED:
        # never a 401 (Horizon would log the user out) nor a 403 (a
        # toast): an image glance does not show is not found.
        return 404, NOT_FOUND
    if not _has_filter_header(response):
        if response.status_code == 404:
            # glance's router answers the path with a plain 404: no filter
            return 200, {'supported': False}
        # a proxy's or glance's own error, not the filter's answer
        LOG.warning('upload progress: glance answered %s without %s',
                    response.status_code, records.HEADER)
        return 200, _unavailable('Upload progress is unavailable.')
    if response.status_code == 404:  # the filter's: glance hides it
        return 404, NOT_FOUND
    if response.status_code == 200:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return 200, {'supported': True, 'available': True,
                         'progress': body}
    LOG.warning('upload progress: glance answered %s: %s',
                response.status_code, _message(response))
    return 200, _unavailable('Upload progress is unavailable.')


def support_answer(response):
    """The browser's answer to "does glance serve upload progress?":
    only glance's plain 404 says no; no answer, or any other one, is no
    verdict (``error``), which the browser asks again."""
    if response is None:
        return {'supported': False,
                'error': 'The image service did not answer.'}
    if _has_filter_header(response):
        return {'supported': True}
    if response.status_code == 404:
        return {'supported': False}
    LOG.warning('upload progress: glance answered the probe with %s',
                response.status_code)
    return {'supported': False,
            'error': 'The image service answered %d.' % response.status_code}


def progress(endpoint, token, image_id, verify=True, timeout=TIMEOUT):
    """(status, JSON body) of one image's upload progress."""
    if image_id in DOT_SEGMENTS:
        return 404, NOT_FOUND
    return progress_answer(ask(endpoint, token, image_id, verify, timeout))


def support(endpoint, token, verify=True, timeout=TIMEOUT):
    """JSON body: does this glance have the progress filter?"""
    return support_answer(ask(endpoint, token, PROBE_ID, verify, timeout))
