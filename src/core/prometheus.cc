// The Prometheus text exposition format (0.0.4). See prometheus.h.
#include "core/prometheus.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace segment {
namespace {

// Length of the valid UTF-8 sequence at s[i] (RFC 3629), or 0 when there is none.
size_t valid_utf8_length(std::string_view s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
        return 1;
    }
    size_t length = 0;
    unsigned char low = 0x80, high = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        length = 3;
        low = c == 0xe0 ? 0xa0 : 0x80;
        high = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        length = 4;
        low = c == 0xf0 ? 0x90 : 0x80;
        high = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (s.size() - i < length) {
        return 0;
    }
    for (size_t k = 1; k < length; ++k) {
        const unsigned char b = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (b < low || b > high) : (b < 0x80 || b > 0xbf)) {
            return 0;
        }
    }
    return length;
}

}  // namespace

std::string escape_prometheus_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (size_t i = 0; i < value.size();) {
        const char c = value[i];
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            const size_t length = valid_utf8_length(value, i);
            if (length == 0) {
                out += "\xef\xbf\xbd";  // U+FFFD
                ++i;
                continue;
            }
            out.append(value.substr(i, length));
            i += length;
            continue;
        }
        ++i;
    }
    return out;
}

std::string format_prometheus_number(double value) {
    if (std::isnan(value)) {
        return "NaN";
    }
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    char buffer[32];
    for (int precision = 6; precision <= 17; ++precision) {
        snprintf(buffer, sizeof buffer, "%.*g", precision, value);
        if (strtod(buffer, nullptr) == value) {
            break;
        }
    }
    return buffer;
}

void PrometheusWriter::family(std::string_view name, std::string_view type, std::string_view help) {
    text_ += "# HELP ";
    text_ += name;
    text_ += ' ';
    // HELP text escapes backslash and line feed only.
    for (char c : help) {
        if (c == '\\') {
            text_ += "\\\\";
        } else if (c == '\n') {
            text_ += "\\n";
        } else {
            text_ += c;
        }
    }
    text_ += "\n# TYPE ";
    text_ += name;
    text_ += ' ';
    text_ += type;
    text_ += '\n';
}

void PrometheusWriter::begin_sample(std::string_view name, const PrometheusLabels &labels,
                                    std::string_view extra_name, std::string_view extra_value) {
    text_ += name;
    if (!labels.empty() || !extra_name.empty()) {
        text_ += '{';
        bool first = true;
        auto add = [&](std::string_view label, std::string_view value) {
            if (!first) {
                text_ += ',';
            }
            first = false;
            text_ += label;
            text_ += "=\"";
            text_ += escape_prometheus_label_value(value);
            text_ += '"';
        };
        for (const auto &[label, value] : labels) {
            add(label, value);
        }
        if (!extra_name.empty()) {
            add(extra_name, extra_value);
        }
        text_ += '}';
    }
    text_ += ' ';
}

void PrometheusWriter::sample(std::string_view name, const PrometheusLabels &labels, double value) {
    begin_sample(name, labels);
    text_ += format_prometheus_number(value);
    text_ += '\n';
}

void PrometheusWriter::sample(std::string_view name, const PrometheusLabels &labels, uint64_t value) {
    begin_sample(name, labels);
    text_ += std::to_string(value);
    text_ += '\n';
}

void PrometheusWriter::histogram(std::string_view name, const PrometheusLabels &labels,
                                 const std::vector<double> &bounds, const std::vector<uint64_t> &counts,
                                 double sum) {
    const std::string bucket = std::string(name) + "_bucket";
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds.size(); ++i) {
        cumulative += i < counts.size() ? counts[i] : 0;
        const std::string le = i < bounds.size() ? format_prometheus_number(bounds[i]) : "+Inf";
        begin_sample(bucket, labels, "le", le);
        text_ += std::to_string(cumulative);
        text_ += '\n';
    }
    sample(std::string(name) + "_sum", labels, sum);
    sample(std::string(name) + "_count", labels, cumulative);
}

}  // namespace segment
