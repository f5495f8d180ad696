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

// Jasmine specs of the Horizon plugin's Angular code, with Horizon 27's
// own framework and Images module (the site-packages of a Horizon venv:
// HORIZON_SITE_PACKAGES, or the test bed's cached one), in Debian's
// Chromium (CHROME_BIN, default /usr/bin/chromium), headless.  `npm test`
// at the repository's root runs it; tests/horizon/test_js.py runs that
// (and makes the Horizon venv) for tools/run-tests.  Horizon's
// karma.conf.js is the model (the same files, in the same order).
/* eslint-env node */
// Karma reads its configuration synchronously, from the environment.
/* eslint no-process-env: 0, no-sync: 0 */

module.exports = function (config) {
  'use strict';

  var fs = require('fs');
  var os = require('os');
  var path = require('path');

  // The test bed's Horizon venv (tools/testbed/horizon.py, cache_dir()).
  function testbedSitePackages() {
    var cache = process.env.GPS_TESTBED_CACHE ||
      path.join(os.homedir(), '.cache', 'glance-progress-testbed');
    var found = [];
    (fs.existsSync(cache) ? fs.readdirSync(cache) : []).forEach(function (venv) {
      var lib = path.join(cache, venv, 'lib');
      if (!/^horizon-[0-9.]+$/.test(venv) || !fs.existsSync(lib)) {
        return;
      }
      fs.readdirSync(lib).forEach(function (python) {
        var site = path.join(lib, python, 'site-packages');
        if (fs.existsSync(path.join(site, 'horizon'))) {
          found.push(site);
        }
      });
    });
    return found.sort().pop();
  }

  var site = process.env.HORIZON_SITE_PACKAGES || testbedSitePackages();
  if (!site) {
    throw new Error('No Horizon to test against: set HORIZON_SITE_PACKAGES ' +
                    'to a Horizon venv\'s site-packages, or run ' +
                    '`.venv/bin/python -m pytest tests/horizon` once ' +
                    '(it installs the test bed\'s Horizon).');
  }
  process.env.CHROME_BIN = process.env.CHROME_BIN || '/usr/bin/chromium';
  var xstatic = path.join(site, 'xstatic/pkg/');
  var horizon = path.join(site, 'horizon/static/');
  var app = path.join(site, 'openstack_dashboard/static/app/');
  var dashboards = path.join(site, 'openstack_dashboard/dashboards/');
  var plugin = path.resolve(__dirname,
    '../../glance_progress_store/dashboard/static/');

  config.set({
    basePath: plugin,
    frameworks: ['jasmine'],
    files: [
      path.join(__dirname, 'test-shim.js'),
      xstatic + 'jquery/data/jquery.js',
      xstatic + 'angular/data/angular.js',
      xstatic + 'angular/data/angular-route.js',
      xstatic + 'angular/data/angular-mocks.js',
      xstatic + 'angular/data/angular-cookies.js',
      xstatic + 'angular_bootstrap/data/angular-bootstrap.js',
      xstatic + 'angular_gettext/data/angular-gettext.js',
      xstatic + 'angular_fileupload/data/ng-file-upload-all.js',
      xstatic + 'angular/data/angular-sanitize.js',
      xstatic + 'angular_smart_table/data/smart-table.js',
      xstatic + 'angular_lrdragndrop/data/lrdragndrop.js',
      xstatic + 'tv4/data/tv4.js',
      xstatic + 'objectpath/data/ObjectPath.js',
      xstatic + 'angular_schema_form/data/schema-form.js',
      horizon + 'horizon/js/horizon.js',
      horizon + 'framework/**/*.module.js',
      horizon + 'framework/**/!(*.spec|*.mock).js',
      app + '**/*.module.js',
      dashboards + '**/static/**/*.module.js',
      app + '**/!(*.spec|*.mock).js',
      dashboards + '**/static/**/!(*.spec|*.mock).js',
      app + '**/*.mock.js',
      'dashboard/**/*.module.js',
      'dashboard/**/!(*.spec).js',
      'dashboard/**/*.spec.js',
      'dashboard/**/*.html'
    ],
    preprocessors: {'dashboard/**/*.html': ['ng-html2js']},
    ngHtml2JsPreprocessor: {
      moduleName: 'templates',
      // as Horizon serves them: STATIC_URL + dashboard/...
      prependPrefix: '/static/'
    },
    plugins: ['karma-jasmine', 'karma-chrome-launcher',
              'karma-ng-html2js-preprocessor'],
    browsers: ['ChromiumHeadlessHere'],
    customLaunchers: {
      ChromiumHeadlessHere: {
        base: 'ChromeHeadless',
        flags: ['--no-sandbox', '--disable-gpu',
                '--disable-background-networking',
                '--disable-component-update', '--no-first-run',
                '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1']
      }
    },
    reporters: ['progress'],
    // Chromium resolves no name here but 127.0.0.1 (see its flags)
    hostname: '127.0.0.1',
    listenAddress: '127.0.0.1',
    singleRun: true,
    autoWatch: false,
    browserNoActivityTimeout: 120000,
    client: {jasmine: {random: false}}
  });
};
