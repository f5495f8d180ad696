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

"""What the documentation sources say, for the tests that check it.

The install guide's shell blocks carry a ``:name:`` (``install-venv``,
...), so that the tests run exactly the commands an operator pastes.
"""

import os
import pathlib
import re
import subprocess

from testbed.docs import code_blocks

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / 'doc' / 'source'
INSTALL = DOC / 'install' / 'index.rst'
README = ROOT / 'README.md'
# The two paths every install-guide command uses, set in install-venv.
ASSIGNMENT = re.compile(r'^(VENV|SRC)=\S+$')


def install_block(name):
    return code_blocks(INSTALL)[name]


def run_install_block(name, venv, src, cwd, timeout=900):
    """Run an install-guide block in bash, with VENV and SRC set to the
    given paths instead of the guide's example ones."""
    script = '\n'.join(line for line in install_block(name).splitlines()
                       if not ASSIGNMENT.match(line))
    env = dict(os.environ, VENV=str(venv), SRC=str(src),
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    for var in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV'):
        env.pop(var, None)
    return subprocess.run(['bash', '-euo', 'pipefail', '-c', script],
                          capture_output=True, text=True, env=env,
                          cwd=str(cwd), timeout=timeout)


def readme_ini_blocks():
    return re.findall(r'^```ini\n(.*?)^```', README.read_text(),
                      re.M | re.S)


def without_leading_comments(text):
    """A file of etc/ as README shows it: without its header comment."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith('#'):
        lines.pop(0)
    return ''.join(lines)
