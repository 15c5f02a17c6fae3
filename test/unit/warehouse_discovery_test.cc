// Unit tests of src/core/warehouse_discovery: which relations and columns messages call for, the names
// (flattened with '_', snake_case, cut at 63 bytes), discarded reserved names, type widening and shape
// deduplication.
#include "core/warehouse_discovery.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using segment::ColumnType;
using segment::MessageKind;
using segment::Section;
using segment::WarehouseDiscovery;

struct Leaves {
    std::string bytes;
    Leaves &add(Section section, ColumnType type, const std::vector<std::string> &keys) {
        segment::append_leaf_header(bytes, section, type, static_cast<uint16_t>(keys.size()));
        for (const std::string &key : keys) {
            const uint32_t length = static_cast<uint32_t>(key.size());
            for (int shift = 0; shift < 32; shift += 8) {
                bytes.push_back(static_cast<char>((length >> shift) & 0xff));
            }
            bytes += key;
        }
        return *this;
    }
};

const segment::DiscoveredRelation *find(const WarehouseDiscovery &discovery, const std::string &name) {
    for (const auto &relation : discovery.relations()) {
        if (relation.name == name) {
            return &relation;
        }
    }
    return nullptr;
}

const segment::DiscoveredColumn *column(const segment::DiscoveredRelation *relation,
                                        const std::string &name) {
    if (relation == nullptr) {
        return nullptr;
    }
    for (const auto &column : relation->columns) {
        if (column.name == name) {
            return &column;
        }
    }
    return nullptr;
}

TEST(WarehouseDiscovery, TrackFeedsTracksAndItsEventRelation) {
    WarehouseDiscovery discovery;
    Leaves leaves;
    leaves.add(Section::Context, ColumnType::Text, {"campaign", "source"})
        .add(Section::Context, ColumnType::Text, {"userAgent"})
        .add(Section::Properties, ColumnType::Double, {"revenue"})
        .add(Section::Properties, ColumnType::Text, {"Product ID", "sku"})
        .add(Section::Properties, ColumnType::Text, {"user_id"})
        .add(Section::Properties, ColumnType::Text, {"context_ip"});
    discovery.add(7, MessageKind::Track, "Order Completed", leaves.bytes);

    const auto *tracks = find(discovery, "tracks");
    ASSERT_NE(tracks, nullptr);
    EXPECT_STREQ(tracks->kind, "tracks");
    ASSERT_EQ(tracks->columns.size(), 2u);
    EXPECT_EQ(tracks->columns[0].name, "context_campaign_source");
    EXPECT_EQ(tracks->columns[1].name, "context_user_agent");
    EXPECT_EQ(tracks->columns[0].paths,
              (std::vector<std::vector<std::string>>{{"context", "campaign", "source"}}));

    const auto *event = find(discovery, "order_completed");
    ASSERT_NE(event, nullptr);
    EXPECT_STREQ(event->kind, "event");
    EXPECT_EQ(event->source_id, 7);
    EXPECT_EQ(event->events, std::vector<std::string>{"Order Completed"});
    ASSERT_NE(column(event, "revenue"), nullptr);
    EXPECT_EQ(column(event, "revenue")->type, ColumnType::Double);
    ASSERT_NE(column(event, "product_id_sku"), nullptr);
    EXPECT_EQ(column(event, "product_id_sku")->paths,
              (std::vector<std::vector<std::string>>{{"properties", "Product ID", "sku"}}));
    // Reserved names are discarded, as Segment does: user_id, and anything named like a context column.
    EXPECT_EQ(column(event, "user_id"), nullptr);
    EXPECT_EQ(column(event, "context_ip"), nullptr);
    EXPECT_NE(column(event, "context_user_agent"), nullptr);
}

TEST(WarehouseDiscovery, EventSpellingsShareOneRelationAndStandardNamesGetNone) {
    WarehouseDiscovery discovery;
    discovery.add(1, MessageKind::Track, "Order Completed", "");
    discovery.add(1, MessageKind::Track, "order_completed", "");
    discovery.add(1, MessageKind::Track, "Pages", "");
    discovery.add(1, MessageKind::Track, "$$$", "");
    const auto *event = find(discovery, "order_completed");
    ASSERT_NE(event, nullptr);
    EXPECT_EQ(event->events, (std::vector<std::string>{"Order Completed", "order_completed"}));
    EXPECT_EQ(discovery.relations().size(), 2u);  // tracks and order_completed
    EXPECT_EQ(segment::event_relation_name("Users"), "");
    EXPECT_EQ(segment::event_relation_name(std::string(100, 'a')), std::string(63, 'a'));
}

TEST(WarehouseDiscovery, KindsAndSections) {
    WarehouseDiscovery discovery;
    Leaves traits;
    traits.add(Section::Traits, ColumnType::Text, {"email"})
        .add(Section::Traits, ColumnType::Text, {"address", "street"})
        .add(Section::Traits, ColumnType::Text, {"id"})
        .add(Section::Context, ColumnType::Text, {"ip"});
    discovery.add(1, MessageKind::Identify, "", traits.bytes);
    discovery.add(1, MessageKind::Group, "", traits.bytes);
    Leaves page;
    page.add(Section::Properties, ColumnType::Text, {"url"})
        .add(Section::Properties, ColumnType::Bigint, {"depth"});
    discovery.add(1, MessageKind::Page, "", page.bytes);

    EXPECT_NE(column(find(discovery, "identifies"), "email"), nullptr);
    EXPECT_NE(column(find(discovery, "identifies"), "address_street"), nullptr);
    EXPECT_NE(column(find(discovery, "identifies"), "context_ip"), nullptr);
    EXPECT_EQ(column(find(discovery, "identifies"), "id"), nullptr);
    EXPECT_NE(column(find(discovery, "users"), "email"), nullptr);
    EXPECT_EQ(column(find(discovery, "users"), "context_ip"), nullptr);  // users: traits only
    EXPECT_NE(column(find(discovery, "groups"), "email"), nullptr);
    EXPECT_EQ(column(find(discovery, "pages"), "url"), nullptr);  // a standard column of pages
    EXPECT_NE(column(find(discovery, "pages"), "depth"), nullptr);
}

TEST(WarehouseDiscovery, TypesWidenAndPathsMerge) {
    EXPECT_EQ(segment::widen(ColumnType::Bigint, ColumnType::Double), ColumnType::Double);
    EXPECT_EQ(segment::widen(ColumnType::Double, ColumnType::Bigint), ColumnType::Double);
    EXPECT_EQ(segment::widen(ColumnType::Bigint, ColumnType::Text), ColumnType::Text);
    EXPECT_EQ(segment::widen(ColumnType::Boolean, ColumnType::Bigint), ColumnType::Text);
    EXPECT_EQ(segment::widen(ColumnType::Timestamp, ColumnType::Text), ColumnType::Text);
    EXPECT_EQ(segment::widen(ColumnType::Timestamp, ColumnType::Timestamp), ColumnType::Timestamp);

    WarehouseDiscovery discovery;
    Leaves first, second, third;
    first.add(Section::Properties, ColumnType::Bigint, {"price"})
        .add(Section::Context, ColumnType::Text, {"userAgent"});
    second.add(Section::Properties, ColumnType::Double, {"price"})
        .add(Section::Context, ColumnType::Text, {"user_agent"});
    third.add(Section::Properties, ColumnType::Boolean, {"price"});
    discovery.add(1, MessageKind::Track, "Bought", first.bytes);
    discovery.add(1, MessageKind::Track, "Bought", second.bytes);
    EXPECT_EQ(column(find(discovery, "bought"), "price")->type, ColumnType::Double);
    discovery.add(1, MessageKind::Track, "Bought", third.bytes);
    EXPECT_EQ(column(find(discovery, "bought"), "price")->type, ColumnType::Text);
    EXPECT_EQ(column(find(discovery, "tracks"), "context_user_agent")->paths,
              (std::vector<std::vector<std::string>>{{"context", "userAgent"}, {"context", "user_agent"}}));
}

TEST(WarehouseDiscovery, JsonAndMalformedInput) {
    WarehouseDiscovery discovery;
    Leaves leaves;
    leaves.add(Section::Properties, ColumnType::Timestamp, {"at \"quoted\""});
    std::string truncated = leaves.bytes.substr(0, leaves.bytes.size() - 3);
    discovery.add(2, MessageKind::Track, "A", truncated);  // a cut record is ignored
    EXPECT_EQ(find(discovery, "a")->columns.size(), 0u);
    discovery.add(2, MessageKind::Track, "A", leaves.bytes);
    EXPECT_EQ(
        discovery.to_json(),
        "[{\"source_id\":2,\"relation\":\"tracks\",\"kind\":\"tracks\",\"events\":[],\"columns\":[]},"
        "{\"source_id\":2,\"relation\":\"a\",\"kind\":\"event\",\"events\":[\"A\"],\"columns\":[{\"name\":"
        "\"at_quoted\",\"type\":\"timestamptz\",\"paths\":[[\"properties\",\"at \\\"quoted\\\"\"]]}]}]");
}

}  // namespace
