#include "storage/s3_location.h"

#include <cctype>

#include "util/error.h"

namespace fme::storage {

S3Location S3Location::parse(const std::string& url, const std::string& what) {
  if (!is_s3_url(url)) throw ConfigError(what + " '" + url + "': expected s3://bucket/prefix");
  std::string rest = url.substr(5);
  const size_t slash = rest.find('/');
  S3Location l;
  l.bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
  l.prefix = prefix;
  // S3's bucket naming rules (3-63 characters: lower-case letters, digits, '.', '-'; starting and ending with a
  // letter or digit); GCS's XML API accepts the same names.
  bool ok = l.bucket.size() >= 3 && l.bucket.size() <= 63;
  for (char c : l.bucket) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-');
  ok = ok && std::isalnum(static_cast<unsigned char>(l.bucket.front())) && std::isalnum(static_cast<unsigned char>(l.bucket.back()));
  if (!ok)
    throw ConfigError(what + " '" + url + "': bucket name '" + l.bucket +
                      "' must be 3-63 lower-case letters, digits, '.' or '-', starting and ending with a letter or digit");
  if (l.prefix.find("//") != std::string::npos) throw ConfigError(what + " '" + url + "': the prefix has an empty path segment");
  return l;
}

}  // namespace fme::storage
