// Naming, classifying and merging the leaves of stored messages into warehouse relations. See
// warehouse_discovery.h.
#include "core/warehouse_discovery.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>

#include "core/snake_case.h"

namespace segment {
namespace {

// Columns every relation has (from the message itself), and those of each kind: a property or trait of the
// same name is discarded, as Segment does, and stays in the payload.
const char *const kCommonColumns[] = {"id",      "received_at",  "sent_at", "timestamp", "original_timestamp",
                                      "user_id", "anonymous_id", "uuid_ts"};

bool is_reserved(const std::string &name, const char *kind) {
    for (const char *common : kCommonColumns) {
        if (name == common) {
            return true;
        }
    }
    // Context columns are all named context_…: a property or trait cannot take one of their names.
    if (name == "context" || name.compare(0, 8, "context_") == 0) {
        return true;
    }
    const std::string_view k(kind);
    if (k == "tracks" || k == "event") {
        return name == "event" || name == "event_text";
    }
    if (k == "pages") {
        return name == "name" || name == "category" || name == "url" || name == "path" || name == "title" ||
               name == "search" || name == "referrer";
    }
    if (k == "screens") {
        return name == "name";
    }
    if (k == "groups") {
        return name == "group_id";
    }
    if (k == "aliases") {
        return name == "previous_id";
    }
    return false;
}

const char *const kStandardRelations[] = {"tracks", "identifies", "pages", "screens",
                                          "groups", "aliases",    "users"};

uint64_t fnv1a(uint64_t hash, const void *data, size_t length) {
    const unsigned char *bytes = static_cast<const unsigned char *>(data);
    for (size_t i = 0; i < length; ++i) {
        hash ^= bytes[i];
        hash *= 1099511628211ull;
    }
    return hash;
}

uint32_t read_u32(const char *at) {
    const unsigned char *bytes = reinterpret_cast<const unsigned char *>(at);
    return uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8 | uint32_t(bytes[2]) << 16 | uint32_t(bytes[3]) << 24;
}

struct Leaf {
    Section section;
    ColumnType type;
    std::vector<std::string> path;  // section key first
    std::string name;               // the column name
};

// Decodes the flat encoding; stops at the first malformed record.
std::vector<Leaf> decode_leaves(std::string_view leaves) {
    std::vector<Leaf> decoded;
    size_t at = 0;
    while (at + 4 <= leaves.size()) {
        const auto section = static_cast<uint8_t>(leaves[at]);
        const auto type = static_cast<uint8_t>(leaves[at + 1]);
        const uint16_t keys = uint16_t(static_cast<unsigned char>(leaves[at + 2])) |
                              uint16_t(static_cast<unsigned char>(leaves[at + 3])) << 8;
        at += 4;
        if (section > 2 || type > 4) {
            break;
        }
        Leaf leaf{static_cast<Section>(section), static_cast<ColumnType>(type), {}, {}};
        leaf.path.emplace_back(section_key(leaf.section));
        std::string joined = leaf.section == Section::Context ? "context" : "";
        bool complete = true;
        for (uint16_t k = 0; k < keys; ++k) {
            if (at + 4 > leaves.size()) {
                complete = false;
                break;
            }
            const uint32_t length = read_u32(leaves.data() + at);
            at += 4;
            if (length > leaves.size() - at) {
                complete = false;
                break;
            }
            leaf.path.emplace_back(leaves.substr(at, length));
            if (!joined.empty()) {
                joined += '_';
            }
            joined.append(leaves.data() + at, length);
            at += length;
        }
        if (!complete) {
            break;
        }
        leaf.name = snake_case(joined);
        if (leaf.name.size() > kMaxNameBytes) {
            leaf.name.resize(kMaxNameBytes);
        }
        decoded.push_back(std::move(leaf));
    }
    return decoded;
}

}  // namespace

ColumnType widen(ColumnType a, ColumnType b) noexcept {
    if (a == b) {
        return a;
    }
    if ((a == ColumnType::Bigint && b == ColumnType::Double) ||
        (a == ColumnType::Double && b == ColumnType::Bigint)) {
        return ColumnType::Double;
    }
    return ColumnType::Text;
}

const char *column_type_name(ColumnType type) noexcept {
    switch (type) {
        case ColumnType::Boolean:
            return "boolean";
        case ColumnType::Bigint:
            return "bigint";
        case ColumnType::Double:
            return "double precision";
        case ColumnType::Timestamp:
            return "timestamptz";
        case ColumnType::Text:
            break;
    }
    return "text";
}

const char *section_key(Section section) noexcept {
    switch (section) {
        case Section::Context:
            return "context";
        case Section::Properties:
            return "properties";
        case Section::Traits:
            break;
    }
    return "traits";
}

void append_leaf_header(std::string &out, Section section, ColumnType type, uint16_t key_count) {
    out.push_back(static_cast<char>(section));
    out.push_back(static_cast<char>(type));
    out.push_back(static_cast<char>(key_count & 0xff));
    out.push_back(static_cast<char>(key_count >> 8));
}

std::string event_relation_name(std::string_view event) {
    std::string name = snake_case(event);
    if (name.size() > kMaxNameBytes) {
        name.resize(kMaxNameBytes);
    }
    for (const char *standard : kStandardRelations) {
        if (name == standard) {
            return {};
        }
    }
    return name;
}

DiscoveredRelation &WarehouseDiscovery::relation(int32_t source_id, const std::string &name,
                                                 const char *kind) {
    std::string key = std::to_string(source_id) + '/' + name;
    auto found = relation_index_.find(key);
    if (found != relation_index_.end()) {
        return relations_[found->second];
    }
    relation_index_.emplace(std::move(key), relations_.size());
    relations_.push_back(DiscoveredRelation{source_id, name, kind, {}, {}});
    column_index_.emplace_back();
    return relations_.back();
}

void WarehouseDiscovery::add_column(DiscoveredRelation &relation, const std::string &name, ColumnType type,
                                    const std::vector<std::string> &path) {
    auto &index = column_index_[static_cast<size_t>(&relation - relations_.data())];
    auto found = index.find(name);
    if (found == index.end()) {
        index.emplace(name, relation.columns.size());
        relation.columns.push_back(DiscoveredColumn{name, type, {path}});
        return;
    }
    DiscoveredColumn &column = relation.columns[found->second];
    column.type = widen(column.type, type);
    for (const auto &known : column.paths) {
        if (known == path) {
            return;
        }
    }
    column.paths.push_back(path);
}

uint64_t WarehouseDiscovery::shape_of(int32_t source_id, MessageKind kind, std::string_view event,
                                      std::string_view leaves) noexcept {
    uint64_t shape = 14695981039346656037ull;
    shape = fnv1a(shape, &source_id, sizeof source_id);
    shape = fnv1a(shape, &kind, sizeof kind);
    const uint64_t event_length = event.size();
    shape = fnv1a(shape, &event_length, sizeof event_length);
    shape = fnv1a(shape, event.data(), event.size());
    return fnv1a(shape, leaves.data(), leaves.size());
}

bool WarehouseDiscovery::add(int32_t source_id, MessageKind kind, std::string_view event,
                             std::string_view leaves) {
    if (!seen_shapes_.insert(shape_of(source_id, kind, event, leaves)).second) {
        return false;
    }

    // The relations this message feeds: (name, kind, which sections).
    struct Target {
        std::string name;
        const char *kind;
        bool context, properties, traits;
    };
    std::vector<Target> targets;
    switch (kind) {
        case MessageKind::Track: {
            targets.push_back({"tracks", "tracks", true, false, false});
            std::string name = event_relation_name(event);
            if (!name.empty()) {
                targets.push_back({std::move(name), "event", true, true, false});
            }
            break;
        }
        case MessageKind::Page:
            targets.push_back({"pages", "pages", true, true, false});
            break;
        case MessageKind::Screen:
            targets.push_back({"screens", "screens", true, true, false});
            break;
        case MessageKind::Identify:
            targets.push_back({"identifies", "identifies", true, false, true});
            targets.push_back({"users", "users", false, false, true});
            break;
        case MessageKind::Group:
            targets.push_back({"groups", "groups", true, false, true});
            break;
        case MessageKind::Alias:
            targets.push_back({"aliases", "aliases", true, false, false});
            break;
    }

    const std::vector<Leaf> decoded = decode_leaves(leaves);
    for (const Target &target : targets) {
        DiscoveredRelation &found = relation(source_id, target.name, target.kind);
        if (std::strcmp(target.kind, "event") == 0) {
            bool known = false;
            for (const auto &name : found.events) {
                known = known || name == event;
            }
            if (!known) {
                found.events.emplace_back(event);
            }
        }
        for (const Leaf &leaf : decoded) {
            const bool wanted = (leaf.section == Section::Context && target.context) ||
                                (leaf.section == Section::Properties && target.properties) ||
                                (leaf.section == Section::Traits && target.traits);
            if (!wanted || leaf.name.empty() || leaf.name == "context") {
                continue;
            }
            if (leaf.section != Section::Context && is_reserved(leaf.name, target.kind)) {
                continue;
            }
            add_column(found, leaf.name, leaf.type, leaf.path);
        }
    }
    return true;
}

std::string WarehouseDiscovery::to_json() const {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartArray();
    for (const DiscoveredRelation &relation : relations_) {
        writer.StartObject();
        writer.Key("source_id");
        writer.Int(relation.source_id);
        writer.Key("relation");
        writer.String(relation.name.data(), static_cast<rapidjson::SizeType>(relation.name.size()));
        writer.Key("kind");
        writer.String(relation.kind);
        writer.Key("events");
        writer.StartArray();
        for (const std::string &event : relation.events) {
            writer.String(event.data(), static_cast<rapidjson::SizeType>(event.size()));
        }
        writer.EndArray();
        writer.Key("columns");
        writer.StartArray();
        for (const DiscoveredColumn &column : relation.columns) {
            writer.StartObject();
            writer.Key("name");
            writer.String(column.name.data(), static_cast<rapidjson::SizeType>(column.name.size()));
            writer.Key("type");
            writer.String(column_type_name(column.type));
            writer.Key("paths");
            writer.StartArray();
            for (const auto &path : column.paths) {
                writer.StartArray();
                for (const std::string &key : path) {
                    writer.String(key.data(), static_cast<rapidjson::SizeType>(key.size()));
                }
                writer.EndArray();
            }
            writer.EndArray();
            writer.EndObject();
        }
        writer.EndArray();
        writer.EndObject();
    }
    writer.EndArray();
    return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace segment
