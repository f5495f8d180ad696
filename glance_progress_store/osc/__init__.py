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

"""``openstack image progress``: the package's OpenStackClient plugin.

It reads upload progress from glance's ``/v2/images/{id}/progress``
(:mod:`glance_progress_store.middleware`) with the caller's keystoneauth
session, so it needs no access to memcached or to glance's hosts.
"""
