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
``OPENSTACK_SSL_CACERT``).  glance decides who sees what.  The views only
find the endpoint and the token; what they ask glance and answer the
browser is in ``glance.py``:

``GET /api/glance-progress/``
    ``glance.support()``: does this cloud's glance have the progress
    filter? Asked once per page load, again while there is no verdict.
``GET /api/glance-progress/images/{id}/progress/``
    ``glance.progress()``: one image's record, as glance shows it to
    the user.
"""

import re

from django.conf import settings
from django.views import generic
from openstack_dashboard.api import base
from openstack_dashboard.api.rest import urls
from openstack_dashboard.api.rest import utils as rest_utils

from glance_progress_store.dashboard import glance

# Catalogs sometimes carry the version in the image endpoint; glance's
# own clients strip it too.
_VERSION_SUFFIX = re.compile(r'/v\d+(\.\d+)?/?$')


def image_endpoint(request):
    """The catalog's image endpoint of the user, without a version."""
    url = base.url_for(request, 'image')
    return _VERSION_SUFFIX.sub('', url.rstrip('/'))


def _verify():
    insecure = getattr(settings, 'OPENSTACK_SSL_NO_VERIFY', False)
    cacert = getattr(settings, 'OPENSTACK_SSL_CACERT', None)
    return False if insecure else (cacert or True)


@urls.register
class Support(generic.View):
    """Does glance serve upload progress?"""

    url_regex = r'glance-progress/$'

    @rest_utils.ajax()
    def get(self, request):
        return glance.support(image_endpoint(request),
                              request.user.token.id, _verify())


@urls.register
class ImageProgress(generic.View):
    """One image's upload progress, as glance shows it to the user."""

    url_regex = r'glance-progress/images/(?P<image_id>[^/]+)/progress/$'

    @rest_utils.ajax()
    def get(self, request, image_id):
        status, body = glance.progress(image_endpoint(request),
                                       request.user.token.id, image_id,
                                       _verify())
        if status != 200:
            return rest_utils.JSONResponse(body, status)
        return body
