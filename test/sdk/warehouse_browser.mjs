// analytics.js (@segment/analytics-next, its UMD build, unmodified) in headless Chromium sends to the
// segment_webhook worker from a page opened with UTM parameters in its URL, for test/t/040_warehouse_sdk.pl:
// a page() call with properties of its own, then a track. analytics.js puts the UTM parameters in
// context.campaign (utm_campaign as context.campaign.name) and the page's URL in the page call's properties.
//
// As in browser.mjs: the CDN settings are passed to load() (only the Segment.io destination, pointed at the
// worker), Chromium resolves no host name and uses no proxy, and any request to another host is an error.
//
// usage: node warehouse_browser.mjs WORKER_PORT WRITE_KEY PAGE_PORT
// Reports (one JSON line) the page URL, the browser's userAgent, the worker's answers, and acknowledgedAt: the
// wall-clock time (ms since the epoch) when the worker had acknowledged both events. Exits non-zero when a
// delivery failed, the worker answered anything but 200, the SDK reported an error, or a request went anywhere
// but 127.0.0.1.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { deadline, finish, parseArgs } from './common.mjs';

const { workerPort, writeKey, pagePort } = parseArgs('warehouse_browser.mjs', ['workerPort', 'writeKey', 'pagePort']);
deadline(50, 'analytics.js in Chromium');

const CHROMIUM = '/usr/bin/chromium';
const EVENTS = 2;
const pageOrigin = `http://127.0.0.1:${pagePort}`;
const workerOrigin = `http://127.0.0.1:${workerPort}`;
const pageUrl =
    `${pageOrigin}/shop?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale&utm_term=shoes` +
    '&utm_content=banner';

const require = createRequire(import.meta.url);
const packageDirectory = path.dirname(require.resolve('@segment/analytics-next/package.json'));
const bundle = readFileSync(path.join(packageDirectory, 'dist', 'umd', 'index.js'));

const errors = [];
const report = { pageUrl, userAgent: '', deliveries: [], eventsAcknowledged: 0, acknowledgedAt: null };

if (!existsSync(CHROMIUM)) {
    console.error(`${CHROMIUM} is missing: apt-get install chromium`);
    process.exit(2);
}

// --- the page server: the shop page and the analytics-next bundle, nothing else ----------------------------------
const server = http.createServer((request, response) => {
    const { pathname } = new URL(request.url, pageOrigin);
    if (pathname === '/favicon.ico') {
        response.writeHead(204);
        response.end();
    } else if (pathname === '/shop') {
        response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        response.end(`<!doctype html>
<html><head><meta charset="utf-8"><title>Spring Sale</title>
<script src="/analytics-next.js"></script>
</head><body><h1>Spring Sale</h1></body></html>
`);
    } else if (pathname === '/analytics-next.js') {
        response.writeHead(200, { 'Content-Type': 'text/javascript' });
        response.end(bundle);
    } else {
        errors.push(`the page asked the page server for ${request.method} ${request.url}`);
        response.writeHead(404, { 'Content-Type': 'text/plain' });
        response.end('not found');
    }
});
await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(pagePort), '127.0.0.1', resolve);
});

// --- Chromium (a fresh profile under a new TMPDIR, removed afterwards) ----------------------------------------------
const profileRoot = mkdtempSync(path.join(tmpdir(), 'sdk-chromium-'));
process.env.TMPDIR = profileRoot;
const launchOptions = {
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    timeout: 20000,
    args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage',
        '--no-proxy-server',
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
    env: { ...process.env, TMPDIR: profileRoot, HOME: profileRoot },
};
let browser = null;

const cdnSettings = {
    integrations: { 'Segment.io': { apiKey: writeKey, apiHost: `127.0.0.1:${workerPort}/v1`, protocol: 'http' } },
    plan: {},
    middlewareSettings: {},
    enabledMiddleware: {},
    legacyVideoPluginsEnabled: false,
    remotePlugins: [],
    metrics: { sampleRate: 0 },
};

try {
    browser = await chromium.launch(launchOptions);
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.on('request', (request) => {
        const url = new URL(request.url());
        if (url.protocol !== 'data:' && url.protocol !== 'blob:' && url.hostname !== '127.0.0.1') {
            errors.push(`a request left the machine: ${request.method()} ${request.url()}`);
        }
    });
    page.on('requestfailed', (request) => {
        errors.push(`${request.method()} ${request.url()} failed: ${request.failure()?.errorText}`);
    });
    page.on('response', (response) => {
        const request = response.request();
        if (!request.url().startsWith(workerOrigin)) {
            return;
        }
        const delivery = { method: request.method(), path: new URL(request.url()).pathname, status: response.status() };
        report.deliveries.push(delivery);
        if (delivery.status === 200) {
            report.eventsAcknowledged += 1;
            report.acknowledgedAt = Date.now();
        } else {
            errors.push(`the worker answered ${delivery.status} to ${delivery.method} ${delivery.path}`);
        }
    });
    page.on('console', (message) => {
        if (message.type() === 'error') {
            errors.push(`console error: ${message.text()}`);
        }
    });
    page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));

    await page.goto(pageUrl, { waitUntil: 'load' });
    report.userAgent = await page.evaluate(() => navigator.userAgent);
    const sdkErrors = await page.evaluate(
        async ({ key, settings }) => {
            const problems = [];
            const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load(
                { writeKey: key, cdnURL: window.location.origin, cdnSettings: settings },
                {});
            analytics.on('error', (error) => problems.push(`analytics.js error: ${error.code} ${error.reason}`));
            const calls = [
                () => analytics.page('Shop', 'Spring Sale', { section: 'shoes', items_shown: 12 }),
                () => analytics.track('Product Viewed', { sku: 'SKU-9', price: 19.99 }),
            ];
            for (const call of calls) {
                const context = await call();
                const failure = context.failedDelivery();
                if (failure) {
                    problems.push(`${context.event.type}: delivery failed: ${failure.reason}`);
                }
            }
            return problems;
        },
        { key: writeKey, settings: cdnSettings });
    errors.push(...sdkErrors);

    const waitUntil = Date.now() + 15000;
    while (report.deliveries.length < EVENTS && Date.now() < waitUntil) {
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (report.eventsAcknowledged !== EVENTS) {
        errors.push(`the worker acknowledged ${report.eventsAcknowledged} of ${EVENTS} events`);
    }
    await context.close();
} catch (error) {
    errors.push(`the browser run failed: ${error.stack ?? error}`);
} finally {
    await browser?.close().catch(() => {});
    server.close();
    rmSync(profileRoot, { recursive: true, force: true });
}

finish(report, errors);
