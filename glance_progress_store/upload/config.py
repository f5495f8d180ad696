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

"""The progress options of one store, read and validated once.

Reading them at configure time turns a bad value into a
BadStoreConfiguration at start-up (glance then disables writes to the
store and logs why) instead of an error in the middle of an upload, or a
publisher that cannot connect.
"""

from glance_store import exceptions
from oslo_config import cfg
from oslo_utils import units

from glance_progress_store import _memcache
from glance_progress_store import options
from glance_progress_store import records


class ProgressConfig:
    """The values of :data:`options.OPTIONS` for one store."""

    def __init__(self, store_conf, store_name):
        values = {}
        for opt in options.OPTIONS:
            try:
                values[opt.name] = getattr(store_conf, opt.name)
            except (cfg.ConfigFileValueError, ValueError) as e:
                raise _bad(store_name, opt.name, e)
        self.enabled = values['progress_enabled']
        self.ttl = values['progress_ttl']
        self.key_prefix = values['progress_key_prefix'] or ''
        self.socket_timeout = values['progress_socket_timeout']
        self.min_interval = values['progress_min_interval']
        self.writes_in_flight = values['progress_rbd_writes_in_flight']
        self.process_in_flight = (
            values['progress_rbd_process_in_flight_mib'] * units.Mi)
        self.discovery = values['progress_discovery']
        self.index_ttl = values['progress_index_ttl']
        self.index_retention = values['progress_index_retention']
        self.notifications = values['progress_notifications']
        self.notification_interval = values['progress_notification_interval']
        self.notification_percent_step = (
            values['progress_notification_percent_step'])
        self.notification_stall_after = (
            values['progress_notification_stall_after'])
        self.servers = ()
        if self.enabled:
            try:
                self.servers = _memcache.parse_servers(
                    values['progress_memcached_servers'])
            except _memcache.BadServer as e:
                raise _bad(store_name, 'progress_memcached_servers', e)
        problem = records.check_prefix(self.key_prefix)
        if problem:
            raise _bad(store_name, 'progress_key_prefix', problem)


def _bad(store_name, option, problem):
    return exceptions.BadStoreConfiguration(
        store_name=store_name,
        reason='invalid value for %s: %s' % (option, problem))
