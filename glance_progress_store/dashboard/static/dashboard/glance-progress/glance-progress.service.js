/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License. You may obtain
 * a copy of the License at
 *
 *      http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
 * WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
 * License for the specific language governing permissions and limitations
 * under the License.
 */

(function() {
  'use strict';

  angular
    .module('horizon.dashboard.glance-progress')
    .factory('horizon.dashboard.glance-progress.service', progressService);

  progressService.$inject = [
    '$document',
    '$q',
    '$timeout',
    'horizon.framework.util.http.service',
    'horizon.app.core.openstack-service-api.settings',
    'horizon.dashboard.glance-progress.maxDelayMs'
  ];

  /**
   * @ngdoc service
   * @name horizon.dashboard.glance-progress.service
   * @description
   * Talks to the plugin's REST views (never to glance or memcached) and
   * turns glance's progress record into what a cell shows.
   * @param {Object} $document The document (is the tab hidden?).
   * @param {Object} $q Angular's promises.
   * @param {Object} $timeout Angular's timer (the probe's retries).
   * @param {Object} apiService Horizon's HTTP service.
   * @param {Object} settings Horizon's settings service.
   * @param {number} maxDelayMs The longest wait between two requests.
   * @returns {Object} The service.
   */
  function progressService($document, $q, $timeout, apiService, settings,
                           maxDelayMs) {
    var UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
    // Horizon's own default of HORIZON_CONFIG['ajax_poll_interval'].
    var DEFAULT_POLL_MS = 2500;
    // glance's image statuses during which it is writing data (not this
    // package's upload states).
    var UPLOADING_IMAGE_STATUSES = ['saving', 'uploading', 'importing'];
    var ACTIVE = ['uploading', 'finalizing'];
    var REASONS = {
      source_error: gettext('the data stream broke (client gone, or ' +
                            'glance refused more data)'),
      verifier_failed: gettext('the signature check refused the data'),
      size_mismatch: gettext('more or fewer bytes than declared'),
      storage_full: gettext('the storage is full or over quota'),
      storage_timeout: gettext('the storage did not answer in time'),
      storage_error: gettext('the storage failed'),
      interrupted: gettext('the image service was stopped mid-upload')
    };
    var supportPromise = null;
    var intervalPromise = null;

    return {
      supported: supported,
      probe: probe,
      pollInterval: pollInterval,
      backoff: backoff,
      get: get,
      isHidden: isHidden,
      inFlight: inFlight,
      isFinal: isFinal,
      isMoving: isMoving,
      rows: rows,
      humanSize: humanSize,
      humanDuration: humanDuration,
      format: format
    };

    /**
     * Milliseconds between two looks: Horizon's
     * HORIZON_CONFIG['ajax_poll_interval'], as its own tables poll.
     * @returns {Promise} The interval, asked once per page.
     */
    function pollInterval() {
      if (intervalPromise === null) {
        intervalPromise = settings.getSetting('AJAX_POLL_INTERVAL',
                                              DEFAULT_POLL_MS)
          .then(function valid(ms) {
            var n = Number(ms);
            return n > 0 ? n : DEFAULT_POLL_MS;
          }, function none() {
            return DEFAULT_POLL_MS;
          });
      }
      return intervalPromise;
    }

    /**
     * The wait after `failures` answers in a row that could not say
     * (doubling from the interval, up to maxDelayMs): a glance or
     * memcached in trouble is not asked every interval by every row.
     * @param {number} intervalMs The poll interval.
     * @param {number} failures Such answers in a row (0: none).
     * @returns {number} Milliseconds.
     */
    function backoff(intervalMs, failures) {
      return Math.min(intervalMs * Math.pow(2, failures),
                      Math.max(intervalMs, maxDelayMs));
    }

    /**
     * One question to glance: does it serve upload progress?
     * @returns {Promise} Never rejected: {supported, error}, where an
     *   error (no answer, a 5xx, a time-out) is no verdict.
     */
    function probe() {
      return apiService.get('/api/glance-progress/')
        .then(function onAnswer(response) {
          var data = response.data || {};
          return {supported: data.supported === true,
                  error: data.error || null};
        }, function onError(response) {
          return {supported: false,
                  error: response && response.status
                    ? 'HTTP ' + response.status : 'no answer'};
        });
    }

    /**
     * Does glance serve upload progress? Asked once per page load, and
     * again (backing off) while the answer is no verdict: a glance
     * that failed at page load is not taken for one without progress.
     * @returns {Promise} Resolved when glance has the progress filter,
     *   rejected when it answered that it has not.
     */
    function supported() {
      if (supportPromise === null) {
        supportPromise = askUntilAnswered(0);
      }
      return supportPromise;
    }

    function askUntilAnswered(failures) {
      return probe().then(function onProbe(answer) {
        if (!answer.error) {
          return answer.supported ? true : $q.reject(false);
        }
        return pollInterval().then(function wait(ms) {
          return $timeout(angular.noop, backoff(ms, failures + 1), false);
        }).then(function again() {
          return askUntilAnswered(failures + 1);
        });
      });
    }

    /**
     * The plugin's answer for one image.
     * @param {string} imageId The image's id.
     * @returns {Promise} Never rejected: {supported, available, progress,
     *   message}; {hidden: true} for a 404 (an image glance does not
     *   show); errors are an "unavailable" answer, not a toast.
     */
    function get(imageId) {
      return apiService.get('/api/glance-progress/images/' +
                            encodeURIComponent(imageId) + '/progress/')
        .then(function onAnswer(response) {
          return response.data;
        }, function onError(response) {
          if (response && response.status === 404) {
            return {hidden: true};
          }
          return {supported: true, available: false,
                  message: gettext('Upload progress is unavailable.')};
        });
    }

    function isHidden() {
      return $document[0].visibilityState === 'hidden';
    }

    /**
     * Is glance writing this image's data (a row that polls)?
     * @param {Object} image glance's image.
     * @returns {boolean} Yes or no.
     */
    function inFlight(image) {
      if (!image) {
        return false;
      }
      var stores = image.os_glance_importing_to_stores;
      var copying = (angular.isString(stores) || angular.isArray(stores)) &&
        stores.length > 0;
      return UPLOADING_IMAGE_STATUSES.indexOf(
        String(image.status).toLowerCase()) > -1 || copying;
    }

    /**
     * Every record of the answer (one per backend in copy-image).
     * @param {Object} record glance's progress record.
     * @returns {Array} The records.
     */
    function rows(record) {
      if (!record) {
        return [];
      }
      var backends = record.backends;
      if (backends && Object.keys(backends).length > 0) {
        return Object.keys(backends).sort().map(function byName(name) {
          return backends[name];
        });
      }
      return [record];
    }

    /**
     * No more changes to expect: stop polling.
     * @param {Object} answer The plugin's answer.
     * @returns {boolean} Yes or no.
     */
    function isFinal(answer) {
      if (!answer || answer.hidden || answer.supported === false) {
        return true;
      }
      if (!answer.available) {
        return false;  // 503: glance may answer again
      }
      var records = rows(answer.progress);
      return records.every(function ended(r) {
        return r.state === 'stored' || r.state === 'failed';
      });
    }

    /**
     * Is an upload of the answer still running (or stalled)?
     * @param {Object} answer The plugin's answer.
     * @returns {boolean} Yes or no.
     */
    function isMoving(answer) {
      if (!answer || !answer.available) {
        return false;
      }
      return rows(answer.progress).some(function running(r) {
        return ACTIVE.indexOf(r.state) > -1 || r.state === 'stalled' ||
          r.stalled === true;
      });
    }

    /**
     * `1.2 GiB`: binary units, as glance-progress prints them.
     * @param {number} nbytes Bytes, or null.
     * @returns {string} The size.
     */
    function humanSize(nbytes) {
      if (!known(nbytes)) {
        return '?';
      }
      if (nbytes < 1024) {
        return Math.floor(nbytes) + ' B';
      }
      var value = nbytes;
      for (var i = 1; i < UNITS.length; i++) {
        value /= 1024;
        if (value < 1023.95 || i === UNITS.length - 1) {
          return value.toFixed(1) + ' ' + UNITS[i];
        }
      }
    }

    /**
     * `45s`, `1m05s`, `2h03m`, `3d04h`.
     * @param {number} seconds Seconds, or null.
     * @returns {string} The duration.
     */
    function humanDuration(seconds) {
      if (!known(seconds)) {
        return '?';
      }
      var s = Math.round(Math.max(0, seconds));
      function two(n) {
        return (n < 10 ? '0' : '') + n;
      }
      if (s < 60) {
        return s + 's';
      }
      if (s < 3600) {
        return Math.floor(s / 60) + 'm' + two(s % 60) + 's';
      }
      if (s < 86400) {
        return Math.floor(s / 3600) + 'h' + two(Math.floor(s % 3600 / 60)) + 'm';
      }
      return Math.floor(s / 86400) + 'd' + two(Math.floor(s % 86400 / 3600)) + 'h';
    }

    function known(value) {
      return value !== null && angular.isDefined(value);
    }

    // Django's interpolate(), from the page's JavaScript catalog.
    function fill(text, values) {
      return interpolate(text, values, true);
    }

    /**
     * What a cell shows of one record: {backend, state, kind, bar,
     * percent, text}. `bar` only for a moving upload of known size;
     * never a percent that glance did not give.
     * @param {Object} record One of glance's progress records.
     * @returns {Object} The view, or null when there is nothing to show.
     */
    function format(record) {
      var state = record.stalled ? 'stalled' : record.state;
      var hasTotal = known(record.total) && known(record.percent);
      var amount = hasTotal
        ? fill(gettext('%(done)s of %(total)s'), {
          done: humanSize(record.bytes), total: humanSize(record.total)})
        : humanSize(record.bytes);
      var view = {backend: record.backend, state: state,
                  percent: hasTotal
                    ? Math.min(100, Math.max(0, record.percent)) : null,
                  bar: false, kind: 'info', text: ''};
      var parts;
      if (state === 'uploading' || state === 'finalizing') {
        view.bar = hasTotal;
        parts = moving(record, view, amount);
      } else if (state === 'stalled') {
        view.kind = 'warning';
        parts = [fill(gettext('Stalled: no progress for %(age)s'),
                      {age: humanDuration(record.age_s)}), amount];
      } else if (state === 'failed') {
        view.kind = 'danger';
        parts = [fill(gettext('Failed: %(reason)s'),
                      {reason: why(record.reason)}), amount];
      } else if (state === 'stored') {
        view.kind = 'success';
        parts = [fill(gettext('Stored: %(size)s'),
                      {size: humanSize(record.bytes)})];
      } else {
        return null;  // unknown (no record) or bad: nothing to show
      }
      view.text = parts.join(' \u00b7 ');
      return view;
    }

    // A failed upload's reason in words (records.REASONS).
    function why(reason) {
      return REASONS[reason] || reason || gettext('unknown reason');
    }

    // The words of an upload that is moving: percent, bytes, rate, time.
    function moving(record, view, amount) {
      var parts = [];
      if (view.bar) {
        parts.push(view.percent.toFixed(1) + '%');
      }
      if (view.state === 'finalizing') {
        parts.push(gettext('finalizing'));
      }
      parts.push(amount);
      if (known(record.rate_bytes_per_s)) {
        parts.push(humanSize(record.rate_bytes_per_s) + '/s');
      }
      if (view.bar && known(record.eta_s)) {
        parts.push(fill(gettext('%(eta)s left'),
                        {eta: humanDuration(record.eta_s)}));
      }
      if (!view.bar) {
        parts.push(gettext('size not known'));
      }
      return parts;
    }
  }
})();
