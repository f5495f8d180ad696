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
    'horizon.framework.util.http.service'
  ];

  /**
   * @ngdoc service
   * @name horizon.dashboard.glance-progress.service
   * @description
   * Talks to the plugin's REST views (never to glance or memcached) and
   * turns glance's progress record into what a cell shows.
   */
  function progressService($document, $q, apiService) {
    var UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
    // The image statuses during which glance is writing data.
    var IN_FLIGHT = ['saving', 'uploading', 'importing'];
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

    return {
      supported: supported,
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
     * A promise resolved when glance serves upload progress, rejected
     * when it does not; asked once per page load.
     */
    function supported() {
      if (supportPromise === null) {
        supportPromise = apiService.get('/api/glance-progress/')
          .then(function onAnswer(response) {
            return response.data.supported ? true : $q.reject(false);
          });
      }
      return supportPromise;
    }

    /**
     * The plugin's answer for one image: {supported, available, progress,
     * message}; {hidden: true} for a 404 (an image glance does not show).
     * Never rejects: errors are an "unavailable" answer, not a toast.
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

    /** Is glance writing this image's data (a row that polls)? */
    function inFlight(image) {
      if (!image) {
        return false;
      }
      var stores = image.os_glance_importing_to_stores;
      return IN_FLIGHT.indexOf(String(image.status).toLowerCase()) > -1 ||
        (angular.isString(stores) && stores.length > 0) ||
        (angular.isArray(stores) && stores.length > 0);
    }

    /** Every record of the answer (one per backend in copy-image). */
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

    /** No more changes to expect: stop polling. */
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

    /** Is an upload of the answer still running (or stalled)? */
    function isMoving(answer) {
      if (!answer || !answer.available) {
        return false;
      }
      return rows(answer.progress).some(function running(r) {
        return ACTIVE.indexOf(r.state) > -1 || r.state === 'stalled' ||
          r.stalled === true;
      });
    }

    /** `1.2 GiB`: binary units, as glance-progress prints them. */
    function humanSize(nbytes) {
      if (nbytes === null || angular.isUndefined(nbytes)) {
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

    /** `45s`, `1m05s`, `2h03m`, `3d04h`. */
    function humanDuration(seconds) {
      if (seconds === null || angular.isUndefined(seconds)) {
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

    function fill(text, values) {
      return text.replace(/%\((\w+)\)s/g, function sub(match, name) {
        return values[name];
      });
    }

    /**
     * What a cell shows of one record: {backend, state, kind, bar,
     * percent, text}. `bar` only for a moving upload of known size;
     * never a percent that glance did not give.
     */
    function format(record) {
      var state = record.stalled ? 'stalled' : record.state;
      var hasTotal = record.total !== null && angular.isDefined(record.total) &&
        record.percent !== null && angular.isDefined(record.percent);
      var amount = hasTotal
        ? fill(gettext('%(done)s of %(total)s'), {
          done: humanSize(record.bytes), total: humanSize(record.total)})
        : humanSize(record.bytes);
      var percent = hasTotal ? Math.min(100, Math.max(0, record.percent)) : null;
      var parts = [];
      var view = {backend: record.backend, state: state, percent: percent,
                  bar: false, kind: 'info', text: ''};
      if (state === 'uploading' || state === 'finalizing') {
        view.bar = hasTotal;
        if (hasTotal) {
          parts.push(percent.toFixed(1) + '%');
        }
        if (state === 'finalizing') {
          parts.push(gettext('finalizing'));
        }
        parts.push(amount);
        if (record.rate_bytes_per_s !== null &&
            angular.isDefined(record.rate_bytes_per_s)) {
          parts.push(humanSize(record.rate_bytes_per_s) + '/s');
        }
        if (hasTotal && record.eta_s !== null && angular.isDefined(record.eta_s)) {
          parts.push(fill(gettext('%(eta)s left'),
                          {eta: humanDuration(record.eta_s)}));
        }
        if (!hasTotal) {
          parts.push(gettext('size not known'));
        }
      } else if (state === 'stalled') {
        view.kind = 'warning';
        parts.push(fill(gettext('Stalled: no progress for %(age)s'),
                        {age: humanDuration(record.age_s)}));
        parts.push(amount);
      } else if (state === 'failed') {
        view.kind = 'danger';
        parts.push(fill(gettext('Failed: %(reason)s'), {
          reason: REASONS[record.reason] || record.reason ||
            gettext('unknown reason')}));
        parts.push(amount);
      } else if (state === 'stored') {
        view.kind = 'success';
        parts.push(fill(gettext('Stored: %(size)s'),
                        {size: humanSize(record.bytes)}));
      } else {
        return null;  // unknown (no record) or bad: nothing to show
      }
      view.text = parts.join(' \u00b7 ');
      return view;
    }
  }
})();
