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

  var MiB = 1024 * 1024;

  function record(fields) {
    return angular.extend({
      image_id: 'i1', backend: null, state: 'uploading', bytes: 16 * MiB,
      total: 64 * MiB, percent: 25.0, rate_bytes_per_s: 4 * MiB, eta_s: 12,
      age_s: 0.5, started_at: 1, updated_at: 2, reason: null, error: null,
      image_status: 'saving', stalled: false
    }, fields);
  }

  function answer(fields) {
    return {supported: true, available: true, progress: record(fields)};
  }

  describe('horizon.dashboard.glance-progress', function() {
    var $httpBackend, $timeout, $compile, $rootScope, registry, service;
    var URL = '/api/glance-progress/images/i1/progress/';
    var SETTINGS = '/api/settings/';
    var PROBE = '/api/glance-progress/';

    beforeEach(module('templates'));
    beforeEach(module('horizon.framework'));
    beforeEach(module('horizon.app.core'));
    beforeEach(module('horizon.dashboard.glance-progress'));
    beforeEach(inject(function($injector) {
      $httpBackend = $injector.get('$httpBackend');
      $timeout = $injector.get('$timeout');
      $compile = $injector.get('$compile');
      $rootScope = $injector.get('$rootScope');
      registry = $injector.get('horizon.framework.conf.resource-type-registry.service');
      service = $injector.get('horizon.dashboard.glance-progress.service');
    }));
    afterEach(function() {
      $httpBackend.verifyNoOutstandingExpectation();
      $httpBackend.verifyNoOutstandingRequest();
    });

    // Horizon's settings: HORIZON_CONFIG['ajax_poll_interval'] is its
    // AJAX_POLL_INTERVAL.
    function pollEvery(ms) {
      $httpBackend.whenGET(SETTINGS).respond({AJAX_POLL_INTERVAL: ms});
    }

    // How many GETs of `url` the page sent, answered by `reply(n)`.
    function counted(url, reply) {
      var count = {n: 0};
      $httpBackend.whenGET(url).respond(function() {
        count.n += 1;
        return [200, reply(count.n)];
      });
      return count;
    }

    describe('registration', function() {
      var column;

      beforeEach(function() {
        column = registry.getResourceType('OS::Glance::Image')
          .getTableColumns().filter(function(c) {
            return c.id === 'glanceProgress';
          })[0];
      });

      function allowed() {
        var verdict = {value: null};
        column.allowed().then(function() { verdict.value = true; },
                              function() { verdict.value = false; });
        return verdict;
      }

      it('puts a Progress column right after Status', function() {
        var ids = registry.getResourceType('OS::Glance::Image')
          .getTableColumns().map(function(c) { return c.id; });
        expect(ids[ids.indexOf('status') + 1]).toBe('glanceProgress');
      });

      it('shows the column only when glance has the filter', function() {
        $httpBackend.expectGET(PROBE).respond({supported: false});
        var verdict = allowed();
        $httpBackend.flush();
        expect(verdict.value).toBe(false);
      });

      it('asks glance once per page', function() {
        $httpBackend.expectGET(PROBE).respond({supported: true});
        var yes = 0;
        service.supported().then(function() { yes += 1; });
        service.supported().then(function() { yes += 1; });
        $httpBackend.flush();
        expect(yes).toBe(2);
      });

      it('asks again after a failed probe, and then shows the column', function() {
        pollEvery(2000);
        $httpBackend.expectGET(PROBE).respond(500, 'busy');
        var verdict = allowed();
        $httpBackend.flush();
        expect(verdict.value).toBe(null);  // no verdict: not "no progress"
        $timeout.flush(3999);  // the first retry after twice the interval
        $httpBackend.verifyNoOutstandingRequest();
        $httpBackend.expectGET(PROBE).respond(
          {supported: false, error: 'The image service did not answer.'});
        $timeout.flush(1);
        $httpBackend.flush();
        expect(verdict.value).toBe(null);
        $timeout.flush(7999);  // then twice that
        $httpBackend.verifyNoOutstandingRequest();
        $httpBackend.expectGET(PROBE).respond({supported: true});
        $timeout.flush(1);
        $httpBackend.flush();
        expect(verdict.value).toBe(true);
        $timeout.flush(60000);  // and no more questions
      });

      it('takes only a plain "no filter" as a verdict', function() {
        pollEvery(2000);
        $httpBackend.expectGET(PROBE).respond(504, 'gateway timeout');
        var verdict = allowed();
        $httpBackend.flush();
        $httpBackend.expectGET(PROBE).respond({supported: false});
        $timeout.flush(4000);
        $httpBackend.flush();
        expect(verdict.value).toBe(false);
        $timeout.flush(60000);
      });
    });

    describe('intervals', function() {
      it('follows Horizon\'s ajax_poll_interval', function() {
        pollEvery(5000);
        var ms = null;
        service.pollInterval().then(function(value) { ms = value; });
        $httpBackend.flush();
        expect(ms).toBe(5000);
      });

      it('uses Horizon\'s default without the setting', function() {
        $httpBackend.whenGET(SETTINGS).respond({});
        var ms = null;
        service.pollInterval().then(function(value) { ms = value; });
        $httpBackend.flush();
        expect(ms).toBe(2500);
      });

      it('backs off by doubling, up to 30 s', function() {
        expect([0, 1, 2, 3, 4, 9].map(function(n) {
          return service.backoff(2000, n);
        })).toEqual([2000, 4000, 8000, 16000, 30000, 30000]);
        expect(service.backoff(60000, 3)).toBe(60000);  // never below it
      });
    });

    describe('formatting', function() {
      it('says percent, bytes of total, rate and time left', function() {
        var view = service.format(record({}));
        expect(view.bar).toBe(true);
        expect(view.percent).toBe(25);
        expect(view.text).toBe(
          '25.0% \u00b7 16.0 MiB of 64.0 MiB \u00b7 4.0 MiB/s \u00b7 12s left');
      });

      it('never makes up a percent for an unknown total', function() {
        var view = service.format(record({total: null, percent: null,
                                          eta_s: null, bytes: 3 * 1024 * MiB}));
        expect(view.bar).toBe(false);
        expect(view.percent).toBe(null);
        expect(view.text).not.toContain('%');
        expect(view.text).toBe('3.0 GiB \u00b7 4.0 MiB/s \u00b7 size not known');
      });

      it('says stalled in words', function() {
        var view = service.format(record({state: 'stalled', stalled: true,
                                          age_s: 65}));
        expect(view.bar).toBe(false);
        expect(view.kind).toBe('warning');
        expect(view.text).toBe(
          'Stalled: no progress for 1m05s \u00b7 16.0 MiB of 64.0 MiB');
      });

      it('says failed with its reason', function() {
        var view = service.format(record({state: 'failed',
                                          reason: 'source_error'}));
        expect(view.bar).toBe(false);
        expect(view.kind).toBe('danger');
        expect(view.text).toContain('Failed: the data stream broke');
      });

      it('shows nothing for no record', function() {
        expect(service.format(record({state: 'unknown', bytes: null}))).toBe(null);
      });

      it('sizes and durations as glance-progress prints them', function() {
        expect(service.humanSize(1023)).toBe('1023 B');
        expect(service.humanSize(1536)).toBe('1.5 KiB');
        expect(service.humanSize(null)).toBe('?');
        expect(service.humanDuration(45)).toBe('45s');
        expect(service.humanDuration(7380)).toBe('2h03m');
        expect(service.humanDuration(3 * 86400 + 4 * 3600)).toBe('3d04h');
      });

      it('has a row per backend in copy-image', function() {
        var body = record({});
        body.backends = {
          ceph2: record({backend: 'ceph2', percent: 50.0, bytes: 32 * MiB}),
          ceph1: record({backend: 'ceph1', state: 'stored', percent: 100.0,
                         bytes: 64 * MiB})
        };
        var rows = service.rows(body).map(service.format);
        expect(rows.map(function(r) { return r.backend; }))
          .toEqual(['ceph1', 'ceph2']);
        expect(rows[0].text).toBe('Stored: 64.0 MiB');
        expect(rows[1].percent).toBe(50);
      });
    });

    describe('the cell', function() {
      var hidden;

      beforeEach(function() {
        hidden = false;
        spyOn(service, 'isHidden').and.callFake(function() { return hidden; });
      });

      function cell(image, details) {
        var scope = $rootScope.$new();
        scope.item = image;
        var element = $compile('<glance-progress-cell item="item" details="' +
                               (details ? 'true' : 'false') +
                               '"></glance-progress-cell>')(scope);
        scope.$digest();
        return {element: element, scope: scope};
      }

      // no request until `ms` has passed, then one, answered with `body`
      function nextLookAfter(ms, body) {
        $timeout.flush(ms - 1);
        $httpBackend.verifyNoOutstandingRequest();
        $httpBackend.expectGET(URL).respond(body);
        $timeout.flush(1);
        $httpBackend.flush();
      }

      it('polls a saving image every interval until the record is final', function() {
        pollEvery(2000);
        $httpBackend.expectGET(URL).respond(answer({percent: 25.0}));
        var c = cell({id: 'i1', status: 'saving'});
        $httpBackend.flush();
        var bar = c.element.find('[role=progressbar]');
        expect(bar.attr('aria-valuenow')).toBe('25.0');
        expect(bar.attr('aria-valuemin')).toBe('0');
        expect(bar.attr('aria-valuemax')).toBe('100');
        nextLookAfter(2000, answer({percent: 75.0}));
        expect(c.element.find('[role=progressbar]').attr('aria-valuenow'))
          .toBe('75.0');
        nextLookAfter(2000, answer({state: 'stored', percent: 100.0}));
        expect(c.element.find('[role=progressbar]').length).toBe(0);
        expect(c.element.text()).toContain('Stored');
        $timeout.flush(60000);  // no more requests (afterEach)
      });

      it('polls every ajax_poll_interval', function() {
        pollEvery(7000);
        $httpBackend.expectGET(URL).respond(answer({}));
        var c = cell({id: 'i1', status: 'saving'});
        $httpBackend.flush();
        nextLookAfter(7000, answer({}));
        nextLookAfter(7000, answer({}));
        c.scope.$destroy();
      });

      it('backs off while progress is unavailable, up to 30 s', function() {
        var unavailable = {supported: true, available: false,
                           message: 'memcached down'};
        pollEvery(2000);
        $httpBackend.expectGET(URL).respond(unavailable);
        var c = cell({id: 'i1', status: 'saving'});
        $httpBackend.flush();
        expect(c.element.text()).toContain('progress unavailable');
        [4000, 8000, 16000, 30000, 30000].forEach(function(ms) {
          nextLookAfter(ms, unavailable);
        });
        // a failed request counts as unavailable too
        $timeout.flush(29999);
        $httpBackend.verifyNoOutstandingRequest();
        $httpBackend.expectGET(URL).respond(502, 'bad gateway');
        $timeout.flush(1);
        $httpBackend.flush();
        expect(c.element.text()).toContain('progress unavailable');
        // back: the interval again
        nextLookAfter(30000, answer({}));
        expect(c.element.find('[role=progressbar]').length).toBe(1);
        nextLookAfter(2000, answer({}));
        c.scope.$destroy();
      });

      it('does not digest the page for a tick while the tab is hidden', function() {
        pollEvery(2000);
        $httpBackend.expectGET(URL).respond(answer({}));
        var c = cell({id: 'i1', status: 'saving'});
        $httpBackend.flush();
        hidden = true;
        spyOn($rootScope, '$digest').and.callThrough();
        $timeout.flush(2000);
        expect($rootScope.$digest).not.toHaveBeenCalled();
        c.scope.$destroy();
      });

      it('has one request in flight at a time', function() {
        pollEvery(2000);
        var count = counted(URL, function() { return answer({}); });
        var c = cell({id: 'i1', status: 'saving'});
        $timeout.flush(10000);  // the answer has not come: no second request
        expect(count.n).toBe(0);
        $httpBackend.flush();
        expect(count.n).toBe(1);
        c.scope.$destroy();
      });

      it('does not poll while the tab is hidden', function() {
        pollEvery(2000);
        hidden = true;
        var count = counted(URL, function() { return answer({}); });
        var c = cell({id: 'i1', status: 'saving'});
        $timeout.flush(10000);
        $httpBackend.verifyNoOutstandingRequest();
        hidden = false;
        document.dispatchEvent(new Event('visibilitychange'));
        $rootScope.$digest();
        $httpBackend.flush();
        expect(count.n).toBe(1);
        c.scope.$destroy();
        $timeout.flush(10000);
        expect(count.n).toBe(1);
      });

      it('stops polling when the row goes away', function() {
        pollEvery(2000);
        var count = counted(URL, function() { return answer({}); });
        var c = cell({id: 'i1', status: 'saving'});
        $httpBackend.flush();
        c.scope.$destroy();
        $timeout.flush(10000);
        expect(count.n).toBe(1);
      });

      it('asks nothing for an active image', function() {
        var c = cell({id: 'i1', status: 'active'});
        $timeout.flush(10000);
        expect(c.element.text().trim()).toBe('');
      });

      it('shows a failed upload of a queued image, once', function() {
        $httpBackend.expectGET(URL).respond(answer({state: 'failed',
                                                    reason: 'source_error',
                                                    image_status: 'queued'}));
        var c = cell({id: 'i1', status: 'queued'});
        $httpBackend.flush();
        expect(c.element.text()).toContain('Failed');
        $timeout.flush(60000);  // no more requests (afterEach)
      });

      it('shows nothing and stops for a queued image without a record', function() {
        $httpBackend.expectGET(URL).respond(answer({state: 'unknown', bytes: null,
                                                    total: null, percent: null}));
        var c = cell({id: 'i1', status: 'queued'});
        $httpBackend.flush();
        expect(c.element.text().trim()).toBe('');
        $timeout.flush(60000);
      });

      it('says "progress unavailable" on a 503 and keeps trying', function() {
        pollEvery(2000);
        $httpBackend.expectGET(URL).respond(
          {supported: true, available: false, message: 'memcached down'});
        var c = cell({id: 'i1', status: 'saving'});
        $httpBackend.flush();
        expect(c.element.text()).toContain('progress unavailable');
        expect(c.element.find('[role=progressbar]').length).toBe(0);
        nextLookAfter(4000, answer({}));
        expect(c.element.find('[role=progressbar]').length).toBe(1);
        c.scope.$destroy();
      });

      it('shows nothing for an image glance hides, and stops', function() {
        $httpBackend.expectGET(URL).respond(404, 'not found');
        var c = cell({id: 'i1', status: 'saving'});
        $httpBackend.flush();
        expect(c.element.text().trim()).toBe('');
        $timeout.flush(60000);
      });

      it('stops for a glance without the filter', function() {
        $httpBackend.expectGET(URL).respond({supported: false});
        var c = cell({id: 'i1', status: 'saving'});
        $httpBackend.flush();
        expect(c.element.text().trim()).toBe('');
        $timeout.flush(60000);
      });

      it('polls an active image that is being copied to other stores', function() {
        pollEvery(2000);
        $httpBackend.expectGET(URL).respond(answer({}));
        var c = cell({id: 'i1', status: 'active',
                      os_glance_importing_to_stores: 'ceph2'});
        $httpBackend.flush();
        nextLookAfter(2000, answer({}));
        c.scope.$destroy();
      });

      it('keeps 20 rows in flight within 10 requests a second', function() {
        var cells = [];
        var i;
        pollEvery(2000);
        var count = counted(/\/api\/glance-progress\/images\/.*/,
                            function() { return answer({}); });
        for (i = 0; i < 20; i++) {
          cells.push(cell({id: 'img' + i, status: 'saving'}));
        }
        $httpBackend.flush();
        for (i = 0; i < 10; i++) {  // 20 s
          $timeout.flush(2000);
          $httpBackend.flush();
        }
        expect(count.n).toBe(20 * 11);  // 220 in 20 s + the first look: < 10/s
        cells.forEach(function(c) { c.scope.$destroy(); });
      });

      it('shows the record of an active image in its details', function() {
        $httpBackend.expectGET(URL).respond(answer({state: 'stored',
                                                    percent: 100.0,
                                                    bytes: 64 * MiB}));
        var c = cell({id: 'i1', status: 'active'}, true);
        $httpBackend.flush();
        expect(c.element.text()).toContain('Stored: 64.0 MiB');
      });

      it('says so in the details when there is no record', function() {
        $httpBackend.expectGET(URL).respond(answer({state: 'unknown', bytes: null}));
        var c = cell({id: 'i1', status: 'active'}, true);
        $httpBackend.flush();
        expect(c.element.text()).toContain('No upload record');
      });
    });
  });
})();
