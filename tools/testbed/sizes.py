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

"""Sizes as operators type them (512M, 4G, 1GiB) and as people read them.

One parser for the demo and the benchmark, so that they accept the same
spellings.
"""

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
_UNITS = {'K': KiB, 'M': MiB, 'G': GiB, 'T': 1024 * GiB}


def parse_size(text):
    """Bytes in '4G', '512M', '1GiB', '64KB' or '1048576'."""
    text = text.strip().upper()
    if text.endswith('IB'):
        text = text[:-2]
    elif text.endswith('B'):
        text = text[:-1]
    if text and text[-1] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(text)


def human(size):
    """'4 GiB', '512 MiB', else bytes: exact, as in the benchmark tables."""
    for unit, factor in (('GiB', GiB), ('MiB', MiB)):
        if size >= factor and size % factor == 0:
            return '%d %s' % (size // factor, unit)
    return '%d B' % size


def approx(size):
    """'4.5 GiB', '300 MiB': rounded, for summaries."""
    for unit, factor in (('GiB', GiB), ('MiB', MiB), ('KiB', KiB)):
        if size >= factor:
            return '%.3g %s' % (size / factor, unit)
    return '%d B' % size
