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

"""The shipped option sample is what oslo-config-generator makes now."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_sample_is_up_to_date(tmp_path):
    out = tmp_path / 'sample.conf'
    generator = pathlib.Path(sys.executable).with_name(
        'oslo-config-generator')
    subprocess.run([str(generator), '--namespace', 'glance_progress_store',
                    '--wrap-width', '79', '--output-file', str(out)],
                   check=True, capture_output=True)
    shipped = (ROOT / 'etc' / 'glance-progress-store.conf.sample')
    assert out.read_text() == shipped.read_text(), (
        'etc/glance-progress-store.conf.sample is stale: run tox -e '
        'genconfig')
