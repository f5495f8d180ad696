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

"""The documentation's named shell blocks, for whatever runs them.

The install guide's shell blocks carry a ``:name:`` (``install-venv``,
``skyline-build``, ...), so that the tests and the test bed run exactly
the commands an operator pastes.  Stdlib only.
"""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "doc", "source")


def code_blocks(path):
    """{name: text} of every ``.. code-block::`` with a ``:name:``."""
    blocks = {}
    with open(path) as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines):
        if not line.startswith(".. code-block::"):
            continue
        name = None
        body = []
        for following in lines[n + 1:]:
            option = re.match(r"^   :name: (\S+)$", following)
            if option:
                name = option.group(1)
            elif following.startswith("   ") or not following.strip():
                if following.strip() and not following.startswith("   :"):
                    body.append(following[3:])
                elif body:
                    body.append("")
            else:
                break
        if name:
            blocks[name] = "\n".join(body).strip() + "\n"
    return blocks
