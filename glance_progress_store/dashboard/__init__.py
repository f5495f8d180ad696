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

"""The Horizon plugin: upload progress in the Images panel.

A Horizon *feature* plugin (enabled/_1051_glance_progress.py): a Django
app holding an AngularJS module that adds a "Progress" column to Project
and Admin -> Compute -> Images and an "Upload progress" tab to an image's
details, and a REST view under Horizon's /api/ that asks glance's
``GET /v2/images/{id}/progress`` with the logged-in user's token.

It runs inside Horizon, so it imports Django, Horizon and keystoneauth1
(all Horizon's), and never python-memcached, glance_store or Ceph's
bindings: the browser's numbers come from glance, which decides who may
see them (tests/unit/test_layers.py keeps that).
"""
