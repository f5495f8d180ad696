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

"""A glance_store RBD driver that publishes upload progress to memcached.

The package is laid out by where its code runs (the import rules are
kept by tests/unit/test_layers.py):

store.py, upload/
    The write side, inside glance-api on every upload: the
    progress_rbd driver, its librbd pipeline, what an upload
    publishes, the per-process publisher and discovery index.
records.py, _memcache.py
    The wire contract shared by writers and readers (keys, values, the
    compatibility rule), and the one module that talks to
    python-memcached.
options.py
    Every configuration option, and list_opts for
    oslo-config-generator.
read/
    Reading records back, for any host: settings from glance-api.conf,
    the reader, discovery, views and the states vocabulary. Imports
    nothing of glance_store, rados, rbd, WebOb or prometheus_client.
cmd/, middleware.py, osc/
    The surfaces: the glance-progress command (with its exporter),
    glance's GET /v2/images/{id}/progress paste filter, and the
    openstack image progress plugin.
ops/
    Operators' tools: partial uploads left in Ceph, and Ceph's bindings
    for a virtual environment.
"""
