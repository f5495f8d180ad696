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
