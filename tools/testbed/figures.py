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

"""What the benchmarks share: their source data and how they conclude."""

import os

MiB = 1024 * 1024


def make_source(path, size):
    """Incompressible data, written once and then read from page cache."""
    block = os.urandom(64 * MiB)
    with open(path, 'wb') as f:
        left = size
        while left:
            f.write(block[:min(left, len(block))])
            left -= min(left, len(block))


def percentile(values, fraction):
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def conclude(missed):
    """Print the verdict on the targets; the benchmark's exit code."""
    if missed:
        print('\nTARGETS MISSED:\n  ' + '\n  '.join(missed))
        return 1
    print('\nall targets met')
    return 0


def plot_lines(path, xs, lines, *, xlabel, ylabel, title):
    """A PNG of one line per case ({label: [y per x]}), with matplotlib."""
    import matplotlib
    matplotlib.use('Agg')  # no display here
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=100)
    for label, ys in lines.items():
        axes.plot(xs, ys, marker='o', label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize='small')
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
