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

"""``python3 tools/testbed ...``: runs the package's CLI (testbed.cli)."""

import os
import sys

# Run as a directory, sys.path[0] is this package's directory, whose
# module names (ceph, memcached, ...) must not shadow real packages:
# replace it with tools/, where `testbed` itself is found.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from testbed import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.main())
