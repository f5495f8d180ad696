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

"""The Horizon plugin's Jasmine specs (glance_progress_store/dashboard/
static/**/*.spec.js), run by Karma in Debian's Chromium, headless, with
Horizon 27's own framework and Images module from the test bed's Horizon
venv: the column's place, formatting, unknown totals, stalled and failed,
when polling stops, one request at a time, the hidden tab, 20 rows.
"""

import os
import re

import pytest

import testbed

pytestmark = pytest.mark.e2e


def test_jasmine_specs_pass_in_chromium(workdir):
    horizon = testbed.Horizon(os.path.join(workdir, 'horizon-karma'),
                              'http://127.0.0.1:9/v3')
    horizon.install()
    done = testbed.horizon.run_karma(horizon)
    output = done.stdout + done.stderr
    print(output[-3000:])
    totals = re.findall(r'TOTAL: (?:(\d+) FAILED, )?(\d+) SUCCESS', output)
    assert done.returncode == 0 and totals, output[-5000:]
    failed, passed = totals[-1]
    assert not failed and int(passed) >= 20, output[-5000:]
