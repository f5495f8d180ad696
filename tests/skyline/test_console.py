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

"""The skyline-console patches (contrib/skyline/*.patch): they apply to
the 9.0.0 sdist exactly (no fuzz, no offset), the console builds with
them, the jest spec of src/utils/upload-progress.js (the formatter and the
store's progress requests) passes and the console's own ESLint finds
nothing in the files they touch.

No glance, Ceph, memcached or Keystone: this tier needs Node.js (Debian's,
installed when missing), yarn 1 and the registries once.  The build is
the test bed's (tools/testbed/skyline_console.py), cached across runs:
about 4 minutes the first time, under a second after.  Each step says
what it cost, in the run's output.  The browser tests are in
tests/e2e/test_skyline.py.
"""

import os
import re
import subprocess
import time
import zipfile

import pytest

from testbed import skyline_console

SPEC = 'src/utils/upload-progress.spec.js'


@pytest.fixture(scope='module')
def console(say):
    """The patched console, built (or found in the cache)."""
    built = skyline_console.build(say=lambda text: say('\n' + text))
    say('\nSkyline console: build() took %.1f s (first build: yarn install '
        '%.0f s, webpack %.0f s)' % (built.seconds,
                                     built.yarn_install_seconds,
                                     built.webpack_seconds))
    return built


def _touched_files():
    """The files the patches write, in patch order, once each."""
    files = []
    for path in skyline_console.patches():
        with open(path) as f:
            for name in re.findall(r'^\+\+\+ b/(\S+)$', f.read(), re.M):
                if name not in files:
                    files.append(name)
    return files


def _run(args, cwd, timeout=300, **env):
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, NO_COLOR='1', FORCE_COLOR='0', **env))


def test_the_patches_are_a_git_series_in_file_name_order():
    names = [os.path.basename(p) for p in skyline_console.patches()]
    assert names, 'no patch in %s' % skyline_console.PATCH_DIR
    for number, name in enumerate(names, 1):
        assert re.match(r'%04d-[\w.-]+\.patch$' % number, name), name
    for path in skyline_console.patches():
        with open(path) as f:
            head = f.read(1000)
        assert head.startswith('From ') and '\nSubject: [PATCH' in head, path


def test_the_patches_apply_to_the_pristine_sdist_without_fuzz_or_offset(
        tmp_path, say):
    started = time.monotonic()
    tree = skyline_console.extract(
        skyline_console.sdist(say=lambda text: say('\n' + text)),
        str(tmp_path / 'src'))
    outputs = skyline_console.apply_patches(tree)
    say('\nSkyline console: the sdist unpacked and %d patches applied in '
        '%.1f s' % (len(outputs), time.monotonic() - started))
    for path, output in zip(skyline_console.patches(), outputs):
        assert not re.search(r'offset|fuzz|hunk|reversed', output, re.I), (
            '%s:\n%s' % (os.path.basename(path), output))
    for name in _touched_files():
        assert os.path.exists(os.path.join(tree, name)), name


def test_the_build_carries_the_progress_column(console):
    assert os.path.exists(os.path.join(console.static, 'index.html'))
    bundles = [os.path.join(console.static, name)
               for name in os.listdir(console.static)
               if name.startswith('main.bundle.') and name.endswith('.js')]
    assert len(bundles) == 1, bundles
    with open(bundles[0], encoding='utf-8') as f:
        text = f.read()
    # The cell's class and the words of an unavailable record.
    assert 'image-upload-progress-text' in text
    assert 'Progress unavailable' in text


def test_the_wheel_carries_the_built_console(console):
    """The recipe's wheel, what operators install, holds this build's
    bundle, not the 2022 console of the sdist's (and PyPI's) static/."""
    with zipfile.ZipFile(console.wheel) as wheel:
        names = wheel.namelist()
        bundles = [name for name in names if re.match(
            r'skyline_console/static/main\.bundle\.\d+\.js$', name)]
        assert len(bundles) == 1, bundles
        assert os.path.basename(bundles[0]) in os.listdir(console.static)
        text = wheel.read(bundles[0]).decode('utf-8')
    assert 'image-upload-progress-text' in text


def test_the_upload_progress_jest_spec_passes(console, say):
    started = time.monotonic()
    # The console's `yarn run test:unit` (jest.config.js, NODE_ENV), with
    # its testPathIgnorePatterns anchored at the tree: unanchored, its
    # '.cache' ignores every spec of a tree in ~/.cache.
    ignored = ['<rootDir>/%s' % name
               for name in ('node_modules/', '.cache/', 'test/e2e', 'config/')]
    done = _run([os.path.join('node_modules', '.bin', 'jest'), '--ci',
                 '--testPathIgnorePatterns', *ignored, '--', SPEC],
                console.tree, NODE_ENV='development')
    say('\nSkyline console: jest %s took %.0f s'
        % (SPEC, time.monotonic() - started))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    totals = re.search(r'Tests:\s+(?:(\d+) failed, )?(\d+) passed', output)
    assert totals and not totals.group(1), output[-5000:]
    assert int(totals.group(2)) >= 10, output[-5000:]


def test_eslint_finds_nothing_in_the_files_the_patches_touch(console, say):
    """The console's own .eslintrc (airbnb, prettier), as its `yarn lint`
    runs it (--quiet: errors; its spell-check plugin only warns, about
    9.0.0's own words too), and prettier on the locale files."""
    files = _touched_files()
    scripts = [name for name in files if name.endswith(('.js', '.jsx'))]
    others = [name for name in files if name.endswith('.json')]
    assert scripts and others, files
    started = time.monotonic()
    # Its .eslintrc is not "root": only it, never one of a folder above
    # the cache (this repository's own, when the cache is in it).
    done = _run([os.path.join('node_modules', '.bin', 'eslint'), '--quiet',
                 '--no-eslintrc', '-c', '.eslintrc', *scripts], console.tree)
    say('\nSkyline console: eslint on %d files took %.0f s'
        % (len(scripts), time.monotonic() - started))
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert 'problem' not in done.stdout, done.stdout[-5000:]
    done = _run([os.path.join('node_modules', '.bin', 'prettier'), '--check',
                 *others], console.tree)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
