// Unit tests of src/core/json_poison: which messages of a body hold values Postgres cannot store, the exact
// byte span of every message, rebuilding a body without some of them, and check_json's tolerance of poison.
#include "core/json_poison.h"

#include <gtest/gtest.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <string>
#include <vector>

#include "core/webhook.h"

namespace {

using segment::MessageSplit;
using segment::PoisonKind;
using Shape = segment::MessageSplit::Shape;

// Whether `text` parses with RapidJSON (validating UTF-8) into strings Postgres can store.
struct StorableHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, StorableHandler> {
    bool String(const char *text, rapidjson::SizeType length, bool) {
        return segment::decoded_string_poison(text, length) == PoisonKind::None;
    }
    bool Key(const char *text, rapidjson::SizeType length, bool copy) { return String(text, length, copy); }
};
bool storable(std::string_view text) {
    rapidjson::MemoryStream stream(text.data(), text.size());
    StorableHandler handler;
    rapidjson::Reader reader;
    return !reader
                .Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(stream,
                                                                                               handler)
                .IsError();
}

// A track message whose deeply nested property holds `payload` (raw JSON string content).
std::string message(size_t index, const std::string &payload = "ok") {
    const std::string n = std::to_string(index);
    return R"({"type":"track","event":"E)" + n + R"(","userId":"u)" + n + R"(","messageId":"m)" + n +
           R"(","properties":{"a":{"b":[1,{"c":[null,{"d":")" + payload + R"("}]}]}}})";
}

struct Built {
    std::string body;
    std::vector<std::pair<size_t, size_t>> spans;
};

// `count` messages, the one at `poisoned` holding `payload`, as `[…]` or as an envelope.
Built batch(size_t count, size_t poisoned, const std::string &payload, bool envelope) {
    Built built;
    built.body = envelope ? R"({"writeKey":"wk","context":{"library":{"name":"x"}},"batch":[)" : "[";
    for (size_t i = 0; i < count; ++i) {
        if (i > 0) {
            built.body += i % 2 ? "," : " ,\n ";
        }
        const size_t begin = built.body.size();
        built.body += message(i, i == poisoned ? payload : "ok");
        built.spans.emplace_back(begin, built.body.size());
    }
    built.body += envelope ? R"(],"sentAt":"2024-01-01T00:00:00Z"})" : "]";
    return built;
}

struct PoisonCase {
    const char *name;
    std::string payload;
    PoisonKind kind;
    size_t offset_in_payload;
};

const std::vector<PoisonCase> kPoisons = {
    {"nul", "a\\u0000b", PoisonKind::NulCharacter, 1},
    {"lone high surrogate", "a\\ud800b", PoisonKind::InvalidUnicode, 1},
    {"high surrogate then a non-surrogate escape", "a\\uD800\\u0041", PoisonKind::InvalidUnicode, 1},
    {"lone high surrogate at the end", "ab\\udbff", PoisonKind::InvalidUnicode, 2},
    {"lone low surrogate", "\\udc00", PoisonKind::InvalidUnicode, 0},
    {"byte 0xff", "ab\xff", PoisonKind::InvalidUtf8, 2},
    {"encoded surrogate", "\xed\xa0\x80", PoisonKind::InvalidUtf8, 0},
    {"overlong slash", "x\xc0\xaf", PoisonKind::InvalidUtf8, 1},
    {"above U+10FFFF", "\xf4\x90\x80\x80", PoisonKind::InvalidUtf8, 0},
    {"truncated sequence", "x\xe2\x82", PoisonKind::InvalidUtf8, 1},
};

TEST(JsonPoison, OnePoisonedMessageOfAThousandAnywhereInABatch) {
    for (const bool envelope : {false, true}) {
        for (const PoisonCase &poison : kPoisons) {
            for (const size_t at : {size_t{0}, size_t{500}, size_t{999}}) {
                SCOPED_TRACE(std::string(poison.name) + " at " + std::to_string(at) +
                             (envelope ? " in an envelope" : " in an array"));
                const Built built = batch(1000, at, poison.payload, envelope);
                EXPECT_FALSE(storable(built.body));
                const MessageSplit split = segment::split_messages(built.body);
                ASSERT_TRUE(split.valid) << split.error;
                EXPECT_EQ(split.shape, envelope ? Shape::Envelope : Shape::Array);
                EXPECT_FALSE(split.envelope_poisoned);
                ASSERT_EQ(split.messages.size(), 1000u);
                std::vector<bool> drop(1000, false);
                for (size_t i = 0; i < 1000; ++i) {
                    const auto &span = split.messages[i];
                    ASSERT_EQ(span.begin, built.spans[i].first);
                    ASSERT_EQ(span.end, built.spans[i].second);
                    if (i != at) {
                        ASSERT_EQ(span.poison, PoisonKind::None) << i;
                        continue;
                    }
                    EXPECT_EQ(span.poison, poison.kind);
                    EXPECT_EQ(span.poison_count, 1u);
                    const size_t payload_at = built.body.find(poison.payload, span.begin);
                    EXPECT_EQ(span.poison_offset, payload_at + poison.offset_in_payload);
                    EXPECT_NE(span.detail.find("byte " + std::to_string(span.poison_offset)),
                              std::string::npos)
                        << span.detail;
                    drop[i] = true;
                }
                if (envelope) {
                    ASSERT_TRUE(split.write_key.has_value());
                    EXPECT_EQ(*split.write_key, "wk");
                }

                const std::string rest = segment::body_without(built.body, split, drop);
                EXPECT_TRUE(storable(rest));
                const MessageSplit again = segment::split_messages(rest);
                ASSERT_TRUE(again.valid);
                EXPECT_EQ(again.shape, split.shape);
                EXPECT_EQ(again.poison_count, 0u);
                ASSERT_EQ(again.messages.size(), 999u);
                for (size_t i = 0, j = 0; i < 1000; ++i) {
                    if (i == at) {
                        continue;
                    }
                    const auto &kept = again.messages[j++];
                    ASSERT_EQ(rest.substr(kept.begin, kept.end - kept.begin),
                              built.body.substr(built.spans[i].first,
                                                built.spans[i].second - built.spans[i].first));
                }
                // The envelope's own fields, byte for byte.
                EXPECT_EQ(rest.substr(0, again.list_begin), built.body.substr(0, split.list_begin));
                EXPECT_EQ(rest.substr(again.list_end), built.body.substr(split.list_end));

                const segment::JsonCheck check = segment::check_json(built.body);
                EXPECT_TRUE(check.valid) << check.error;
                EXPECT_TRUE(check.has_poison);
                EXPECT_EQ(check.message_count, 1000u);
                EXPECT_EQ(check.is_object, envelope);
                EXPECT_EQ(check.write_key.has_value(), envelope);
            }
        }
    }
}

TEST(JsonPoison, ABodyWithoutPoisonHasNone) {
    for (const std::string &body :
         {batch(1000, 1000, "", false).body, batch(50, 50, "", true).body, message(7), std::string("[]"),
          std::string(R"({"batch":[]})"), std::string(" 42 "), std::string(R"("text")")}) {
        ASSERT_TRUE(storable(body)) << body;
        const MessageSplit split = segment::split_messages(body);
        ASSERT_TRUE(split.valid) << split.error;
        EXPECT_EQ(split.poison_count, 0u);
        EXPECT_FALSE(split.envelope_poisoned);
        for (const auto &span : split.messages) {
            EXPECT_EQ(span.poison, PoisonKind::None);
            EXPECT_TRUE(span.detail.empty());
        }
        EXPECT_EQ(segment::body_without(body, split, {}), body);
        EXPECT_FALSE(segment::check_json(body).has_poison);
    }
}

TEST(JsonPoison, EscapesThatAreNotPoison) {
    for (const char *text : {
             R"({"a":"\\u0000"})",       // an escaped backslash, then the letters u0000
             R"({"a":"\\\\u0000"})",     // two escaped backslashes
             R"({"a":"\ud83d\ude00"})",  // a surrogate pair
             R"({"a":"\uD83D\uDE00\uDBFF\uDFFF"})",
             R"({"a":"\u0001\u001f\uffff\ufffd\u00e9"})",
             "{\"a\":\"\xf0\x9f\x98\x80 \xc3\xa9 \xe2\x82\xac \xf4\x8f\xbf\xbf\"}",  // raw UTF-8
             R"({"\"\\":"\"\\u0000\/"})",
         }) {
        const MessageSplit split = segment::split_messages(text);
        ASSERT_TRUE(split.valid) << text << ": " << split.error;
        EXPECT_EQ(split.poison_count, 0u) << text;
        EXPECT_EQ(split.messages.at(0).poison, PoisonKind::None) << text;
    }
}

TEST(JsonPoison, EscapesThatArePoison) {
    struct Case {
        const char *text;
        PoisonKind kind;
        size_t offset;
        size_t count;
    };
    for (const Case &c : {
             Case{R"({"a":"\\\u0000"})", PoisonKind::NulCharacter, 8,
                  1},  // an escaped backslash, then \u0000
             Case{R"({"a":"\ud800\ud83d\ude00"})", PoisonKind::InvalidUnicode, 6, 1},
             Case{R"({"a":"\ude00\ud83d"})", PoisonKind::InvalidUnicode, 6, 2},  // a pair in the wrong order
             Case{R"({"a\u0000":1})", PoisonKind::NulCharacter, 3, 1},           // in a key
             Case{"{\"a\":\"\\u0000\",\"b\":\"\xff\"}", PoisonKind::NulCharacter, 6, 2},
         }) {
        const MessageSplit split = segment::split_messages(c.text);
        ASSERT_TRUE(split.valid) << c.text << ": " << split.error;
        EXPECT_EQ(split.shape, Shape::Message);
        ASSERT_EQ(split.messages.size(), 1u);
        EXPECT_EQ(split.messages[0].poison, c.kind) << c.text;
        EXPECT_EQ(split.messages[0].poison_offset, c.offset) << c.text;
        EXPECT_EQ(split.messages[0].poison_count, c.count) << c.text;
        EXPECT_EQ(split.poison_count, c.count) << c.text;
        EXPECT_FALSE(split.envelope_poisoned);
    }
}

TEST(JsonPoison, SingleMessageAndScalar) {
    const std::string body = "\n {\"type\":\"track\",\"event\":\"a\\u0000\"} \r\n";
    const MessageSplit split = segment::split_messages(body);
    ASSERT_TRUE(split.valid);
    EXPECT_EQ(split.shape, Shape::Message);
    ASSERT_EQ(split.messages.size(), 1u);
    EXPECT_EQ(split.messages[0].begin, 2u);
    EXPECT_EQ(split.messages[0].end, body.size() - 3);
    EXPECT_EQ(split.messages[0].poison, PoisonKind::NulCharacter);
    EXPECT_EQ(segment::poison_reason_code(split.messages[0].poison), "nul_character");
    EXPECT_EQ(
        split.messages[0].detail,
        "the string at byte 28 of the body contains \\u0000, which Postgres cannot store in text or jsonb");
    EXPECT_EQ(segment::body_without(body, split, {true}), "");
    EXPECT_EQ(segment::body_without(body, split, {false}), body);

    const MessageSplit scalar = segment::split_messages(R"( "\udfff" )");
    ASSERT_TRUE(scalar.valid);
    EXPECT_EQ(scalar.shape, Shape::Scalar);
    ASSERT_EQ(scalar.messages.size(), 1u);
    EXPECT_EQ(scalar.messages[0].begin, 1u);
    EXPECT_EQ(scalar.messages[0].end, 9u);
    EXPECT_EQ(scalar.messages[0].poison, PoisonKind::InvalidUnicode);
    EXPECT_NE(scalar.messages[0].detail.find("(\\udfff)"), std::string::npos) << scalar.messages[0].detail;
}

TEST(JsonPoison, ScalarElementsAndWhitespace) {
    const std::string body = "[ 1 , \"x\\u0000\" ,\n true,{},[\"\xff\"],null , -2.5e3 ]";
    const MessageSplit split = segment::split_messages(body);
    ASSERT_TRUE(split.valid);
    std::vector<std::string> texts;
    for (const auto &span : split.messages) {
        texts.push_back(body.substr(span.begin, span.end - span.begin));
    }
    EXPECT_EQ(texts,
              (std::vector<std::string>{"1", "\"x\\u0000\"", "true", "{}", "[\"\xff\"]", "null", "-2.5e3"}));
    EXPECT_EQ(split.messages[1].poison, PoisonKind::NulCharacter);
    EXPECT_EQ(split.messages[4].poison, PoisonKind::InvalidUtf8);
    EXPECT_EQ(segment::poison_reason_code(split.messages[4].poison), "invalid_utf8");
    const std::string rest = segment::body_without(body, split, {true, true, false, false, true, true});
    EXPECT_EQ(rest, "[true,{},-2.5e3 ]");
    EXPECT_EQ(segment::body_without(body, split, std::vector<bool>(7, true)), "[]");
    EXPECT_EQ(segment::body_without(body, split, {false, true}), "[ 1,true,{},[\"\xff\"],null , -2.5e3 ]");
    EXPECT_TRUE(storable(segment::body_without(body, split, std::vector<bool>(7, true))));
}

TEST(JsonPoison, PoisonInTheEnvelopeItself) {
    const std::string body =
        R"({"context":{"page":{"title":"\ud800"}},"batch":[{"a":1},{"b":"\u0000"}],"sentAt":"x"})";
    const MessageSplit split = segment::split_messages(body);
    ASSERT_TRUE(split.valid);
    EXPECT_EQ(split.shape, Shape::Envelope);
    EXPECT_TRUE(split.envelope_poisoned);
    EXPECT_EQ(split.envelope_poison, PoisonKind::InvalidUnicode);
    EXPECT_EQ(segment::poison_reason_code(split.envelope_poison), "invalid_unicode");
    EXPECT_EQ(split.envelope_poison_offset, body.find("\\ud800"));
    EXPECT_NE(split.envelope_detail.find("lone UTF-16 surrogate"), std::string::npos);
    ASSERT_EQ(split.messages.size(), 2u);
    EXPECT_EQ(split.messages[0].poison, PoisonKind::None);
    EXPECT_EQ(split.messages[1].poison, PoisonKind::NulCharacter);
    EXPECT_EQ(split.poison_count, 2u);
    // A later "batch" wins, as in jsonb: the earlier one is part of the envelope.
    const MessageSplit twice = segment::split_messages(R"({"batch":[{"a":"\u0000"}],"batch":[{"b":1}]})");
    ASSERT_TRUE(twice.valid);
    ASSERT_EQ(twice.messages.size(), 1u);
    EXPECT_EQ(twice.messages[0].poison, PoisonKind::None);
    EXPECT_TRUE(twice.envelope_poisoned);
    // "batch" that is not an array: one message.
    EXPECT_EQ(segment::split_messages(R"({"batch":{"x":[1]},"y":[2]})").shape, Shape::Message);
    EXPECT_EQ(segment::split_messages(R"({"context":{"batch":[1]}})").shape, Shape::Message);
}

TEST(JsonPoison, WriteKeyHoldingPoisonIsNotAKey) {
    const MessageSplit split = segment::split_messages(R"({"writeKey":"k\u0000","batch":[{"a":"\ud800"}]})");
    ASSERT_TRUE(split.valid);
    EXPECT_FALSE(split.write_key.has_value());
    EXPECT_FALSE(segment::check_json(R"({"writeKey":"k\u0000","batch":[{"a":"\ud800"}]})").write_key);
    EXPECT_FALSE(segment::check_json(R"({"writeKey":"k\udc00","batch":[{"a":1}]})").write_key);
    const auto check = segment::check_json(R"({"writeKey":"good","batch":[{"a":"\ud800"},{}]})");
    ASSERT_TRUE(check.write_key.has_value());
    EXPECT_EQ(*check.write_key, "good");
    EXPECT_EQ(check.message_count, 2u);
}

TEST(JsonPoison, SyntaxErrorsAreNotJson) {
    for (const std::string &body :
         {std::string(""), std::string("{\"a\":"), std::string("[1,]"), std::string("{} {}"),
          std::string("\xff"), std::string("{\"a\":1}\xff"), std::string("[{\"a\":\"\\u0000\"},]"),
          std::string("{\"a\":\"\\u12\"}"), std::string("{\"a\":\"\\x\"}"), std::string("[\"a\nb\"]"),
          std::string("[\"\\ud800\\u12\"]"), std::string("{}\0junk", 7), std::string("[\"a\0\"]", 6),
          std::string(100000, '[')}) {
        const MessageSplit split = segment::split_messages(body);
        EXPECT_FALSE(split.valid) << body;
        EXPECT_FALSE(split.error.empty());
        EXPECT_EQ(segment::body_without(body, split, {true}), body);
        const auto check = segment::check_json(body);
        EXPECT_FALSE(check.valid) << body;
        EXPECT_EQ(check.error, split.error);
    }
    EXPECT_EQ(segment::split_messages("{\"a\":").error,
              "the body is not valid JSON: Invalid value. (at byte 5)");
    // The error names the real syntax error even after poison.
    EXPECT_EQ(segment::split_messages("[\"\xff\", }").error,
              "the body is not valid JSON: Invalid value. (at byte 6)");
}

TEST(JsonPoison, DeepNestingDoesNotRecurse) {
    const std::string deep =
        "[" + std::string(100000, '[') + "\"\\u0000\"" + std::string(100000, ']') + ",1]";
    const MessageSplit split = segment::split_messages(deep);
    ASSERT_TRUE(split.valid);
    ASSERT_EQ(split.messages.size(), 2u);
    EXPECT_EQ(split.messages[0].poison, PoisonKind::NulCharacter);
    EXPECT_EQ(split.messages[1].poison, PoisonKind::None);
    EXPECT_EQ(segment::body_without(deep, split, {true}), "[1]");
}

TEST(JsonPoison, DecodedStringChecks) {
    EXPECT_FALSE(segment::decoded_string_has_surrogate("", 0));
    EXPECT_FALSE(segment::decoded_string_has_surrogate("\xed\x9f\xbf", 3));  // U+D7FF
    EXPECT_TRUE(segment::decoded_string_has_surrogate("ab\xed\xa0\x80", 5));
    EXPECT_TRUE(segment::decoded_string_has_surrogate("\xed\xbf\xbf", 3));
    EXPECT_FALSE(segment::decoded_string_has_surrogate("\xed", 1));
    EXPECT_EQ(segment::decoded_string_poison("a\0b", 3), PoisonKind::NulCharacter);
    EXPECT_EQ(segment::decoded_string_poison("\xed\xb0\x80", 3), PoisonKind::InvalidUnicode);
    EXPECT_EQ(segment::decoded_string_poison("plain", 5), PoisonKind::None);
    EXPECT_EQ(segment::poison_reason_code(PoisonKind::None), "none");
}

TEST(JsonPoison, NewlineDelimitedLinesWithPoisonStillBecomeAnArray) {
    segment::SourceDirectory directory;
    std::vector<segment::SourceInfo> sources(1);
    sources[0].id = 1;
    sources[0].write_key = "k";
    directory.replace(std::move(sources));
    segment::WebhookContext context;
    context.sources = &directory;
    const std::string lines = message(1) + "\n" + message(2, "\\ud800") + "\n";
    const std::string request =
        "POST /v1/batch?writeKey=k HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(lines.size()) +
        "\r\n\r\n" + lines;
    segment::HttpRequestParser parser;
    const size_t fed = parser.feed(request.data(), request.size());
    parser.feed(request.data() + fed, request.size() - fed);  // the body, after the head
    ASSERT_EQ(parser.state(), segment::HttpParseState::kComplete);
    const auto decision = segment::decide(parser.take_request(), "192.0.2.1", context);
    EXPECT_EQ(decision.action, segment::WebhookAction::Ingest);
    EXPECT_TRUE(decision.json.valid);
    EXPECT_TRUE(decision.json.has_poison);
    EXPECT_EQ(decision.json.message_count, 2u);
    EXPECT_EQ(decision.rewritten_body, "[" + message(1) + "," + message(2, "\\ud800") + "]");
}

}  // namespace

// Numbers beyond a double's range are JSON (numeric may hold them): no syntax error, no poison, spans exact.
TEST(JsonPoison, NumbersBeyondADoubleAreNotSyntaxErrors) {
    const std::string body = "[{\"a\":1e400},{\"b\":" + std::string(400, '9') + "},{\"c\":-1.5e999999}]";
    const segment::MessageSplit split = segment::split_messages(body);
    ASSERT_TRUE(split.valid) << split.error;
    ASSERT_EQ(split.messages.size(), 3u);
    EXPECT_EQ(body.substr(split.messages[0].begin, split.messages[0].end - split.messages[0].begin),
              "{\"a\":1e400}");
    EXPECT_EQ(body.substr(split.messages[2].begin, split.messages[2].end - split.messages[2].begin),
              "{\"c\":-1.5e999999}");
    for (const segment::MessageSpan &span : split.messages) {
        EXPECT_EQ(span.poison, segment::PoisonKind::None);
    }
    EXPECT_EQ(segment::body_without(body, split, {false, true, false}),
              "[{\"a\":1e400},{\"c\":-1.5e999999}]");
    EXPECT_FALSE(segment::split_messages("[{\"a\":1e400,}]").valid);
}
