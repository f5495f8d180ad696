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

"""The Horizon plugin's JavaScript: ESLint (``npm run lint``, OpenStack's
rules) and its Jasmine specs (``npm test``: Karma in Debian's Chromium,
headless, with Horizon 27's own framework and Images module from the
test bed's Horizon venv), from the repository's package.json.

No glance, Ceph, memcached or Keystone: this tier needs Node.js and npm
(Debian's, installed when missing), Chromium, and the registries once
(npm's packages into ./node_modules, Horizon into its cached venv).
Each step says what it cost, in the run's output.
"""

import hashlib
import os
import re
import shutil
import subprocess
import time

import pytest

import testbed
from testbed import packages

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
STAMP = os.path.join(ROOT, 'node_modules', '.glance-progress-installed')


def _npm_env():
    # Nothing may download a browser (there is Debian's Chromium), and
    # nothing is sent anywhere but the registry.
    return dict(os.environ, PUPPETEER_SKIP_DOWNLOAD='1',
                PUPPETEER_SKIP_CHROMIUM_DOWNLOAD='1', NO_COLOR='1',
                npm_config_update_notifier='false',
                CHROME_BIN='/usr/bin/chromium')


def _run(args, env, timeout):
    return subprocess.run(args, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope='module')
def npm(say):
    """npm, with package.json's devDependencies in ./node_modules
    (again when package.json changed)."""
    if shutil.which('npm') is None:
        packages.ensure_packages(('nodejs', 'npm'), takes='1 min')
    with open(os.path.join(ROOT, 'package.json'), 'rb') as f:
        wanted = hashlib.sha256(f.read()).hexdigest()
    if not os.path.exists(STAMP) or open(STAMP).read() != wanted:
        started = time.monotonic()
        done = _run(['npm', 'install', '--no-audit', '--no-fund'],
                    _npm_env(), 900)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        with open(STAMP, 'w') as f:
            f.write(wanted)
        say('\nHorizon JS: npm install took %.0f s'
            % (time.monotonic() - started))
    return _npm_env()


@pytest.fixture(scope='module')
def horizon_site_packages(workdir, say):
    """Horizon 27's site-packages, from the test bed's cached venv."""
    started = time.monotonic()
    horizon = testbed.Horizon(os.path.join(workdir, 'horizon-js'),
                              'http://127.0.0.1:9/v3')
    horizon.install()
    say('\nHorizon JS: Horizon %s venv ready in %.0f s'
        % (testbed.horizon.VERSION, time.monotonic() - started))
    return horizon.site_packages


def test_eslint_finds_nothing_in_the_plugins_javascript(npm, say):
    started = time.monotonic()
    done = _run(['npm', 'run', 'lint'], npm, 300)
    say('\nHorizon JS: npm run lint took %.0f s'
        % (time.monotonic() - started))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert 'problem' not in output, output[-5000:]  # warnings too


def test_jasmine_specs_pass_in_chromium(npm, horizon_site_packages, say):
    started = time.monotonic()
    done = _run(['npm', 'test'],
                dict(npm, HORIZON_SITE_PACKAGES=horizon_site_packages), 600)
    say('\nHorizon JS: npm test took %.0f s' % (time.monotonic() - started))
    output = done.stdout + done.stderr
    totals = re.findall(r'TOTAL: (?:(\d+) FAILED, )?(\d+) SUCCESS', output)
    assert done.returncode == 0 and totals, output[-5000:]
    failed, passed = totals[-1]
    print(output[-3000:])
    assert not failed and int(passed) >= 30, output[-5000:]
