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

"""The plugin's REST views, under Horizon's /api/ (``urls.register``).

The browser never talks to glance or memcached: it asks these views,
which ask glance's ``GET /v2/images/{id}/progress`` with the logged-in
user's token and the catalog's image endpoint, as Horizon's own glance
calls do (``OPENSTACK_ENDPOINT_TYPE``, ``OPENSTACK_SSL_NO_VERIFY``,
``OPENSTACK_SSL_CACERT``).  glance decides who sees what.

Answers, all JSON:

``GET /api/glance-progress/``
    ``{"supported": true|false}``: does this cloud's glance have the
    progress filter (its answers carry ``OpenStack-Upload-Progress``)?
``GET /api/glance-progress/images/{id}/progress/``
    200 ``{"supported": true, "available": true, "progress": {...}}``,
    glance's record as it sent it;
    200 ``{"supported": false}``: glance has no progress filter;
    200 ``{"supported": true, "available": false, "message": "..."}``:
    glance answered 503 (memcached down) or could not be reached: the
    cell says "progress unavailable", no error toast;
    404 when glance answers 401, 403 or 404: Horizon's front end logs
    the user out on any 401 from /api/, and shows a toast on a 403.
"""

import logging
import re
import threading
from urllib import parse

from django.conf import settings
from django.utils.translation import gettext as _
from django.views import generic
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from openstack_dashboard.api import base
from openstack_dashboard.api.rest import urls
from openstack_dashboard.api.rest import utils as rest_utils

from glance_progress_store import records

LOG = logging.getLogger(__name__)

#: Seconds one glance request may take (the filter answers a frozen
#: memcached with a 503 within its own 1 s).
TIMEOUT = 10
#: An id no image has: the probe only looks at the answer's header.
PROBE_ID = '00000000-0000-0000-0000-000000000000'
# Catalogs sometimes carry the version in the image endpoint; glance's
# own clients strip it too.
_VERSION_SUFFIX = re.compile(r'/v\d+(\.\d+)?/?$')
_REFUSED = (401, 403)
_local = threading.local()


def _requests_session():
    """One requests session per thread: its connections are reused."""
    if getattr(_local, 'session', None) is None:
        import requests  # keystoneauth1's own dependency
        _local.session = requests.Session()
    return _local.session


def image_endpoint(request):
    """The catalog's image endpoint of the user, without a version."""
    url = base.url_for(request, 'image')
    return _VERSION_SUFFIX.sub('', url.rstrip('/'))


def glance_session(request):
    """A keystoneauth session carrying the logged-in user's token."""
    insecure = getattr(settings, 'OPENSTACK_SSL_NO_VERIFY', False)
    cacert = getattr(settings, 'OPENSTACK_SSL_CACERT', None)
    verify = False if insecure else (cacert or True)
    auth = token_endpoint.Token(endpoint=image_endpoint(request),
                                token=request.user.token.id)
    return ks_session.Session(auth=auth, verify=verify,
                              session=_requests_session(),
                              app_name='glance-progress-dashboard')


def ask_glance(request, image_id):
    """glance's answer to GET /v2/images/{image_id}/progress, or None
    when glance could not be reached."""
    url = '%s/v2/images/%s/progress' % (image_endpoint(request),
                                        parse.quote(image_id, safe=''))
    try:
        return glance_session(request).get(
            url, raise_exc=False, timeout=TIMEOUT,
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


def progress_answer(response):
    """(status, JSON body) for the browser, from glance's answer."""
    if response is None:
        return 200, {'supported': True, 'available': False,
                     'message': _('The image service did not answer.')}
    if response.status_code in _REFUSED:
        # never a 401 (Horizon would log the user out) nor a 403 (a
        # toast): an image glance does not show is not found.
        return 404, _('not found')
    if response.headers.get(records.HEADER) != '1':
        # glance's router answers the path with a plain 404: no filter
        return 200, {'supported': False}
    if response.status_code == 404:  # the filter's: glance hides it
        return 404, _('not found')
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
    return 200, {'supported': True, 'available': False,
                 'message': _('Upload progress is unavailable.')}


@urls.register
class Support(generic.View):
    """Does glance serve upload progress? Asked once per page load."""

    url_regex = r'glance-progress/$'

    @rest_utils.ajax()
    def get(self, request):
        response = ask_glance(request, PROBE_ID)
        supported = (response is not None and
                     response.headers.get(records.HEADER) == '1')
        return {'supported': supported}


@urls.register
class ImageProgress(generic.View):
    """One image's upload progress, as glance shows it to the user."""

    url_regex = r'glance-progress/images/(?P<image_id>[^/]+)/progress/$'

    @rest_utils.ajax()
    def get(self, request, image_id):
        status, body = progress_answer(ask_glance(request, image_id))
        if status != 200:
            return rest_utils.JSONResponse(body, status)
        return body
