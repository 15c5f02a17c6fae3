// The segment_webhook.* configuration parameters (GUCs). Defined in _PG_init whether or not the library is
// preloaded, so that SET and postgresql.conf accept them; only the worker reads them.
#pragma once

#include "pg/postgres_headers.h"

namespace segment_pg {

struct Settings {
    int workers;
    char *listen_addresses;
    int port;
    char *database;
    char *role;
    int batch_size;
    int batch_delay_ms;
    int max_request_size;
    int max_buffered_bytes;
    int max_header_size;
    int max_connections;
    int read_timeout_ms;
    int idle_timeout_ms;
    int retry_after_s;
    int lock_timeout_ms;
    char *cors_origins;
    char *ssl_cert_file;
    char *ssl_key_file;
    bool trust_proxy;
    bool direct_insert;
    bool notify;
    bool warehouse;
    int warehouse_max_columns;
    int warehouse_max_relations;
    int dedup_window_s;
    int partition_premake;
    bool reorder_partitions;
    int admin_port;
    char *admin_listen_addresses;
    char *admin_token;
};

extern Settings settings;

void define_settings();

}  // namespace segment_pg
