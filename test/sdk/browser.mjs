// Sends through analytics.js (@segment/analytics-next, its browser build from node_modules) in headless Chromium
// to the segment_webhook worker, unmodified except for its settings: the Segment.io destination's apiHost points
// at the worker, and the CDN settings are given to load() so that nothing is fetched from Segment's CDN.
//
// A small local server (node's http module) serves a page and the analytics-next build on one origin,
// http://127.0.0.1:PAGE_PORT; the worker is another origin (another port), so every delivery is a cross-origin
// fetch and goes through the worker's CORS answers. Two pages, each in a fresh browser context:
//   /standard  the default dispatcher: one text/plain POST per event to /v1/p, /v1/a, /v1/i, /v1/t, /v1/g
//   /batching  deliveryStrategy "batching": {writeKey, batch, sentAt} POSTs to /v1/b
// analytics.js sends the write key as an Authorization: Basic header too, so the browser preflights each POST
// (OPTIONS) and the worker's preflight answers are exercised as well.
// each doing page, alias, identify, track and group (the standard page with WRITE_KEY, the batching page with
// BATCHING_WRITE_KEY).
//
// Nothing may leave the machine: Chromium resolves no host name (--host-resolver-rules), runs with no
// proxy and no background networking, and every request the pages make is checked to go to 127.0.0.1. Requests
// are only observed, never intercepted: Playwright answers CORS preflights itself while it intercepts, which
// would hide the worker's own answers.
//
// usage: node browser.mjs WORKER_PORT WRITE_KEY BATCHING_WRITE_KEY PAGE_PORT
// Exits non-zero when a delivery failed, the worker answered anything but 200, the SDK reported an error, or a
// request went anywhere but 127.0.0.1.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { deadline, finish, parseArgs } from './common.mjs';

const { workerPort, writeKey, batchingWriteKey, pagePort } = parseArgs('browser.mjs', [
    'workerPort',
    'writeKey',
    'batchingWriteKey',
    'pagePort',
]);
deadline(50, 'analytics.js in Chromium');

const CHROMIUM = '/usr/bin/chromium';
const EVENTS_PER_PAGE = 5;
const pageOrigin = `http://127.0.0.1:${pagePort}`;
const workerOrigin = `http://127.0.0.1:${workerPort}`;

// The browser build: the UMD bundle (it defines window.AnalyticsNext), as the package ships it.
const require = createRequire(import.meta.url);
const packageDirectory = path.dirname(require.resolve('@segment/analytics-next/package.json'));
const bundle = readFileSync(path.join(packageDirectory, 'dist', 'umd', 'index.js'));

const errors = [];
const report = { userAgent: '', pages: {} };

if (!existsSync(CHROMIUM)) {
    console.error(`${CHROMIUM} is missing: apt-get install chromium`);
    process.exit(2);
}

// --- the page server: the test page and the analytics-next bundle, nothing else ----------------------------------
const pageHtml = (title) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title>
<script src="/analytics-next.js"></script>
</head><body><h1>${title}</h1></body></html>
`;
const server = http.createServer((request, response) => {
    const { pathname } = new URL(request.url, pageOrigin);
    if (pathname === '/favicon.ico') {
        response.writeHead(204);
        response.end();
    } else if (pathname === '/standard' || pathname === '/batching') {
        response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        response.end(pageHtml(`SDK test ${pathname.slice(1)}`));
    } else if (pathname === '/analytics-next.js') {
        response.writeHead(200, { 'Content-Type': 'text/javascript' });
        response.end(bundle);
    } else {
        // A page resource the test did not plan for (a lazily loaded chunk, a settings request): noted, not served.
        errors.push(`the page asked the page server for ${request.method} ${request.url}`);
        response.writeHead(404, { 'Content-Type': 'text/plain' });
        response.end('not found');
    }
});
await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(pagePort), '127.0.0.1', resolve);
});

// --- Chromium ---------------------------------------------------------------------------------------------------
// Playwright makes its own fresh --user-data-dir (under TMPDIR) for launch(); point TMPDIR at a new directory
// so nothing is shared with another run, and remove it afterwards.
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
        // Every host, IP literals included, fails to resolve except 127.0.0.1.
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
    env: { ...process.env, TMPDIR: profileRoot, HOME: profileRoot },
};
let browser = null;

// The CDN settings analytics.js would otherwise download: only the Segment.io destination, pointed at the worker.
function cdnSettings(key, strategy) {
    const segmentio = { apiKey: key, apiHost: `127.0.0.1:${workerPort}/v1`, protocol: 'http' };
    if (strategy === 'batching') {
        segmentio.deliveryStrategy = { strategy: 'batching', config: { size: 3, timeout: 300 } };
    }
    return {
        integrations: { 'Segment.io': segmentio },
        plan: {},
        middlewareSettings: {},
        enabledMiddleware: {},
        legacyVideoPluginsEnabled: false,
        remotePlugins: [],
        metrics: { sampleRate: 0 },
    };
}

// Loads /PAGE in a fresh context, makes the five calls, and waits until the worker has acknowledged them all.
async function runPage(name, key) {
    const seen = { deliveries: [], preflights: [], eventsAnswered: 0, eventsAcknowledged: 0 };
    report.pages[name] = seen;
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(15000);

    page.on('request', (request) => {
        const url = new URL(request.url());
        if (url.protocol !== 'data:' && url.protocol !== 'blob:' && url.hostname !== '127.0.0.1') {
            errors.push(`${name}: a request left the machine: ${request.method()} ${request.url()}`);
        }
    });
    page.on('requestfailed', (request) => {
        errors.push(`${name}: ${request.method()} ${request.url()} failed: ${request.failure()?.errorText}`);
    });
    const sentAt = new Map();
    page.on('request', (request) => sentAt.set(request, Date.now()));
    page.on('response', (response) => {
        const request = response.request();
        if (!request.url().startsWith(workerOrigin)) {
            return;
        }
        const delivery = {
            method: request.method(),
            path: new URL(request.url()).pathname,
            status: response.status(),
            milliseconds: Date.now() - (sentAt.get(request) ?? Date.now()),
        };
        seen.deliveries.push(delivery);
        let body = null;
        try {
            body = request.postDataJSON();
        } catch (error) {
            errors.push(`${name}: ${delivery.path} carried no JSON body: ${error.message}`);
        }
        const events = Array.isArray(body?.batch) ? body.batch.length : 1;
        seen.eventsAnswered += events;
        if (delivery.status === 200) {
            seen.eventsAcknowledged += events;
        } else {
            errors.push(`${name}: the worker answered ${delivery.status} to ${delivery.method} ${delivery.path}`);
        }
    });
    page.on('console', (message) => {
        if (message.type() === 'error') {
            errors.push(`${name}: console error: ${message.text()}`);
        }
    });
    page.on('pageerror', (error) => errors.push(`${name}: page error: ${error.message}`));

    // CORS preflights are not page requests: the DevTools protocol shows them (for the report only).
    const devtools = await context.newCDPSession(page);
    await devtools.send('Network.enable');
    const preflightIds = new Map();
    devtools.on('Network.requestWillBeSent', (event) => {
        if (event.request.method === 'OPTIONS' && event.request.url.startsWith(workerOrigin)) {
            preflightIds.set(event.requestId, { path: new URL(event.request.url).pathname, start: event.timestamp });
        }
    });
    devtools.on('Network.responseReceived', (event) => {
        const preflight = preflightIds.get(event.requestId);
        if (preflight) {
            preflightIds.delete(event.requestId);
            seen.preflights.push({
                path: preflight.path,
                status: event.response.status,
                milliseconds: Math.round((event.timestamp - preflight.start) * 1000),
            });
        }
    });

    await page.goto(`${pageOrigin}/${name}`, { waitUntil: 'load' });
    report.userAgent = await page.evaluate(() => navigator.userAgent);

    const sdkErrors = await page.evaluate(
        async ({ key, settings }) => {
            const problems = [];
            const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load(
                { writeKey: key, cdnURL: window.location.origin, cdnSettings: settings },
                {});
            analytics.on('error', (error) => problems.push(`analytics.js error: ${error.code} ${error.reason}`));
            // alias before identify: once a user is identified, analytics.js sends that user's id as the
            // alias's userId whatever the call says.
            const calls = [
                () => analytics.page('Docs', 'Browser Page', { section: 'sdk' }),
                () => analytics.alias('browser-user', 'browser-visitor'),
                () => analytics.identify('browser-user', { email: 'browser@example.com', plan: 'free' }),
                () => analytics.track('Browser Button Clicked', { button: 'buy', price: 4.5 }),
                () => analytics.group('browser-group', { name: 'Browser Group' }),
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
        { key, settings: cdnSettings(key, name) });
    errors.push(...sdkErrors.map((error) => `${name}: ${error}`));

    // Every event answered by the worker, or give up (bounded).
    const waitUntil = Date.now() + 15000;
    while (seen.eventsAnswered < EVENTS_PER_PAGE && Date.now() < waitUntil) {
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (seen.eventsAcknowledged !== EVENTS_PER_PAGE) {
        errors.push(`${name}: the worker acknowledged ${seen.eventsAcknowledged} of ${EVENTS_PER_PAGE} events`);
    }
    await context.close();
}

try {
    browser = await chromium.launch(launchOptions);
    await runPage('standard', writeKey);
    await runPage('batching', batchingWriteKey);
} catch (error) {
    errors.push(`the browser run failed: ${error.stack ?? error}`);
} finally {
    await browser?.close().catch(() => {});
    server.close();
    rmSync(profileRoot, { recursive: true, force: true });
}

finish(report, errors);
