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

"""setup.cfg's classifiers name exactly the Pythons CI runs the suite on.

CI (.ci/run) runs on Debian 12 (CPython 3.11, the bindings' Python
there) and in the roots of tools/testbed/roots.py (Debian 13: 3.13,
forky: 3.14).
"""

import configparser
import pathlib
import re

from testbed import roots

ROOT = pathlib.Path(__file__).resolve().parents[2]
CI_HOST = {'3.11'}  # Debian 12: .ci/run's own machine


def test_classifiers_are_the_ci_pythons():
    setup = configparser.ConfigParser()
    setup.read(ROOT / 'setup.cfg')
    classified = set(re.findall(r'Python :: (3\.\d+)',
                                setup['metadata']['classifier']))
    legs = {re.search(r'CPython (3\.\d+)', text).group(1)
            for text in roots.RELEASES.values()}
    assert classified == CI_HOST | legs
