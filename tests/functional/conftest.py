"""Fixtures of the tests against the session's Ceph and memcached."""

import uuid

import pytest


@pytest.fixture
def image():
    return str(uuid.uuid4())


@pytest.fixture
def addr(live_memcached):
    return live_memcached.address
