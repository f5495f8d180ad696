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

"""The OpenStackClient plugin hooks (``openstack.cli.extension``).

``openstack`` imports this module to add the global option and to build
the client of the commands lazily, the first time one of them runs.
"""

from osc_lib import utils

from glance_progress_store.osc import http

API_NAME = 'image_progress'
API_VERSION_OPTION = 'os_image_progress_api_version'
DEFAULT_API_VERSION = '1'
API_VERSIONS = {'1': 'glance_progress_store.osc.http.ProgressClient'}


def make_client(instance):
    """The client of glance's progress endpoint, on the caller's session.

    The endpoint is glance's (service type ``image``) as osc-lib finds it:
    the catalog with --os-interface and --os-region-name, an
    ``image_endpoint_override``, or --os-endpoint with --os-auth-type none.
    """
    endpoint = instance.get_endpoint_for_service_type(
        'image', region_name=instance.region_name,
        interface=instance.interface)
    return http.ProgressClient(instance.session, endpoint)


def build_option_parser(parser):
    """The global option osc-lib expects of every plugin."""
    parser.add_argument(
        '--os-image-progress-api-version',
        metavar='<image-progress-api-version>',
        default=utils.env('OS_IMAGE_PROGRESS_API_VERSION',
                          default=DEFAULT_API_VERSION),
        help='image progress API version, default=%s '
             '(Env: OS_IMAGE_PROGRESS_API_VERSION)' % DEFAULT_API_VERSION)
    return parser
