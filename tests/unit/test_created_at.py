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

"""An image's creation time as each Ceph release's binding gives it.

Ceph 16 and 18: a naive datetime in UTC (18 makes it with the
deprecated datetime.utcfromtimestamp, warning on Python 3.12+); Ceph 20:
an aware one. The stand-ins below are the bindings' return values, not
a service: the real ones run in the functional tests of each CI leg.
"""

import datetime
import warnings

from glance_progress_store.ops import orphans

STAMP = 1750000000  # 2025-06-15T15:06:40Z


class Image:
    def __init__(self, make):
        self.make = make

    def create_timestamp(self):
        return self.make()


def reef():
    warnings.warn('datetime.datetime.utcfromtimestamp() is deprecated and '
                  'scheduled for removal in a future version.',
                  DeprecationWarning, stacklevel=2)
    return datetime.datetime(2025, 6, 15, 15, 6, 40)


def test_naive_utc_pacific_and_reef_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert orphans._created_at(Image(reef)) == STAMP


def test_aware_tentacle():
    def tentacle():
        return datetime.datetime.fromtimestamp(
            STAMP, datetime.timezone(datetime.timedelta(hours=2)))
    assert orphans._created_at(Image(tentacle)) == STAMP


def test_other_warnings_still_show():
    def other():
        warnings.warn('something else', DeprecationWarning)
        return datetime.datetime(2025, 6, 15, 15, 6, 40)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        assert orphans._created_at(Image(other)) == STAMP
    assert [str(w.message) for w in seen] == ['something else']


def test_without_create_timestamp():
    def old():
        raise AttributeError('create_timestamp')
    assert orphans._created_at(Image(old)) is None
