// Unit tests of src/core/tls and of the HttpServer over TLS: what the first bytes of a connection are, the
// key file permission rule, certificate loading and its errors, and requests over real TLS connections on
// loopback (a blocking OpenSSL client in a thread, the server polled by the test): handshake, ALPN, a large
// answer written in many records, pipelined requests, a plain HTTP request on the HTTPS port, and a server
// without a certificate.
#include "core/tls.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/http_server.h"
#include "http_server_test_util.h"

namespace {

using namespace http_server_test;
using segment::classify_first_bytes;
using segment::FirstBytes;
using segment::key_file_permission_problem;
using segment::TlsContext;

// A directory of its own for each test, with a self-signed certificate (serial 4242) and its key.
class TlsFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        char pattern[] = "/tmp/tls_test_XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        dir_ = pattern;
        cert_ = dir_ + "/server.crt";
        key_ = dir_ + "/server.key";
        write_certificate(cert_, key_, 4242);
    }
    void TearDown() override { ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0); }

    static void write_certificate(const std::string &cert_path, const std::string &key_path, long serial) {
        EVP_PKEY *key = EVP_EC_gen("P-256");
        ASSERT_NE(key, nullptr);
        X509 *certificate = X509_new();
        ASN1_INTEGER_set(X509_get_serialNumber(certificate), serial);
        X509_gmtime_adj(X509_getm_notBefore(certificate), 0);
        X509_gmtime_adj(X509_getm_notAfter(certificate), 3600);
        X509_set_pubkey(certificate, key);
        X509_NAME *name = X509_get_subject_name(certificate);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char *>("localhost"), -1, -1, 0);
        X509_set_issuer_name(certificate, name);
        ASSERT_GT(X509_sign(certificate, key, EVP_sha256()), 0);
        FILE *out = fopen(cert_path.c_str(), "w");
        PEM_write_X509(out, certificate);
        fclose(out);
        out = fopen(key_path.c_str(), "w");
        PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
        fclose(out);
        chmod(key_path.c_str(), 0600);
        X509_free(certificate);
        EVP_PKEY_free(key);
    }

    std::string dir_, cert_, key_;
};

TEST(TlsFirstBytes, TellsTlsFromPlainHttp) {
    const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00};
    EXPECT_EQ(classify_first_bytes(hello, sizeof hello), FirstBytes::kTlsHandshake);
    EXPECT_EQ(classify_first_bytes(reinterpret_cast<const unsigned char *>("POST /v1"), 8),
              FirstBytes::kPlainHttp);
    EXPECT_EQ(classify_first_bytes(reinterpret_cast<const unsigned char *>("G"), 1), FirstBytes::kPlainHttp);
    EXPECT_EQ(classify_first_bytes(reinterpret_cast<const unsigned char *>("get /"), 5), FirstBytes::kOther);
    const unsigned char ssl2[] = {0x80, 0x2e, 0x01};
    EXPECT_EQ(classify_first_bytes(ssl2, sizeof ssl2), FirstBytes::kOther);
    EXPECT_EQ(classify_first_bytes(hello, 0), FirstBytes::kOther);
}

TEST_F(TlsFiles, KeyFilePermissionsFollowPostgresRule) {
    EXPECT_EQ(key_file_permission_problem(key_), "");
    chmod(key_.c_str(), 0400);
    EXPECT_EQ(key_file_permission_problem(key_), "");
    chmod(key_.c_str(), 0640);
    EXPECT_NE(key_file_permission_problem(key_).find("has group or world access"), std::string::npos);
    chmod(key_.c_str(), 0644);
    EXPECT_NE(key_file_permission_problem(key_).find("has group or world access"), std::string::npos);
    EXPECT_NE(key_file_permission_problem(dir_ + "/missing.key").find("could not access"), std::string::npos);
}

TEST_F(TlsFiles, LoadsAndDescribesTheCertificate) {
    auto context = TlsContext::load(cert_, key_);
    ASSERT_NE(context, nullptr);
    EXPECT_EQ(context->fingerprint().size(), 64u);
    EXPECT_NE(context->description().find("CN = localhost"), std::string::npos) << context->description();
    EXPECT_NE(context->description().find("serial 1092"), std::string::npos) << context->description();
}

TEST_F(TlsFiles, LoadErrorsNameTheFile) {
    auto message_of = [](const std::string &cert, const std::string &key) {
        try {
            TlsContext::load(cert, key);
        } catch (const std::runtime_error &error) {
            return std::string(error.what());
        }
        return std::string("loaded");
    };
    EXPECT_NE(message_of(dir_ + "/missing.crt", key_).find("could not load server certificate file"),
              std::string::npos);
    std::ofstream(dir_ + "/garbage.crt")
        << "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
    EXPECT_NE(message_of(dir_ + "/garbage.crt", key_).find("garbage.crt"), std::string::npos);
    write_certificate(dir_ + "/other.crt", dir_ + "/other.key", 7);
    const std::string mismatch = message_of(cert_, dir_ + "/other.key");
    EXPECT_NE(mismatch.find("other.key"), std::string::npos) << mismatch;
    EXPECT_NE(mismatch.find("mismatch"), std::string::npos) << mismatch;
    chmod(key_.c_str(), 0644);
    EXPECT_NE(message_of(cert_, key_).find("group or world access"), std::string::npos);
}

// A blocking TLS client: handshake with ALPN, send `request`, read until `expected_bytes` arrived or the end.
struct ClientResult {
    bool connected = false;
    std::string alpn;
    std::string received;
};
ClientResult tls_client(int port, const std::string &request, size_t expected_bytes) {
    ClientResult result;
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    const unsigned char alpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(context, alpn, sizeof alpn);
    SSL *ssl = SSL_new(context);
    const int fd = connect_to(port);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
        result.connected = true;
        const unsigned char *name = nullptr;
        unsigned int length = 0;
        SSL_get0_alpn_selected(ssl, &name, &length);
        result.alpn.assign(reinterpret_cast<const char *>(name), name ? length : 0);
        SSL_write(ssl, request.data(), static_cast<int>(request.size()));
        char buffer[16384];
        while (result.received.size() < expected_bytes) {
            const int count = SSL_read(ssl, buffer, sizeof buffer);
            if (count <= 0) {
                break;
            }
            result.received.append(buffer, static_cast<size_t>(count));
        }
    }
    SSL_free(ssl);
    SSL_CTX_free(context);
    close(fd);
    return result;
}

// Polls `server` until `client` finishes, answering every request with `body`.
void serve_until_done(HttpServer &server, std::thread &client, std::atomic<bool> &done,
                      const std::string &body, size_t *answered) {
    for (int i = 0; i < 2000 && !done; ++i) {
        std::vector<ReadyRequest> ready;
        server.poll(0, ready);
        for (const ReadyRequest &request : ready) {
            server.respond(request.connection, ok(body), 0);
            ++*answered;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    client.join();
}

TEST_F(TlsFiles, ServesRequestsOverTls) {
    HttpServerOptions options = loopback_options();
    options.https = true;
    options.tls_context = TlsContext::load(cert_, key_);
    HttpServer server(options);
    const std::string big(300 * 1024, 'x');  // many TLS records, more than a socket buffer takes at once
    const std::string one = "POST /v1/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    std::atomic<bool> done{false};
    ClientResult result;
    std::thread client([&] {
        result = tls_client(server.port(), one + one, 2 * big.size());
        done = true;
    });
    size_t answered = 0;
    serve_until_done(server, client, done, big, &answered);
    EXPECT_TRUE(result.connected);
    EXPECT_EQ(result.alpn, "http/1.1");
    EXPECT_EQ(answered, 2u);  // two pipelined requests
    EXPECT_EQ(result.received.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
    EXPECT_GT(result.received.size(), 2 * big.size());
    EXPECT_EQ(server.counters().tls_handshakes, 1u);
}

TEST_F(TlsFiles, PlainHttpOnTheHttpsPortGets400) {
    HttpServerOptions options = loopback_options();
    options.https = true;
    options.tls_context = TlsContext::load(cert_, key_);
    HttpServer server(options);
    const int client = connect_to(server.port());
    send_all(client, "POST /v1/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    const std::string answer = read_available(client, server);
    EXPECT_EQ(answer.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << answer;
    EXPECT_NE(answer.find("\"https_required\""), std::string::npos) << answer;
    EXPECT_EQ(server.counters().plain_http_refused, 1u);
    EXPECT_EQ(server.requests_out(), 0u);
    close(client);
}

TEST_F(TlsFiles, WithoutACertificateHandshakesAreRefusedUntilOneIsSet) {
    HttpServerOptions options = loopback_options();
    options.https = true;
    HttpServer server(options);
    std::atomic<bool> done{false};
    ClientResult result;
    std::thread client([&] {
        result = tls_client(server.port(), "", 0);
        done = true;
    });
    size_t answered = 0;
    serve_until_done(server, client, done, "", &answered);
    EXPECT_FALSE(result.connected);
    EXPECT_EQ(server.counters().tls_handshakes_failed, 1u);

    server.set_tls_context(TlsContext::load(cert_, key_));
    done = false;
    std::thread second([&] {
        result = tls_client(server.port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 10);
        done = true;
    });
    serve_until_done(server, second, done, "{}", &answered);
    EXPECT_TRUE(result.connected);
    EXPECT_EQ(answered, 1u);
}

}  // namespace
