// Where a run goes in object storage: s3://bucket/prefix, the prefix standing for the run directory (the same
// relative names below it as below the local directory).
#pragma once
#include <string>

namespace fme::storage {

struct S3Location {
  std::string bucket;
  std::string prefix;  // no leading or trailing '/'; may be empty (the bucket's root)

  // "s3://bucket/some/prefix/" -> {bucket, "some/prefix"}. ConfigError naming `what` (the option) and the
  // rule broken: not s3://, an empty or invalid bucket name.
  static S3Location parse(const std::string& url, const std::string& what);
  static bool is_s3_url(const std::string& s) { return s.rfind("s3://", 0) == 0; }

  std::string key(const std::string& name) const { return prefix.empty() ? name : prefix + "/" + name; }
  std::string url() const { return "s3://" + bucket + (prefix.empty() ? "" : "/" + prefix); }
};

}  // namespace fme::storage
