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
// own framework and Images module (from the test bed's Horizon venv,
// HORIZON_SITE_PACKAGES), in Debian's Chromium (CHROME_BIN), headless.
// Run by tests/e2e/test_horizon_js.py; Horizon's karma.conf.js is the
// model (the same files, in the same order).
'use strict';

var path = require('path');

module.exports = function (config) {
  var site = process.env.HORIZON_SITE_PACKAGES;
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
