// segment_webhook.* GUCs. Names and defaults are part of the public contract (see README.md).
#include "pg/settings.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "utils/guc.h"
}

namespace segment_pg {

Settings settings;

namespace {

// 1023MB: below MaxAllocSize (1GB - 1), so a body and its copies fit in one Postgres allocation.
constexpr int kMaxRequestSize = 1023 * 1024 * 1024;
static_assert(kMaxRequestSize + 2 * VARHDRSZ < MaxAllocSize, "a request body must fit in one allocation");

void define_postmaster_settings() {
    DefineCustomIntVariable("segment_webhook.workers", "Number of HTTP ingest workers.",
                            "Each listens on the same port (SO_REUSEPORT). Needs a restart.",
                            &settings.workers, 1, 0, 64, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("segment_webhook.listen_addresses",
                               "Addresses the ingest workers listen on (comma-separated; * for all).",
                               nullptr, &settings.listen_addresses, "localhost", PGC_POSTMASTER,
                               GUC_LIST_INPUT, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("segment_webhook.port", "TCP port of the HTTP ingest endpoint.", nullptr,
                            &settings.port, 8686, 1, 65535, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("segment_webhook.database", "Database the ingest workers connect to.",
                               "The extension must be created there.", &settings.database, "postgres",
                               PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "segment_webhook.role", "Role the ingest workers connect as.",
        "Empty: the bootstrap superuser. A dedicated role with INSERT on the extension's "
        "tables and SELECT on segment_sources is recommended.",
        &settings.role, "", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    // The admin listener (the debugger page and /metrics), served by ingest worker 0.
    DefineCustomIntVariable("segment_webhook.admin_port",
                            "TCP port of the admin listener (the event debugger page and /metrics); 0: off.",
                            "Served by ingest worker 0, in plain HTTP. Needs a restart.",
                            &settings.admin_port, 0, 0, 65535, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("segment_webhook.admin_listen_addresses",
                               "Addresses the admin listener listens on (comma-separated; * for all).",
                               "Needs a restart. Without segment_webhook.admin_token, only clients on this "
                               "machine are answered, whatever the addresses.",
                               &settings.admin_listen_addresses, "localhost", PGC_POSTMASTER, GUC_LIST_INPUT,
                               nullptr, nullptr, nullptr);
}

void define_reloadable_settings() {
    DefineCustomIntVariable("segment_webhook.batch_size", "Messages written in one transaction at most.",
                            nullptr, &settings.batch_size, 500, 1, 100000, PGC_SIGHUP, 0, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("segment_webhook.batch_delay",
                            "Longest time a received message waits for others to share its transaction.",
                            nullptr, &settings.batch_delay_ms, 5, 0, 10000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                            nullptr, nullptr);
    // A body must fit in one Postgres allocation, with room for the varlena header of its dead-letter copy.
    DefineCustomIntVariable("segment_webhook.max_request_size", "Largest request body accepted (413 beyond).",
                            "Segment does not retry a 413, so keep this generous. At most 1023MB: a body "
                            "must fit in one Postgres allocation.",
                            &settings.max_request_size, 16 * 1024 * 1024, 1024, kMaxRequestSize, PGC_SIGHUP,
                            GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("segment_webhook.max_buffered_bytes",
                            "Bytes that unanswered requests may hold in one worker at most.",
                            "Past it, new requests are answered 503 server_busy with Retry-After.",
                            &settings.max_buffered_bytes, 256 * 1024 * 1024, 1024 * 1024, INT_MAX, PGC_SIGHUP,
                            GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("segment_webhook.max_header_size", "Largest request head accepted (431 beyond).",
                            nullptr, &settings.max_header_size, 16 * 1024, 1024, 1024 * 1024, PGC_SIGHUP,
                            GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("segment_webhook.max_connections", "Open HTTP connections per worker at most.",
                            nullptr, &settings.max_connections, 1024, 1, 100000, PGC_SIGHUP, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("segment_webhook.read_timeout",
                            "Time a client has to send a whole request once it started (408 beyond).",
                            nullptr, &settings.read_timeout_ms, 10000, 100, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "segment_webhook.idle_timeout", "Time an idle keep-alive connection is kept open.", nullptr,
        &settings.idle_timeout_ms, 60000, 100, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("segment_webhook.retry_after", "Retry-After sent with 503 answers.", nullptr,
                            &settings.retry_after_s, 5, 0, 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable(
        "segment_webhook.lock_timeout",
        "lock_timeout of the workers' transactions: a batch that cannot get its locks in time "
        "is answered 503 instead of keeping the senders waiting.",
        nullptr, &settings.lock_timeout_ms, 2000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);
    DefineCustomStringVariable(
        "segment_webhook.cors_origins",
        "Browser origins allowed to send events (comma-separated; * for any).",
        "analytics.js sends from your web pages' origins; requests with another Origin "
        "are refused with 403.",
        &settings.cors_origins, "*", PGC_SIGHUP, GUC_LIST_INPUT, nullptr, nullptr, nullptr);
    // Read by the workers at every reload (worker_tls.cc); whether the port speaks HTTPS at all is decided at
    // the worker's start.
    DefineCustomStringVariable(
        "segment_webhook.ssl_cert_file", "Certificate (PEM, with its chain) of the HTTPS ingest port.",
        "Relative paths are relative to the data directory. With ssl_key_file set too, the port speaks "
        "HTTPS only (from the next worker start); a reload loads a renewed certificate for new connections.",
        &settings.ssl_cert_file, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "segment_webhook.ssl_key_file", "Private key (PEM, no passphrase) of the HTTPS ingest port.",
        "Relative paths are relative to the data directory. Must be owned by the database user with "
        "permissions 0600 or less, or by root with 0640 or less.",
        &settings.ssl_key_file, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("segment_webhook.trust_proxy",
                             "Take the client address for context.ip from X-Forwarded-For.",
                             "Turn on only behind a reverse proxy that sets X-Forwarded-For.",
                             &settings.trust_proxy, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "segment_webhook.direct_insert",
        "Write batches into segment_events the way COPY does (heap multi-insert).",
        "Off: through INSERT ... ON CONFLICT DO NOTHING. The outcome is the same; the direct "
        "path is used only while segment_events has no triggers, row security or extra columns.",
        &settings.direct_insert, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    // Per session too: a bulk load through segment_ingest() may turn it off for its own transactions.
    DefineCustomBoolVariable(
        "segment_webhook.notify", "NOTIFY segment_events after each batch, one payload per source.",
        "Off: no notification (saves the cluster-wide lock Postgres takes to queue notifications at "
        "COMMIT, which orders the commits of concurrent notifying transactions).",
        &settings.notify, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "segment_webhook.warehouse",
        "Keep the warehouse relations of every source up to date with the events stored.",
        "The warehouse worker examines newly committed events about once a second and adds "
        "the columns and relations they call for. Off: nothing is examined until it is on "
        "again (segment_warehouse_sync() still works).",
        &settings.warehouse, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    // Read by the SQL that records new columns (current_setting), in every session.
    DefineCustomIntVariable(
        "segment_webhook.warehouse_max_columns", "Columns per warehouse relation at most.",
        "Keys beyond it stay in segment_events.payload only (logged once per relation).",
        &settings.warehouse_max_columns, 1000, 16, 1500, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "segment_webhook.warehouse_max_relations", "Event relations per source at most.",
        "Events beyond it get no relation of their own; they stay in tracks (logged once per "
        "source).",
        &settings.warehouse_max_relations, 500, 0, 100000, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    // Read by the maintenance SQL (current_setting) as the extension's owner.
    DefineCustomIntVariable(
        "segment_webhook.dedup_window", "How long a stored message's key is kept to detect its retries.",
        "Deduplication is exact for at least this long after a message was received, across every "
        "partition of segment_events; a message sent again later is stored again.",
        &settings.dedup_window_s, 7 * 86400, 3600, INT_MAX, PGC_SUSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "segment_webhook.partition_premake",
        "Days ahead for which day partitions of segment_events are made.",
        "0: none are made (pg_partman or another tool makes them; the default partition takes the rest).",
        &settings.partition_premake, 7, 0, 365, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "segment_webhook.reorder_partitions",
        "Rewrites each closed day partition once, in the order of type, source, event and timestamp.",
        "Then a warehouse view reads only the blocks of its own rows. Off: day partitions stay in arrival "
        "order (no rewrite, no extra WAL).",
        &settings.reorder_partitions, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    // Superusers only can read it (SHOW, pg_settings); a reload changes it, and ends the sessions of the
    // previous token (their cookie is derived from it).
    DefineCustomStringVariable(
        "segment_webhook.admin_token", "Token the admin listener requires (Authorization: Bearer).",
        "Empty: the admin listener answers clients on this machine only. A reload applies a new token.",
        &settings.admin_token, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
}

}  // namespace

void define_settings() {
    // Settings of the workers' process model exist only when the library is preloaded: Postgres refuses to
    // create PGC_POSTMASTER variables once it is running (a plain CREATE EXTENSION loads the library late).
    if (process_shared_preload_libraries_in_progress) {
        define_postmaster_settings();
    }
    define_reloadable_settings();
    // Last: it discards pending postgresql.conf values of segment_webhook.* names not defined by now.
    MarkGUCPrefixReserved("segment_webhook");
}

}  // namespace segment_pg
