// Sends through @segment/analytics-node (Segment's Node SDK, unmodified except for its `host`) the calls whose
// properties and traits test/t/040_warehouse_sdk.pl expects to find as columns of the warehouse views.
//   first: the six call types: track "Order Completed" (numbers, a string, an array, a nested object, a boolean,
//          an ISO-8601 date), identify (nested traits), group, page, screen, alias
//   later: a new event ("Coupon Applied"), a second "Order Completed" with one new property, a second identify
//          of the same user with a changed and a new trait
// usage: node warehouse_node.mjs WORKER_PORT WRITE_KEY first|later
// Reports (one JSON line) the messageId of every call and acknowledgedAt: the wall-clock time (ms since the
// epoch) of the worker's last answer, i.e. when the SDK's flush was acknowledged. Exits non-zero when the SDK
// reports a failed delivery or the worker answers anything but 200.
import { Analytics } from '@segment/analytics-node';

import { deadline, finish, parseArgs } from './common.mjs';

const { port, writeKey, phase } = parseArgs('warehouse_node.mjs', ['port', 'writeKey', 'phase']);
if (phase !== 'first' && phase !== 'later') {
    console.error(`warehouse_node.mjs: unknown phase ${phase} (first or later)`);
    process.exit(2);
}
deadline(40, `analytics-node (${phase})`);

const errors = [];
const report = { phase, requests: 0, statuses: {}, messageIds: {}, acknowledgedAt: null };

const analytics = new Analytics({ writeKey, host: `http://127.0.0.1:${port}` });
analytics.on('error', (error) => errors.push(`${error.code}: ${error.reason ?? ''}`));
analytics.on('http_request', () => {
    report.requests += 1;
});
analytics.on('http_response', (response) => {
    report.statuses[response.status] = (report.statuses[response.status] ?? 0) + 1;
    report.acknowledgedAt = Date.now();
    if (response.status !== 200) {
        errors.push(`the worker answered ${response.status} ${response.statusText}`);
    }
});

// The callback of each call: records the messageId the SDK gave the event, or the delivery error.
const delivered = (label) => (error, context) => {
    if (error) {
        errors.push(`${label}: ${error.message ?? error}`);
    }
    if (context?.event?.messageId) {
        report.messageIds[label] = context.event.messageId;
    }
};

const userId = 'wh-user-1';
const address = { city: 'Berlin', postal_code: '10115' };

if (phase === 'first') {
    analytics.track(
        {
            userId,
            event: 'Order Completed',
            properties: {
                order_id: 'order-1001',
                revenue: 12.5,
                currency: 'EUR',
                gift_wrap: false,
                products: [
                    { product_id: 'p-1', sku: 'SKU-1', price: 5, quantity: 1 },
                    { product_id: 'p-2', sku: 'SKU-2', price: 7.5, quantity: 1 },
                ],
                shipping: { method: 'ups', cost: 4, eta: '2025-06-03T12:00:00.000Z' },
            },
        },
        delivered('order_completed'));
    analytics.identify(
        { userId, traits: { email: 'ada@example.com', plan: 'free', address } },
        delivered('identify'));
    analytics.group(
        { userId, groupId: 'wh-group-1', traits: { name: 'Acme', employees: 12 } },
        delivered('group'));
    analytics.page(
        {
            userId,
            category: 'Docs',
            name: 'Pricing',
            properties: {
                url: 'https://shop.example/pricing?ref=nav',
                path: '/pricing',
                search: '?ref=nav',
                title: 'Pricing',
                plan_shown: 'pro',
            },
        },
        delivered('page'));
    analytics.screen({ userId, name: 'Checkout', properties: { step: 2 } }, delivered('screen'));
    analytics.alias({ userId, previousId: 'wh-visitor-1' }, delivered('alias'));
} else {
    analytics.track(
        { userId, event: 'Coupon Applied', properties: { coupon_code: 'SPRING10', discount: 2.5 } },
        delivered('coupon_applied'));
    // revenue an integer this time (bigint and double precision widen to double precision), and a new property.
    analytics.track(
        { userId, event: 'Order Completed', properties: { order_id: 'order-1002', revenue: 20, tax: 1.5 } },
        delivered('order_completed'));
    analytics.identify(
        { userId, traits: { email: 'ada@example.com', plan: 'pro', address, company_size: 40 } },
        delivered('identify'));
}

// The SDK's defaults (flushAt 15, path /v1/batch): everything goes in one batch, sent by closeAndFlush().
await analytics.closeAndFlush({ timeout: 20000 });
finish(report, errors);
