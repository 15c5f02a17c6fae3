// The Prometheus text exposition format (0.0.4). See prometheus.h.
#include "core/prometheus.h"

#include "core/http_response.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace segment {

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
            const size_t length = utf8_sequence_length(value, i);
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
