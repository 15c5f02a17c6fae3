// Which warehouse relations and columns a stream of messages calls for, as Segment's warehouses lay them out:
// for each (source, relation), the columns seen with a non-null value, their widened type and the JSON paths
// that feed them. The Postgres side walks each stored payload and hands over its leaves in the flat encoding
// below; this file names, classifies and merges them, and never looks at Postgres. Messages whose shape (the
// same keys with the same value types) was seen before cost one hash lookup.
#pragma once
#include "core/no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace segment {

// Warehouse column types, in widening order for numbers: bigint + double precision gives double precision;
// any other disagreement gives text.
enum class ColumnType : uint8_t { Boolean = 0, Bigint = 1, Double = 2, Timestamp = 3, Text = 4 };
ColumnType widen(ColumnType a, ColumnType b) noexcept;
const char *column_type_name(ColumnType type) noexcept;

// Where a leaf comes from: the message's context, properties or traits.
enum class Section : uint8_t { Context = 0, Properties = 1, Traits = 2 };
const char *section_key(Section section) noexcept;

enum class MessageKind : uint8_t { Track, Identify, Page, Screen, Group, Alias };

// The flat encoding of a message's leaves, written by the caller: for each leaf with a non-null value, one
// byte Section, one byte ColumnType, a little-endian uint16 key count, then each key of the path below the
// section as a little-endian uint32 length and its bytes.
void append_leaf_header(std::string &out, Section section, ColumnType type, uint16_t key_count);

// Postgres truncates identifiers to 63 bytes; names are cut the same way so that a query naming the long
// name finds the column.
constexpr size_t kMaxNameBytes = 63;

// The relation a track event gets (the snake_case of its name, cut to kMaxNameBytes), or "" when it gets
// none: an empty slug, or one equal to a standard relation's name (its events stay in `tracks` only).
std::string event_relation_name(std::string_view event);

struct DiscoveredColumn {
    std::string name;
    ColumnType type;
    std::vector<std::vector<std::string>> paths;  // each: section key, then the keys below it
};

struct DiscoveredRelation {
    int32_t source_id;
    std::string name;
    const char *kind;                 // tracks, identifies, pages, screens, groups, aliases, users or event
    std::vector<std::string> events;  // kind "event": the event names as sent, in order of appearance
    std::vector<DiscoveredColumn> columns;  // in order of first appearance
};

class WarehouseDiscovery {
  public:
    // `leaves` in the flat encoding above; `event` only matters for tracks. Malformed leaves are ignored.
    // Returns false when a message of the same shape was added before (nothing to do).
    bool add(int32_t source_id, MessageKind kind, std::string_view event, std::string_view leaves);

    // The shape of a message: its source, kind, event and leaves (keys and value types, not values). Two
    // messages of one shape call for the same relations and columns.
    static uint64_t shape_of(int32_t source_id, MessageKind kind, std::string_view event,
                             std::string_view leaves) noexcept;

    // What was found, as JSON: [{"source_id":…,"relation":…,"kind":…,"events":[…],"columns":[{"name":…,
    // "type":…,"paths":[[…],…]},…]},…].
    std::string to_json() const;

    const std::vector<DiscoveredRelation> &relations() const { return relations_; }

  private:
    DiscoveredRelation &relation(int32_t source_id, const std::string &name, const char *kind);
    void add_column(DiscoveredRelation &relation, const std::string &name, ColumnType type,
                    const std::vector<std::string> &path);

    std::unordered_set<uint64_t> seen_shapes_;
    std::vector<DiscoveredRelation> relations_;
    std::unordered_map<std::string, size_t> relation_index_;             // "source_id/name" -> index
    std::vector<std::unordered_map<std::string, size_t>> column_index_;  // per relation: name -> index
};

}  // namespace segment
