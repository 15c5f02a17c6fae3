// Sends through @segment/analytics-node (Segment's Node SDK), unmodified except for its `host` and `flushAt`, to
// a source whose max_events_per_second is below what the SDK sends: the worker answers 429 with Retry-After,
// which the SDK honours without spending its retry budget, until every event is delivered.
// usage: node analytics_node_rate_limited.mjs WORKER_PORT WRITE_KEY EVENTS FLUSH_AT
// Exits non-zero when the SDK reports a failed delivery or the worker answers anything but 200 or 429. Used by
// test/t/043_rate_limits.pl, which checks the rows.
import { Analytics } from '@segment/analytics-node';

import { deadline, finish, parseArgs } from './common.mjs';

const { port, writeKey, events, flushAt } = parseArgs('analytics_node_rate_limited.mjs',
    ['port', 'writeKey', 'events', 'flushAt']);
deadline(100, 'analytics-node (rate limited)');

const errors = [];
const report = { requests: 0, statuses: {}, retryAfter: [] };
const analytics = new Analytics({ writeKey, host: `http://127.0.0.1:${port}`, flushAt: Number(flushAt) });
analytics.on('error', (error) => errors.push(`${error.code}: ${error.reason ?? ''}`));
analytics.on('http_request', () => { report.requests += 1; });
analytics.on('http_response', (response) => {
    report.statuses[response.status] = (report.statuses[response.status] ?? 0) + 1;
    if (response.status === 429) {
        const retryAfter = response.headers['retry-after'];
        if (!report.retryAfter.includes(retryAfter)) {
            report.retryAfter.push(retryAfter);
        }
    } else if (response.status !== 200) {
        errors.push(`the worker answered ${response.status} ${response.statusText}`);
    }
});
for (let sequence = 0; sequence < Number(events); sequence++) {
    analytics.track({ anonymousId: `limited-${sequence % 5}`, event: 'Limited Event', properties: { sequence } },
        (error) => { if (error) errors.push(`track ${sequence}: ${error.message ?? error}`); });
}
await analytics.closeAndFlush({ timeout: 90000 });
finish(report, errors);
