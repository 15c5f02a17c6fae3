// The HTTP worker's TLS settings: segment_webhook.ssl_cert_file and ssl_key_file, loaded into a new TLS
// context at the worker's start and at every configuration reload, for the connections accepted afterwards
// (those already open keep theirs). Whether the port speaks HTTPS is decided once, when the worker starts its
// server: a reload never turns an HTTPS port into a plain one (or back), it says that a restart of the worker
// is needed. A certificate or key that cannot be used is logged once, and whatever was served before stays
// (nothing at the start: the port then refuses TLS handshakes and answers plain HTTP with 400, rather than
// crash-looping the worker). The TlsContext lives in the server (C++ heap); these frames, which call ereport,
// hold no C++ object: loading runs inside run_cpp and reports through plain buffers.
#include "core/http_server.h"
#include "core/tls.h"
#include "pg/cpp_guard.h"
#include "pg/settings.h"
#include "pg/worker_state.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "pg/postgres_headers.h"

namespace segment_pg {

namespace {

constexpr const char *kRestartHint =
    "Restart the workers: SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = "
    "'segment_webhook worker' (they start again within a second), or restart the server.";

// Logs a failure to provide a certificate, unless this same failure was the last one logged.
void report_tls_failure(const char *failure) {
    if (strcmp(state->tls_failure_logged, failure) == 0) {
        return;
    }
    snprintf(state->tls_failure_logged, sizeof state->tls_failure_logged, "%s", failure);
    if (state->tls_loaded) {
        ereport(WARNING,
                (errcode(ERRCODE_CONFIG_FILE_ERROR),
                 errmsg("segment_webhook: worker %d could not load a new TLS certificate: %s", worker_number,
                        failure),
                 errdetail("New connections keep getting the certificate loaded before (SHA-256 %s).",
                           state->tls_fingerprint)));
    } else {
        ereport(
            WARNING,
            (errcode(ERRCODE_CONFIG_FILE_ERROR),
             errmsg("segment_webhook: worker %d could not load its TLS certificate: %s", worker_number,
                    failure),
             errdetail("The port speaks HTTPS only and has no certificate: TLS handshakes are refused and "
                       "plain HTTP requests are answered 400 until a reload loads a certificate."),
             errhint("Fix segment_webhook.ssl_cert_file and segment_webhook.ssl_key_file, then SELECT "
                     "pg_reload_conf().")));
    }
}

}  // namespace

bool tls_requested() {
    return settings.ssl_cert_file[0] != '\0' || settings.ssl_key_file[0] != '\0';
}

void load_tls_certificate() {
    const bool https = run_cpp("reading the TLS mode", [] { return state->server->https(); });
    if (https != tls_requested()) {
        if (!state->tls_mode_change_logged) {
            state->tls_mode_change_logged = true;
            ereport(WARNING,
                    (errcode(ERRCODE_CANT_CHANGE_RUNTIME_PARAM),
                     errmsg(https ? "segment_webhook: worker %d keeps speaking HTTPS only: turning TLS off "
                                    "takes effect at the next start of the worker"
                                  : "segment_webhook: worker %d keeps speaking plain HTTP: turning TLS on "
                                    "takes effect at the next start of the worker",
                            worker_number),
                     errhint("%s", kRestartHint)));
        }
        if (!https) {
            return;
        }
    } else {
        state->tls_mode_change_logged = false;
    }
    if (!https) {
        return;
    }
    if (settings.ssl_cert_file[0] == '\0' || settings.ssl_key_file[0] == '\0') {
        if (tls_requested()) {
            report_tls_failure(
                "segment_webhook.ssl_cert_file and segment_webhook.ssl_key_file must both be set");
        }
        return;
    }

    // Relative paths name files in the data directory, the worker's working directory.
    char failure[1024] = "";
    char fingerprint[65] = "";
    char description[512] = "";
    const char *cert_file = settings.ssl_cert_file;
    const char *key_file = settings.ssl_key_file;
    run_cpp("loading the TLS certificate", [&] {
        std::shared_ptr<segment::TlsContext> context;
        try {
            context = segment::TlsContext::load(cert_file, key_file);
        } catch (const std::runtime_error &error) {
            snprintf(failure, sizeof failure, "%s", error.what());
            return;
        }
        snprintf(fingerprint, sizeof fingerprint, "%s", context->fingerprint().c_str());
        snprintf(description, sizeof description, "%s", context->description().c_str());
        state->server->set_tls_context(std::move(context));
    });
    if (failure[0] != '\0') {
        report_tls_failure(failure);
        return;
    }
    state->tls_failure_logged[0] = '\0';
    if (!state->tls_loaded || strcmp(state->tls_fingerprint, fingerprint) != 0) {
        ereport(LOG,
                (errmsg("segment_webhook: worker %d serves TLS certificate %s (SHA-256 %s)%s", worker_number,
                        description, fingerprint, state->tls_loaded ? " to new connections" : "")));
    }
    state->tls_loaded = true;
    snprintf(state->tls_fingerprint, sizeof state->tls_fingerprint, "%s", fingerprint);
}

}  // namespace segment_pg
