// Sends through @segment/analytics-node (Segment's Node SDK) to the segment_webhook worker, unmodified except
// for its `host`: the six call types with the default settings, then a large queue flushed by closeAndFlush().
// usage: node analytics_node.mjs WORKER_PORT WRITE_KEY [BULK_EVENTS]
// SEGMENT_WEBHOOK_SCHEME=https sends to https://127.0.0.1:WORKER_PORT (trusting NODE_EXTRA_CA_CERTS).
// Exits non-zero when the SDK reports a failed delivery or the worker answers anything but 200.
import { Analytics } from '@segment/analytics-node';

import { basicAuthorization, deadline, finish, parseArgs } from './common.mjs';

const { port, writeKey } = parseArgs('analytics_node.mjs', ['port', 'writeKey']);
const bulkEvents = Number(process.argv[4] ?? 2000);
deadline(45, 'analytics-node');

const host = `${process.env.SEGMENT_WEBHOOK_SCHEME ?? 'http'}://127.0.0.1:${port}`;
const errors = [];
const report = { requests: 0, statuses: {}, paths: [], bulkEvents };

// Every request the SDK makes and every answer it gets, as the SDK itself reports them.
function watch(analytics, label) {
    analytics.on('error', (error) => errors.push(`${label}: ${error.code}: ${error.reason ?? ''}`));
    analytics.on('http_request', (request) => {
        report.requests += 1;
        const path = new URL(request.url).pathname;
        if (!report.paths.includes(path)) {
            report.paths.push(path);
        }
        if (request.headers.Authorization !== basicAuthorization(writeKey)) {
            errors.push(`${label}: unexpected Authorization header ${request.headers.Authorization}`);
        }
    });
    analytics.on('http_response', (response) => {
        report.statuses[response.status] = (report.statuses[response.status] ?? 0) + 1;
        if (response.status !== 200) {
            errors.push(`${label}: the worker answered ${response.status} ${response.statusText}`);
        }
    });
}

// The callback every call takes: the SDK hands it an error when the delivery failed.
const delivered = (label) => (error) => {
    if (error) {
        errors.push(`${label}: ${error.message ?? error}`);
    }
};

// The six calls, with the SDK's defaults (flushAt 15, flushInterval 10 s, path /v1/batch).
const calls = new Analytics({ writeKey, host });
watch(calls, 'calls');
calls.identify({ userId: 'node-user', traits: { email: 'node@example.com', plan: 'pro' } }, delivered('identify'));
calls.track(
    { userId: 'node-user', event: 'Node Order Completed', properties: { revenue: 9.99, currency: 'EUR' } },
    delivered('track'));
calls.page(
    { userId: 'node-user', category: 'Docs', name: 'Node Page', properties: { path: '/docs', title: 'Docs' } },
    delivered('page'));
calls.screen({ userId: 'node-user', name: 'Node Screen', properties: { variation: 'blue' } }, delivered('screen'));
calls.group({ userId: 'node-user', groupId: 'node-group', traits: { name: 'Node Group' } }, delivered('group'));
calls.alias({ userId: 'node-user-renamed', previousId: 'node-user' }, delivered('alias'));
await calls.closeAndFlush({ timeout: 20000 });

// A large queue: many batches of up to 400 events in flight, all flushed on close.
const bulk = new Analytics({ writeKey, host, flushAt: 400 });
watch(bulk, 'bulk');
for (let sequence = 0; sequence < bulkEvents; sequence++) {
    bulk.track(
        { anonymousId: `bulk-${sequence % 7}`, event: 'Node Bulk Event', properties: { sequence } },
        delivered(`bulk track ${sequence}`));
}
await bulk.closeAndFlush({ timeout: 30000 });

finish(report, errors);
