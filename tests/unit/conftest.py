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

"""The fast tier: no root, no Ceph, no memcached daemon.

tests/conftest.py's session fixtures boot real services; here they are
replaced by ones that fail, so that a test needing a service is moved to
tests/functional instead of silently making this tier slow.
"""

import pytest


def _no_service(name):
    pytest.fail('tests/unit must not start %s: move this test to '
                'tests/functional' % name, pytrace=False)


@pytest.fixture(scope='session')
def ceph():
    _no_service('Ceph')


@pytest.fixture(scope='session')
def memcached():
    _no_service('memcached')
