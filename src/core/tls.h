// TLS for the ingest port: a server certificate and key loaded into an OpenSSL context (TlsContext), and one
// connection's TLS session over a non-blocking socket (TlsSession). Pure C++ over OpenSSL; never includes
// Postgres and never blocks: every call that would wait says which socket event it waits for, and the
// HttpServer maps that onto its epoll interest. Loading reports every problem as a std::runtime_error whose
// message a user can act on; nothing here logs.
#pragma once
#include "core/no_postgres.h"

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

// OpenSSL's types, declared rather than included so that users of this header do not see OpenSSL's macros.
struct ssl_ctx_st;
struct ssl_st;

namespace segment {

// What a key file's owner and mode allow, by the rule Postgres applies to its own ssl_key_file: owned by the
// server's user with no access for group or others, or owned by root with at most group read. Returns an
// empty string when the file may be used, else why not (the file cannot be read, or who else can read it).
std::string key_file_permission_problem(const std::string &path);

// A server certificate (PEM, the chain after it) and its private key, ready for handshakes: TLS 1.2 and 1.3
// only, no compression, no renegotiation, ALPN http/1.1, session resumption (a server-side session cache and
// session tickets). Immutable once loaded; connections share it through shared_ptr, so a context replaced by
// a reload lives on until the last connection that uses it closes.
class TlsContext {
  public:
    // Reads and checks both files (the key's permissions first, see key_file_permission_problem). Throws
    // std::runtime_error naming the file and OpenSSL's reason when a file is missing, unreadable, not PEM,
    // or when the key does not belong to the certificate.
    static std::shared_ptr<TlsContext> load(const std::string &cert_file, const std::string &key_file);
    ~TlsContext();
    TlsContext(const TlsContext &) = delete;
    TlsContext &operator=(const TlsContext &) = delete;

    ssl_ctx_st *native() const { return context_; }
    // SHA-256 fingerprint of the certificate (hex, lower case): tells a renewed certificate from the same
    // one.
    const std::string &fingerprint() const { return fingerprint_; }
    // "subject CN=…, serial …, valid until …", for the log.
    const std::string &description() const { return description_; }

  private:
    TlsContext() = default;
    ssl_ctx_st *context_ = nullptr;
    std::string fingerprint_;
    std::string description_;
};

// What a non-blocking TLS call came to.
enum class TlsStatus {
    kDone,       // the handshake is complete, or bytes were read or written
    kWantRead,   // call again once the socket is readable
    kWantWrite,  // call again once the socket is writable
    kClosed,     // the peer closed the TLS session (close_notify) or the connection
    kFailed,     // a protocol or socket error: close the connection
};

// One connection's TLS session on a non-blocking socket the caller owns (it never closes the descriptor).
class TlsSession {
  public:
    TlsSession(std::shared_ptr<const TlsContext> context, int fd);  // throws std::bad_alloc
    ~TlsSession();
    TlsSession(const TlsSession &) = delete;
    TlsSession &operator=(const TlsSession &) = delete;

    // Advances the server side of the handshake.
    TlsStatus handshake();
    bool handshake_done() const { return handshake_done_; }
    // Reads decrypted bytes into `buffer`; *count is set when kDone. kWantWrite happens when TLS must send
    // before it can read (e.g. a key update).
    TlsStatus read(char *buffer, size_t size, size_t *count);
    // Writes up to `size` bytes; *count is set when kDone (a partial write is possible). After kWantRead or
    // kWantWrite, call again with the same bytes, at least as many (the buffer may have moved).
    TlsStatus write(const char *buffer, size_t size, size_t *count);
    // Decrypted or received bytes OpenSSL holds that no socket event will announce.
    bool has_buffered_input() const;
    // Sends close_notify, best effort (never waits).
    void close_notify();
    // The last failure's reason (OpenSSL's error queue), for counters and tests.
    const std::string &failure() const { return failure_; }
    // "TLSv1.3", "http/1.1", whether the session was resumed: after the handshake.
    std::string protocol_version() const;
    std::string alpn_protocol() const;
    bool session_reused() const;

  private:
    TlsStatus status_of(int result);

    std::shared_ptr<const TlsContext> context_;
    ssl_st *ssl_ = nullptr;
    bool handshake_done_ = false;
    std::string failure_;
};

// The first bytes a client sent on a port that speaks TLS: a TLS handshake record, something that looks like
// a plain HTTP request line (an upper-case method), or neither.
enum class FirstBytes { kTlsHandshake, kPlainHttp, kOther };
FirstBytes classify_first_bytes(const unsigned char *bytes, size_t size);

}  // namespace segment
