// The admin listener's event debugger page in headless Chromium (test/t/045_admin.pl): opens the page with
// ?token= (which sets the session cookie and leaves the address bar), sends events and a body that is not JSON
// to the ingest port, and sees them appear in the page without a reload; clicks an event and reads its JSON;
// checks that markup inside an event stays text; then does the same at a phone-sized viewport. Saves a
// screenshot of each into OUTPUT_DIR.
//
// Nothing may leave the machine: Chromium resolves no host name except 127.0.0.1, and every request the page
// makes is checked to go to the admin listener.
//
// usage: node admin_page.mjs ADMIN_PORT TOKEN INGEST_PORT WRITE_KEY OUTPUT_DIR
// Exits non-zero when a check failed (each is printed on stderr); prints a JSON report on stdout.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { deadline, finish, parseArgs } from './common.mjs';

const { adminPort, token, ingestPort, writeKey, outputDir } = parseArgs('admin_page.mjs', [
    'adminPort',
    'token',
    'ingestPort',
    'writeKey',
    'outputDir',
]);
deadline(80, 'the admin page in Chromium');

const CHROMIUM = '/usr/bin/chromium';
const adminOrigin = `http://127.0.0.1:${adminPort}`;
const errors = [];
const report = { screenshots: [], checks: [] };

function check(condition, what) {
    report.checks.push(`${condition ? 'ok' : 'FAILED'}: ${what}`);
    if (!condition) errors.push(what);
}

async function send(body) {
    const response = await fetch(`http://127.0.0.1:${ingestPort}/v1/batch?writeKey=${encodeURIComponent(writeKey)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body,
    });
    return response.status;
}

function track(messageId, event, properties) {
    return { type: 'track', event, userId: 'admin-page-user', messageId, properties, timestamp: new Date().toISOString() };
}

const profileRoot = mkdtempSync(path.join(tmpdir(), 'admin-chromium-'));
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

// Opens the page in a new context (its own cookies) and watches what it does.
async function openPage(browser, name, contextOptions) {
    const context = await browser.newContext(contextOptions);
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const seen = { navigations: 0 };
    page.on('request', (request) => {
        const url = new URL(request.url());
        if (url.protocol !== 'data:' && url.origin !== adminOrigin) {
            errors.push(`${name}: a request went elsewhere than the admin listener: ${request.method()} ${request.url()}`);
        }
    });
    page.on('framenavigated', (frame) => {
        if (frame === page.mainFrame()) seen.navigations += 1;
    });
    page.on('console', (message) => {
        if (message.type() === 'error') errors.push(`${name}: console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => errors.push(`${name}: page error: ${error.message}`));
    page.on('dialog', (dialog) => {
        errors.push(`${name}: a dialog opened (markup of an event ran?): ${dialog.message()}`);
        dialog.dismiss().catch(() => {});
    });
    await page.goto(`${adminOrigin}/?token=${encodeURIComponent(token)}`, { waitUntil: 'load' });
    await page.waitForSelector('#status.live');
    const cookies = await context.cookies();
    const session = cookies.find((cookie) => cookie.name === 'segment_webhook_admin');
    check(session && session.httpOnly && session.sameSite === 'Strict', `${name}: the session cookie is HttpOnly and SameSite=Strict`);
    check(!page.url().includes('token='), `${name}: the token left the address bar (${page.url()})`);
    return { context, page, seen };
}

async function screenshot(page, file) {
    const target = path.join(outputDir, file);
    await page.screenshot({ path: target, fullPage: true });
    report.screenshots.push(target);
}

let browser = null;
try {
    browser = await chromium.launch(launchOptions);
    const run = Date.now();

    // --- Desktop ---------------------------------------------------------------------------------------------
    const desktop = await openPage(browser, 'desktop', { viewport: { width: 1280, height: 900 } });
    const { page } = desktop;
    await page.evaluate(() => {
        window.loadedOnce = 'still the same document';
    });
    const navigationsBefore = desktop.seen.navigations;

    const markup = '<img src=x onerror=alert(1)>';
    const events = [
        track(`admin-page-${run}-1`, 'Admin Page Opened', { plan: 'pro' }),
        track(`admin-page-${run}-2`, 'Admin Button Clicked', { button: 'buy', price: 4.5 }),
        track(`admin-page-${run}-3`, markup, { note: markup }),
    ];
    check((await send(JSON.stringify({ batch: events }))) === 200, 'three events sent: 200');
    check((await send('{"batch": [ not json')) === 400, 'a body that is not JSON: 400');

    await page.waitForSelector('.event-row:has-text("Admin Button Clicked")');
    await page.waitForSelector('.event-row:has-text("Admin Page Opened")');
    await page.waitForSelector(`.event-row:has-text("${markup}")`);
    check(true, 'the three events appeared in the list');
    await page.waitForSelector('.rejected-row:has-text("invalid_json")');
    check(true, 'the dead letter appeared with its reason invalid_json');
    check(
        (await page.evaluate(() => window.loadedOnce)) === 'still the same document' &&
            desktop.seen.navigations === navigationsBefore,
        'they appeared without a reload',
    );
    check((await page.locator('#events img, #rejected img, #event-detail img').count()) === 0, 'markup in an event stays text');

    const row = page.locator('.event-row', { hasText: 'Admin Button Clicked' });
    await row.click();
    await page.waitForSelector('#event-detail:has-text("messageId")');
    const detail = JSON.parse(await page.locator('#event-detail').textContent());
    check(detail.messageId === `admin-page-${run}-2`, `clicking the event shows its JSON (messageId ${detail.messageId})`);
    check(detail.properties && detail.properties.button === 'buy' && detail.properties.price === 4.5, 'with its properties');
    const sourceCells = await page.locator('#sources tbody tr', { hasText: 'admin_page' }).locator('td').allTextContents();
    report.sourceRow = sourceCells;
    check(Number(sourceCells[2]) >= 3, `the source's stored counter counts the events (${sourceCells.join(' | ')})`);
    check(Number(sourceCells[4]) >= 1, 'and its dead-letter counter the dead letter');
    await page.locator('.rejected-row', { hasText: 'invalid_json' }).first().click();
    await page.waitForSelector('#event-detail:has-text("not json")');
    check(true, "clicking the dead letter shows the body it received");
    await row.click();
    await screenshot(page, 'admin_page_desktop.png');
    await desktop.context.close();

    // --- A phone ---------------------------------------------------------------------------------------------
    const phone = await openPage(browser, 'phone', {
        viewport: { width: 390, height: 844 },
        deviceScaleFactor: 2,
        isMobile: true,
        hasTouch: true,
    });
    await phone.page.waitForSelector('.event-row:has-text("Admin Button Clicked")');
    check(await phone.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1),
        'phone: the page fits the screen width (no sideways scrolling)');
    check((await send(JSON.stringify([track(`admin-page-${run}-phone`, 'Phone Event Arrived', {})]))) === 200,
        'phone: one more event sent');
    await phone.page.waitForSelector('.event-row:has-text("Phone Event Arrived")');
    await phone.page.locator('.event-row', { hasText: 'Phone Event Arrived' }).tap();
    await phone.page.waitForSelector(`#event-detail:has-text("admin-page-${run}-phone")`);
    check(true, 'phone: the new event appeared and tapping it shows its JSON');
    await screenshot(phone.page, 'admin_page_phone.png');
    await phone.context.close();
} catch (error) {
    errors.push(`the browser run failed: ${error.stack ?? error}`);
} finally {
    await browser?.close().catch(() => {});
    rmSync(profileRoot, { recursive: true, force: true });
}

finish(report, errors);
