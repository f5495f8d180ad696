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

"""The Horizon plugin inside Horizon 27 (the test bed's Horizon venv):
its app, REST views and enabled file load on a host without
python-memcached, glance_store or Ceph's bindings.  The plugin's
JavaScript (ESLint, the Jasmine specs in Chromium) is tested outside the
e2e tier, by tests/horizon/test_js.py (``npm run lint``, ``npm test``).
"""

import os
import subprocess

import pytest

import testbed

# Each module says what it cost, in the run's output (CI's budget).
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures('dashboard_leg_cost')]


def test_the_plugin_loads_in_horizon_without_memcached_glance_store_or_ceph(
        workdir):
    """Horizon imports the plugin (its app, REST views and enabled file)
    on a host where python-memcached, glance_store and Ceph's bindings
    cannot be imported (tests/unit/test_layers.py's blocker), and its
    routes resolve."""
    from tests.unit import test_layers
    horizon = testbed.Horizon(os.path.join(workdir, 'horizon-imports'),
                              'http://127.0.0.1:9/v3')
    horizon.install()
    code = test_layers._BLOCKER + (
        'import os, django\n'
        'os.environ["DJANGO_SETTINGS_MODULE"] = '
        '"openstack_dashboard.settings"\n'
        'django.setup()\n'
        'from django.conf import settings\n'
        'from django.urls import resolve\n'
        'import glance_progress_store.dashboard.rest as rest\n'
        'assert "glance_progress_store.dashboard" in settings.INSTALLED_APPS\n'
        'assert "horizon.dashboard.glance-progress" in '
        'settings.HORIZON_CONFIG["angular_modules"]\n'
        'print(resolve("/api/glance-progress/").func.view_class.__name__,\n'
        '      resolve("/api/glance-progress/images/x/progress/")'
        '.func.view_class.__name__)\n'
        'print(sorted(m for m in sys.modules if m.split(".")[0] in '
        'BLOCKED))\n')
    done = subprocess.run(
        [horizon.python, '-c', code,
         'memcache,glance_store,rados,rbd,prometheus_client'],
        capture_output=True, text=True, timeout=120, env=horizon.env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split('\n')[:2] == ['Support ImageProgress', '[]']
