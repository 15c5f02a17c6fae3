// TLS for the ingest port over OpenSSL: loading a certificate and key into a context with the protocol
// choices of the README (TLS 1.2 and 1.3, forward-secret AEAD ciphers for 1.2, no compression or
// renegotiation, ALPN http/1.1, resumption), and one non-blocking server session per connection. Never
// blocks, never logs, never includes Postgres; OpenSSL's error queue is cleared before every call so that an
// error left by another user of libcrypto in this process is never blamed on a connection.
#include "core/no_postgres.h"
#include "core/tls.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>

namespace segment {
namespace {

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char kSessionIdContext[] = "segment_webhook";
constexpr long kSessionCacheSize = 20480;
constexpr long kSessionTimeoutSeconds = 3600;
// TLS 1.2: ECDHE key exchange with an AEAD cipher only (TLS 1.3 suites are all of that kind already).
constexpr const char *kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Everything on OpenSSL's error queue, as one line (the queue is emptied).
std::string openssl_errors() {
    std::string text;
    char line[256];
    while (unsigned long code = ERR_get_error()) {
        ERR_error_string_n(code, line, sizeof line);
        if (!text.empty()) {
            text += "; ";
        }
        text += line;
    }
    return text.empty() ? "no reason given by OpenSSL" : text;
}

// Refuses a passphrase-protected key instead of letting OpenSSL prompt on the server's terminal.
int no_passphrase(char *, int, int, void *) {
    return 0;
}

int select_http11(SSL *, const unsigned char **out, unsigned char *out_length, const unsigned char *offered,
                  unsigned int offered_length, void *) {
    unsigned char *chosen = nullptr;
    unsigned char chosen_length = 0;
    if (SSL_select_next_proto(&chosen, &chosen_length, kAlpnHttp11, sizeof kAlpnHttp11, offered,
                              offered_length) != OPENSSL_NPN_NEGOTIATED) {
        // The client speaks only protocols we do not (h2 alone): RFC 7301 says to refuse the handshake.
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = chosen;
    *out_length = chosen_length;
    return SSL_TLSEXT_ERR_OK;
}

std::string bio_text(BIO *bio) {
    char *data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    return length > 0 ? std::string(data, static_cast<size_t>(length)) : std::string();
}

void describe_certificate(X509 *certificate, std::string *fingerprint, std::string *description) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    if (X509_digest(certificate, EVP_sha256(), digest, &digest_length) == 1) {
        static const char kHex[] = "0123456789abcdef";
        for (unsigned int i = 0; i < digest_length; ++i) {
            fingerprint->push_back(kHex[digest[i] >> 4]);
            fingerprint->push_back(kHex[digest[i] & 15]);
        }
    }
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == nullptr) {
        throw std::bad_alloc();
    }
    BIO_puts(bio, "subject ");
    X509_NAME_print_ex(bio, X509_get_subject_name(certificate), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
    BIO_puts(bio, ", serial ");
    if (BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr)) {
        if (char *hex = BN_bn2hex(serial)) {
            BIO_puts(bio, hex);
            OPENSSL_free(hex);
        }
        BN_free(serial);
    }
    BIO_puts(bio, ", valid until ");
    ASN1_TIME_print(bio, X509_get0_notAfter(certificate));
    *description = bio_text(bio);
    BIO_free(bio);
}

}  // namespace

std::string key_file_permission_problem(const std::string &path) {
    struct stat status;
    if (stat(path.c_str(), &status) != 0) {
        return "could not access private key file \"" + path + "\": " + std::strerror(errno);
    }
    if (!S_ISREG(status.st_mode)) {
        return "private key file \"" + path + "\" is not a regular file";
    }
    if (status.st_uid != geteuid() && status.st_uid != 0) {
        return "private key file \"" + path + "\" must be owned by the database user or root";
    }
    if ((status.st_uid == geteuid() && (status.st_mode & (S_IRWXG | S_IRWXO)) != 0) ||
        (status.st_uid == 0 && (status.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) != 0)) {
        return "private key file \"" + path +
               "\" has group or world access: it must have permissions u=rw (0600) or less if owned by the "
               "database user, or u=rw,g=r (0640) or less if owned by root";
    }
    return std::string();
}

std::shared_ptr<TlsContext> TlsContext::load(const std::string &cert_file, const std::string &key_file) {
    const std::string key_problem = key_file_permission_problem(key_file);
    if (!key_problem.empty()) {
        throw std::runtime_error(key_problem);
    }
    std::shared_ptr<TlsContext> loaded(new TlsContext());
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_server_method());
    if (context == nullptr) {
        throw std::runtime_error("could not create a TLS context: " + openssl_errors());
    }
    loaded->context_ = context;
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION);
    SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // The answer buffer may grow (and move) between the tries of one write; idle connections give their
    // 34 kB of record buffers back.
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(context, kTls12Ciphers) != 1) {
        throw std::runtime_error("could not set the TLS 1.2 ciphers: " + openssl_errors());
    }
    SSL_CTX_set_default_passwd_cb(context, no_passphrase);
    SSL_CTX_set_alpn_select_cb(context, select_http11, nullptr);
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(context, kSessionIdContext, sizeof kSessionIdContext - 1);
    SSL_CTX_sess_set_cache_size(context, kSessionCacheSize);
    SSL_CTX_set_timeout(context, kSessionTimeoutSeconds);

    if (SSL_CTX_use_certificate_chain_file(context, cert_file.c_str()) != 1) {
        throw std::runtime_error("could not load server certificate file \"" + cert_file +
                                 "\": " + openssl_errors());
    }
    if (SSL_CTX_use_PrivateKey_file(context, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        throw std::runtime_error("could not load private key file \"" + key_file + "\": " + openssl_errors() +
                                 " (a key protected by a passphrase cannot be used)");
    }
    if (SSL_CTX_check_private_key(context) != 1) {
        throw std::runtime_error("private key file \"" + key_file + "\" does not match certificate file \"" +
                                 cert_file + "\": " + openssl_errors());
    }
    describe_certificate(SSL_CTX_get0_certificate(context), &loaded->fingerprint_, &loaded->description_);
    return loaded;
}

TlsContext::~TlsContext() {
    SSL_CTX_free(context_);
}

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, int fd) : context_(std::move(context)) {
    ERR_clear_error();
    ssl_ = SSL_new(context_->native());
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd) != 1) {
        SSL_free(ssl_);
        throw std::bad_alloc();
    }
    SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() {
    SSL_free(ssl_);
}

TlsStatus TlsSession::status_of(int result) {
    const int saved_errno = errno;
    switch (SSL_get_error(ssl_, result)) {
        case SSL_ERROR_WANT_READ:
            return TlsStatus::kWantRead;
        case SSL_ERROR_WANT_WRITE:
            return TlsStatus::kWantWrite;
        case SSL_ERROR_ZERO_RETURN:
            return TlsStatus::kClosed;
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_error() == 0) {
                failure_ = saved_errno != 0 ? std::strerror(saved_errno) : "connection closed";
                return saved_errno == 0 ? TlsStatus::kClosed : TlsStatus::kFailed;
            }
            failure_ = openssl_errors();
            return TlsStatus::kFailed;
        default:
            failure_ = openssl_errors();
            return TlsStatus::kFailed;
    }
}

TlsStatus TlsSession::handshake() {
    if (handshake_done_) {
        return TlsStatus::kDone;
    }
    ERR_clear_error();
    errno = 0;
    const int result = SSL_do_handshake(ssl_);
    if (result == 1) {
        handshake_done_ = true;
        return TlsStatus::kDone;
    }
    return status_of(result);
}

TlsStatus TlsSession::read(char *buffer, size_t size, size_t *count) {
    ERR_clear_error();
    errno = 0;
    const int result = SSL_read_ex(ssl_, buffer, size, count);
    return result == 1 ? TlsStatus::kDone : status_of(result);
}

TlsStatus TlsSession::write(const char *buffer, size_t size, size_t *count) {
    ERR_clear_error();
    errno = 0;
    const int result = SSL_write_ex(ssl_, buffer, size, count);
    return result == 1 ? TlsStatus::kDone : status_of(result);
}

bool TlsSession::has_buffered_input() const {
    return SSL_has_pending(ssl_) == 1;
}

void TlsSession::close_notify() {
    if (handshake_done_) {
        ERR_clear_error();
        SSL_shutdown(ssl_);
        ERR_clear_error();
    }
}

std::string TlsSession::protocol_version() const {
    return SSL_get_version(ssl_);
}

std::string TlsSession::alpn_protocol() const {
    const unsigned char *name = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(ssl_, &name, &length);
    return std::string(reinterpret_cast<const char *>(name), name ? length : 0);
}

bool TlsSession::session_reused() const {
    return SSL_session_reused(ssl_) == 1;
}

FirstBytes classify_first_bytes(const unsigned char *bytes, size_t size) {
    if (size == 0) {
        return FirstBytes::kOther;
    }
    if (bytes[0] == 0x16) {
        return FirstBytes::kTlsHandshake;  // a TLS record of type handshake: a ClientHello
    }
    for (size_t i = 0; i < size; ++i) {
        if (bytes[i] == ' ' && i > 0) {
            break;
        }
        if (bytes[i] < 'A' || bytes[i] > 'Z') {
            return FirstBytes::kOther;
        }
    }
    return FirstBytes::kPlainHttp;  // "POST ", "GET /", …: a request line's method
}

}  // namespace segment
