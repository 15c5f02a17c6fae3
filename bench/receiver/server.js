'use strict';
// Baseline R of bench/ingest.sh: the Segment webhook receiver a team would write instead of segment_webhook,
// in Node.js with fastify and pg. It accepts the same requests as the extension's endpoint for the benchmark's
// purposes (POST /v1/webhook?writeKey=…, X-Signature, one message or a JSON array of messages), verifies the
// signature (HMAC-SHA1, constant-time compare), parses the JSON, and stores each request's messages with one
// INSERT … ON CONFLICT (source_id, message_id) DO NOTHING in its own transaction, then answers like the
// extension: {"success":true,"accepted":N,"duplicates":D,"rejected":0}.
//
// It is a benchmark contender, not a product: it listens on 127.0.0.1 only and has no dead-letter table.
//
// Environment: RECEIVER_PORT (HTTP port), PGHOST (socket directory or host), PGPORT, PGUSER, PGDATABASE,
// RECEIVER_POOL (pg pool size, default 10).

const crypto = require('node:crypto');
const fastify = require('fastify');
const { Pool } = require('pg');

const TYPES = new Set(['track', 'identify', 'page', 'screen', 'group', 'alias']);
const COLUMNS =
  'source_id, message_id, type, event, name, category, user_id, anonymous_id, group_id, previous_id, ' +
  '"timestamp", original_timestamp, sent_at, received_at, payload';
const INSERT_ONE =
  `INSERT INTO segment_events (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ` +
  'ON CONFLICT (source_id, message_id) DO NOTHING';
const INSERT_MANY =
  `INSERT INTO segment_events (${COLUMNS}) SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], ` +
  '$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], ' +
  '$12::timestamptz[], $13::timestamptz[], $14::timestamptz[], $15::jsonb[]) ' +
  'ON CONFLICT (source_id, message_id) DO NOTHING';

const pool = new Pool({ max: Number(process.env.RECEIVER_POOL || 10) });
const sources = new Map(); // write key → { id, secret }

function fail(reply, status, code, message) {
  return reply.code(status).send({ success: false, error: { code, message } });
}

function hmacHex(secret, bytes) {
  return crypto.createHmac('sha1', secret).update(bytes).digest('hex');
}

function sameSignature(expectedHex, given) {
  const expected = Buffer.from(expectedHex, 'latin1');
  const actual = Buffer.from(String(given).toLowerCase(), 'latin1');
  return expected.length === actual.length && crypto.timingSafeEqual(expected, actual);
}

// Segment signs the raw body, or (Actions batching) JSON.stringify of the first element: accept either.
function signatureValid(secret, raw, parsed, given) {
  if (!given) return false;
  if (Array.isArray(parsed) && parsed.length > 0) {
    if (sameSignature(hmacHex(secret, JSON.stringify(parsed[0])), given)) return true;
  }
  return sameSignature(hmacHex(secret, raw), given);
}

function text(value) {
  if (value === undefined || value === null) return null;
  return typeof value === 'string' ? value : String(value);
}

function time(value) {
  if (typeof value !== 'string') return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

// One row of segment_events; null when the message cannot be stored as an event.
function toRow(sourceId, message, receivedMs) {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) return null;
  if (!TYPES.has(message.type) || typeof message.messageId !== 'string' || message.messageId === '') return null;
  if (message.userId == null && message.anonymousId == null) return null;
  const original = time(message.originalTimestamp);
  const sent = time(message.sentAt);
  let timestamp = time(message.timestamp);
  if (timestamp === null && original !== null && sent !== null) timestamp = receivedMs - (sent - original);
  if (timestamp === null) timestamp = original !== null ? original : receivedMs;
  const iso = (ms) => (ms === null ? null : new Date(ms).toISOString());
  return [
    sourceId, message.messageId, message.type, text(message.event), text(message.name), text(message.category),
    text(message.userId), text(message.anonymousId), text(message.groupId), text(message.previousId),
    iso(timestamp), iso(original), iso(sent), iso(receivedMs), JSON.stringify(message),
  ];
}

async function main() {
  const { rows } = await pool.query('SELECT id, write_key, shared_secret FROM segment_sources WHERE enabled');
  for (const row of rows) sources.set(row.write_key, { id: row.id, secret: row.shared_secret });

  const app = fastify({ logger: false, bodyLimit: 16 * 1024 * 1024, keepAliveTimeout: 60000 });
  // The signature is over the raw bytes, so the body is parsed here, after reading it whole.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => done(null, body));

  app.post('/v1/webhook', async (request, reply) => {
    const receivedMs = Date.now();
    const source = sources.get(request.query.writeKey);
    if (!source) return fail(reply, 401, 'invalid_write_key', 'unknown write key');
    const raw = request.body;
    let parsed;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch (error) {
      return fail(reply, 400, 'invalid_json', error.message);
    }
    if (source.secret && !signatureValid(source.secret, raw, parsed, request.headers['x-signature'])) {
      return fail(reply, 401, 'invalid_signature', 'X-Signature does not match the body');
    }
    const messages = Array.isArray(parsed) ? parsed : [parsed];
    const rows = [];
    for (const message of messages) {
      const row = toRow(source.id, message, receivedMs);
      if (row === null) return fail(reply, 400, 'invalid_message', 'a message is not a valid Segment message');
      rows.push(row);
    }
    let result;
    try {
      if (rows.length === 1) {
        result = await pool.query(INSERT_ONE, rows[0]);
      } else {
        const columns = Array.from({ length: 15 }, (_, c) => rows.map((row) => row[c]));
        result = await pool.query(INSERT_MANY, columns);
      }
    } catch (error) {
      reply.header('Retry-After', '5');
      return fail(reply, 503, 'database_unavailable', error.message);
    }
    return { success: true, accepted: result.rowCount, duplicates: rows.length - result.rowCount, rejected: 0 };
  });

  await app.listen({ host: '127.0.0.1', port: Number(process.env.RECEIVER_PORT) });
  process.stdout.write(`receiver listening on 127.0.0.1:${process.env.RECEIVER_PORT}\n`);
  const stop = async () => {
    await app.close();
    await pool.end();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error) => {
  process.stderr.write(`receiver: ${error.stack || error}\n`);
  process.exit(1);
});
