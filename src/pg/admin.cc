// The admin listener: a second, plain-HTTP HttpServer in ingest worker 0 (when segment_webhook.admin_port is
// set) that serves the event debugger page (files from the extension's share directory), GET /metrics and
// the page's data, GET /api/recent. Its requests are answered one by one between ingest batches, never
// inside one; only /api/recent touches the database, in a short read-only transaction of its own with a
// statement timeout (admin_db.cc). Every request first passes check_admin_access() (the token, or loopback
// clients only). An error answering one request answers it 503 and costs nothing else.
#include "core/admin_http.h"
#include "core/prometheus.h"
#include "pg/worker_state.h"
#include "pg/admin_db.h"
#include "pg/cpp_guard.h"
#include "pg/metrics.h"
#include "pg/settings.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pg/postgres_headers.h"

extern "C" {
#include "utils/varlena.h"
}

namespace segment_pg {
namespace {

constexpr size_t kAdminMaxConnections = 16;
constexpr int kDefaultRows = 50;
constexpr int kMaxRows = 200;

segment::HttpServer *admin_server = nullptr;
std::vector<segment::ReadyRequest> *admin_ready = nullptr;
char admin_directory[MAXPGPATH];
bool admin_answered = false;  // the request being handled has its answer (an error after it sends no other)

// The parameters of GET /api/recent, read from its query (inside run_cpp).
struct RecentQuery {
    int64 after_event = 0;
    int64 after_rejected = 0;
    int limit = kDefaultRows;
    char source[256] = "";
    char error[160] = "";
};

bool parse_integer(std::string_view text, int64 minimum, int64 maximum, int64 *out) {
    if (text.empty() || text.size() > 18) {
        return false;
    }
    int64 value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return false;
        }
        value = value * 10 + (c - '0');
    }
    if (value < minimum || value > maximum) {
        return false;
    }
    *out = value;
    return true;
}

void read_recent_query(const segment::HttpRequest &request, RecentQuery *query) {
    int64 value;
    if (const auto after = request.query_parameter("after")) {
        if (!parse_integer(*after, 0, INT64CONST(999999999999999999), &value)) {
            snprintf(query->error, sizeof query->error, "after must be an event id (a non-negative integer)");
            return;
        }
        query->after_event = value;
    }
    if (const auto after = request.query_parameter("rejected_after")) {
        if (!parse_integer(*after, 0, INT64CONST(999999999999999999), &value)) {
            snprintf(query->error, sizeof query->error, "rejected_after must be a non-negative integer");
            return;
        }
        query->after_rejected = value;
    }
    if (const auto limit = request.query_parameter("limit")) {
        if (!parse_integer(*limit, 1, kMaxRows, &value)) {
            snprintf(query->error, sizeof query->error, "limit must be an integer from 1 to %d", kMaxRows);
            return;
        }
        query->limit = static_cast<int>(value);
    }
    if (const auto source = request.query_parameter("source")) {
        if (source->size() >= sizeof query->source || source->find('\0') != std::string_view::npos) {
            snprintf(query->error, sizeof query->error, "source must be a source name");
            return;
        }
        snprintf(query->source, sizeof query->source, "%.*s", static_cast<int>(source->size()),
                 source->data());
    }
}

// The answer to send to admin request `index` (without the database: /api/recent's data comes in `data`).
void respond_admin(size_t index, segment::HttpResponse response, const std::string &set_cookie) {
    run_cpp("answering an admin request", [&] {
        if (!set_cookie.empty()) {
            response.extra_headers.emplace_back("Set-Cookie", set_cookie);
        }
        admin_server->respond((*admin_ready)[index].connection, response, now_ms());
    });
    admin_answered = true;
}

void respond_admin_error(size_t index, segment::RequestEndpoint endpoint, int status, const char *code,
                         const char *message) {
    metrics_count_request(endpoint, status);
    run_cpp("answering an admin request", [&] {
        segment::HttpResponse response = segment::json_error_response(status, code, message, false);
        response.extra_headers.emplace_back("Cache-Control", "no-store");
        admin_server->respond((*admin_ready)[index].connection, response, now_ms());
    });
    admin_answered = true;
}

// One admin request, in the caller's error boundary.
void answer_admin_request(size_t index) {
    struct Decision {
        bool allowed;
        segment::AdminRoute route;
        segment::RequestEndpoint endpoint;
        int refusal_status;
    };
    // Everything the request alone decides; a refusal is answered right here.
    const Decision decision = run_cpp("checking an admin request", [&] {
        const segment::ReadyRequest &ready = (*admin_ready)[index];
        const segment::AdminTarget target = segment::route_admin_request(*ready.request);
        const segment::RequestEndpoint endpoint = target.route == segment::AdminRoute::Metrics
                                                      ? segment::RequestEndpoint::Metrics
                                                      : segment::RequestEndpoint::Admin;
        segment::AdminAccess access =
            segment::check_admin_access(*ready.request, ready.peer, settings.admin_token);
        if (!access.allowed) {
            const int status = access.refusal->status;
            admin_server->respond(ready.connection, *access.refusal, now_ms());
            return Decision{false, target.route, endpoint, status};
        }
        return Decision{true, target.route, endpoint, 0};
    });
    if (!decision.allowed) {
        admin_answered = true;
        metrics_count_request(decision.endpoint, decision.refusal_status);
        return;
    }
    switch (decision.route) {
        case segment::AdminRoute::NotFound:
            respond_admin_error(index, decision.endpoint, 404, "not_found",
                                "no such admin page; see /, /metrics and /api/recent");
            return;
        case segment::AdminRoute::MethodNotAllowed:
            respond_admin_error(index, decision.endpoint, 405, "method_not_allowed",
                                "the admin listener answers GET only");
            return;
        case segment::AdminRoute::Page:
        case segment::AdminRoute::Asset: {
            const bool found = run_cpp("reading an admin page", [&] {
                const segment::ReadyRequest &ready = (*admin_ready)[index];
                const segment::AdminTarget target = segment::route_admin_request(*ready.request);
                std::ifstream file(std::string(admin_directory) + "/" + target.asset, std::ios::binary);
                if (!file) {
                    return false;
                }
                std::ostringstream content;
                content << file.rdbuf();
                const std::string cookie =
                    segment::check_admin_access(*ready.request, ready.peer, settings.admin_token).set_cookie;
                metrics_count_request(decision.endpoint, 200);
                respond_admin(index, segment::admin_file_response(content.str(), target.content_type),
                              cookie);
                return true;
            });
            if (!found) {
                char message[MAXPGPATH + 128];
                snprintf(message, sizeof message,
                         "the admin page is not installed in %s; run make install of this version",
                         admin_directory);
                respond_admin_error(index, decision.endpoint, 500, "admin_page_missing", message);
            }
            return;
        }
        case segment::AdminRoute::Metrics: {
            MetricsSnapshot *snapshot = take_metrics_snapshot();
            metrics_count_request(decision.endpoint, 200);
            run_cpp("answering /metrics", [&] {
                segment::HttpResponse response;
                response.content_type = std::string(segment::kPrometheusContentType);
                response.body = format_metrics(*snapshot);
                response.extra_headers.emplace_back("Cache-Control", "no-store");
                const segment::ReadyRequest &ready = (*admin_ready)[index];
                respond_admin(
                    index, std::move(response),
                    segment::check_admin_access(*ready.request, ready.peer, settings.admin_token).set_cookie);
            });
            pfree(snapshot);
            return;
        }
        case segment::AdminRoute::Recent: {
            RecentQuery *query = static_cast<RecentQuery *>(palloc0(sizeof(RecentQuery)));
            run_cpp("reading /api/recent", [&] {
                *query = RecentQuery();
                read_recent_query(*(*admin_ready)[index].request, query);
            });
            if (query->error[0] != '\0') {
                respond_admin_error(index, decision.endpoint, 400, "invalid_parameter", query->error);
                return;
            }
            if (!OidIsValid(state->schema)) {
                respond_admin_error(
                    index, decision.endpoint, 503, "extension_missing",
                    "the segment_webhook extension is not installed in the worker's database");
                return;
            }
            const AdminRecent recent =
                admin_read_recent(query->after_event, query->after_rejected,
                                  query->source[0] ? query->source : nullptr, query->limit);
            MetricsSnapshot *snapshot = take_metrics_snapshot();
            metrics_count_request(decision.endpoint, 200);
            run_cpp("answering /api/recent", [&] {
                segment::HttpResponse response;
                response.body = std::string("{\"sources\":") + recent.sources +
                                ",\"counters\":" + format_source_counters_json(*snapshot) +
                                ",\"events\":" + recent.events + ",\"rejected\":" + recent.rejected + "}";
                response.extra_headers.emplace_back("Cache-Control", "no-store");
                const segment::ReadyRequest &ready = (*admin_ready)[index];
                respond_admin(
                    index, std::move(response),
                    segment::check_admin_access(*ready.request, ready.peer, settings.admin_token).set_cookie);
            });
            pfree(snapshot);
            return;
        }
    }
}

// One request in its own error boundary: a failure answers it 503 (unless it was answered already).
void answer_in_error_boundary(size_t index) {
    MemoryContext worker_context = CurrentMemoryContext;
    admin_answered = false;
    PG_TRY();
    { answer_admin_request(index); }
    PG_CATCH();
    {
        MemoryContextSwitchTo(worker_context);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        admin_abort_transaction();
        char message[512];
        snprintf(message, sizeof message, "the admin request failed: %s", error->message);
        FreeErrorData(error);
        if (!admin_answered) {
            respond_admin_error(index, segment::RequestEndpoint::Admin, 503, "admin_unavailable", message);
        }
    }
    PG_END_TRY();
    MemoryContextSwitchTo(worker_context);
}

}  // namespace

int start_admin_listener() {
    if (worker_number != 0 || settings.admin_port == 0) {
        return -1;
    }
    char share[MAXPGPATH];
    get_share_path(my_exec_path, share);
    snprintf(admin_directory, sizeof admin_directory, "%s/extension/segment_webhook_admin", share);
    char *raw = pstrdup(settings.admin_listen_addresses);
    List *names = nullptr;
    if (!SplitGUCList(raw, ',', &names)) {
        ereport(WARNING,
                (errmsg("segment_webhook.admin_listen_addresses is not a valid list: \"%s\"; the admin "
                        "listener is off",
                        settings.admin_listen_addresses)));
        return -1;
    }
    const int count = list_length(names);
    const char **addresses = static_cast<const char **>(palloc(sizeof(char *) * (count > 0 ? count : 1)));
    for (int n = 0; n < count; ++n) {
        addresses[n] = static_cast<const char *>(list_nth(names, n));
    }
    char failure[512] = "";
    run_cpp("starting the admin listener", [&] {
        segment::HttpServerOptions options;
        for (int n = 0; n < count; ++n) {
            options.listen_addresses.emplace_back(addresses[n]);
        }
        options.port = settings.admin_port;
        options.max_connections = kAdminMaxConnections;
        options.parser_limits.max_header_bytes = 16 * 1024;
        options.parser_limits.max_body_bytes = 1024;  // it reads no body; a small one gets its 405
        options.max_buffered_bytes = 1024 * 1024;
        try {
            admin_server = new segment::HttpServer(options);
            admin_ready = new std::vector<segment::ReadyRequest>();
        } catch (const std::exception &error) {
            snprintf(failure, sizeof failure, "%s", error.what());
        }
    });
    if (admin_server == nullptr) {
        // The ingest endpoint goes on without it; a restart of the server tries again.
        ereport(WARNING,
                (errmsg("segment_webhook: the admin listener could not start: %s", failure),
                 errhint("Check segment_webhook.admin_port and segment_webhook.admin_listen_addresses; "
                         "they apply at the next restart.")));
        return -1;
    }
    const int bound =
        run_cpp("listing addresses", [] { return static_cast<int>(admin_server->bound_addresses().size()); });
    for (int n = 0; n < bound; ++n) {
        char address[128];
        run_cpp("listing addresses",
                [&] { snprintf(address, sizeof address, "%s", admin_server->bound_addresses()[n].c_str()); });
        ereport(
            LOG,
            (errmsg(
                "segment_webhook: worker %d serves the admin listener on %s%s", worker_number, address,
                settings.admin_token[0] == '\0' ? " (no admin_token: clients on this machine only)" : "")));
    }
    return run_cpp("starting the admin listener", [] { return admin_server->epoll_fd(); });
}

int64 admin_next_deadline_ms() {
    return admin_server == nullptr
               ? -1
               : run_cpp("computing deadlines", [] { return admin_server->next_deadline_ms(); });
}

bool admin_has_ready_requests() {
    return admin_server != nullptr &&
           run_cpp("computing deadlines", [] { return admin_server->has_ready_requests(); });
}

void serve_admin_requests() {
    if (admin_server == nullptr) {
        return;
    }
    const int64 now = now_ms();
    run_cpp("serving the admin listener", [now] {
        admin_ready->clear();
        admin_server->poll(now, *admin_ready);
    });
    const size_t count = run_cpp("serving the admin listener", [] { return admin_ready->size(); });
    for (size_t i = 0; i < count; ++i) {
        answer_in_error_boundary(i);
    }
    run_cpp("serving the admin listener", [] { admin_ready->clear(); });
}

void stop_admin_listener() {
    if (admin_server != nullptr) {
        run_cpp("stopping the admin listener", [] { admin_server->stop_accepting(); });
    }
}

}  // namespace segment_pg
