// The Prometheus text exposition format, version 0.0.4: HELP and TYPE lines, samples with escaped label
// values, histograms with cumulative buckets. Pure C++; it formats what it is given and never reads any state
// of the server. It must never emit a line a Prometheus parser rejects, whatever bytes a label value holds.
#pragma once
#include "core/no_postgres.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace segment {

constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

using PrometheusLabels = std::vector<std::pair<std::string_view, std::string_view>>;

class PrometheusWriter {
  public:
    // Starts a metric family: "# HELP name help" and "# TYPE name type" (counter, gauge, histogram).
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, const PrometheusLabels &labels, double value);
    void sample(std::string_view name, const PrometheusLabels &labels, uint64_t value);
    // One histogram's series: name_bucket{le=...} (cumulative, from per-bucket counts: counts[i] are the
    // observations <= bounds[i], counts.back() those above every bound), name_sum and name_count.
    void histogram(std::string_view name, const PrometheusLabels &labels, const std::vector<double> &bounds,
                   const std::vector<uint64_t> &counts, double sum);
    const std::string &text() const { return text_; }

  private:
    void begin_sample(std::string_view name, const PrometheusLabels &labels, std::string_view extra_name = {},
                      std::string_view extra_value = {});
    std::string text_;
};

// A label value escaped for the text format: backslash, double quote and line feed. Bytes that are not valid
// UTF-8 become U+FFFD, so the exposition stays valid UTF-8.
std::string escape_prometheus_label_value(std::string_view value);

// A float as the format writes it: +Inf, -Inf, NaN, or the shortest decimal that reads back the same.
std::string format_prometheus_number(double value);

}  // namespace segment
