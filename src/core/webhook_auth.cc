// Who may send: the source directory (a write key, or the previous one while its grace after a rotation
// lasts) and what a request's X-Signature covers under the source's secret or its previous one. See
// webhook.h. Pure C++; never includes Postgres. A previous key or secret is honoured only while the worker's
// directory holds it: the worker drops it once its grace ends (worker_db.cc refresh_sources).
#include "core/no_postgres.h"
#include "core/webhook.h"

namespace segment {

void SourceDirectory::replace(std::vector<SourceInfo> sources) {
    std::unordered_map<std::string, size_t> by_key, by_previous_key;
    by_key.reserve(sources.size());
    for (size_t i = 0; i < sources.size(); ++i) {
        by_key.emplace(sources[i].write_key, i);
    }
    for (size_t i = 0; i < sources.size(); ++i) {
        const std::string &previous = sources[i].previous_write_key;
        if (!previous.empty() && by_key.find(previous) == by_key.end()) {
            by_previous_key.emplace(previous, i);
        }
    }
    sources_.swap(sources);
    by_key_.swap(by_key);
    by_previous_key_.swap(by_previous_key);
}

const SourceInfo *SourceDirectory::find(std::string_view write_key) const {
    const std::string key(write_key);
    auto found = by_key_.find(key);
    if (found != by_key_.end()) {
        return &sources_[found->second];
    }
    found = by_previous_key_.find(key);
    return found == by_previous_key_.end() ? nullptr : &sources_[found->second];
}

SignatureCoverage source_signature_coverage(const SourceInfo &source, std::string_view signature,
                                            std::string_view raw_body, const std::string_view *decoded_body) {
    const std::optional<std::string> *secrets[2] = {&source.shared_secret, &source.previous_shared_secret};
    const std::string_view *bodies[2] = {&raw_body, decoded_body};
    SignatureCoverage best = SignatureCoverage::None;
    for (const std::optional<std::string> *secret : secrets) {
        if (!*secret) {
            continue;
        }
        for (const std::string_view *body : bodies) {
            if (body == nullptr) {
                continue;
            }
            const SignatureCoverage coverage = signature_coverage(*body, signature, **secret);
            if (coverage == SignatureCoverage::WholeBody) {
                return coverage;
            }
            if (coverage == SignatureCoverage::FirstElement) {
                best = coverage;
            }
        }
    }
    return best;
}

}  // namespace segment
