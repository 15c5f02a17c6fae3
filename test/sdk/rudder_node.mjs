// Sends through @rudderstack/rudder-sdk-node (RudderStack's Node SDK) to the segment_webhook worker, unmodified
// except for its `dataPlaneUrl`: the six call types. The SDK posts {batch, timestamp, sentAt} gzip-compressed to
// /v1/batch with HTTP Basic auth (the write key as user name).
// usage: node rudder_node.mjs WORKER_PORT WRITE_KEY
// Exits non-zero when the SDK reports an error.
import Analytics from '@rudderstack/rudder-sdk-node';

import { deadline, finish, parseArgs } from './common.mjs';

const { port, writeKey } = parseArgs('rudder_node.mjs', ['port', 'writeKey']);
deadline(30, 'rudder-sdk-node');

const errors = [];
const client = new Analytics(writeKey, {
    dataPlaneUrl: `http://127.0.0.1:${port}`,
    logLevel: 'error',
    errorHandler: (error) => {
        const answer = error.response ? `${error.response.status} ${JSON.stringify(error.response.data)}` : '';
        errors.push(`the SDK reported: ${error.message} ${answer}`);
    },
});

// Each call's callback runs once its batch was answered, with the error when the delivery failed.
const deliveries = [];
function call(method, message) {
    deliveries.push(
        new Promise((resolve) => {
            client[method](message, (error) => {
                if (error) {
                    errors.push(`${method}: ${error.message ?? error}`);
                }
                resolve();
            });
        }));
}

call('identify', { userId: 'rudder-user', traits: { email: 'rudder@example.com', plan: 'team' } });
call('track', { userId: 'rudder-user', event: 'Rudder Order Completed', properties: { revenue: 19.5 } });
call('page', { userId: 'rudder-user', category: 'Docs', name: 'Rudder Page', properties: { path: '/rudder' } });
call('screen', { userId: 'rudder-user', name: 'Rudder Screen', properties: { variation: 'green' } });
call('group', { userId: 'rudder-user', groupId: 'rudder-group', traits: { name: 'Rudder Group' } });
call('alias', { userId: 'rudder-user-renamed', previousId: 'rudder-user' });
await client.flush();
await Promise.all(deliveries);

finish({ calls: deliveries.length }, errors);
