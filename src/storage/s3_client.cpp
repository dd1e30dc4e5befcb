#include "storage/s3_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <tinyxml2.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "util/sha256.h"

namespace fme::storage {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// MD5 of `data`: hex (what S3 returns as a part's ETag) and base64 (the Content-MD5 header).
std::pair<std::string, std::string> md5_of(const std::string& data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_md5(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string h;
  for (unsigned int i = 0; i < n; ++i) h += hex[d[i] >> 4], h += hex[d[i] & 15];
  std::string b64(4 * ((n + 2) / 3) + 1, '\0');
  b64.resize(static_cast<size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), d, static_cast<int>(n))));
  return {h, b64};
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

// The text of the first <tag> anywhere under `parent`, or "".
std::string child_text(const tinyxml2::XMLElement* parent, const char* tag) {
  if (!parent) return "";
  const tinyxml2::XMLElement* e = parent->FirstChildElement(tag);
  return e && e->GetText() ? e->GetText() : "";
}

// "HTTP 403 InvalidAccessKeyId (The AWS Access Key Id you provided does not exist in our records.)"
std::string describe(const S3Client::Response& r) {
  std::string s = "HTTP " + std::to_string(r.status);
  tinyxml2::XMLDocument doc;
  if (!r.body.empty() && doc.Parse(r.body.data(), r.body.size()) == tinyxml2::XML_SUCCESS) {
    const tinyxml2::XMLElement* e = doc.FirstChildElement("Error");
    const std::string code = child_text(e, "Code"), msg = child_text(e, "Message");
    if (!code.empty()) s += " " + code;
    if (!msg.empty()) s += " (" + msg + ")";
  } else if (r.status == 403) {
    s += " (access denied: check the credentials)";
  } else if (r.status == 404) {
    s += " (not found)";
  }
  return s;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) headers->clear();  // a new response (after 100 Continue or a redirect)
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
    value.erase(0, std::min(value.find_first_not_of(' '), value.size()));
    (*headers)[lower(line.substr(0, colon))] = value;
  }
  return size * n;
}

bool retryable(CURLcode rc, long status) {
  switch (rc) {
    case CURLE_OK:
      return status == 500 || status == 502 || status == 503 || status == 504 || status == 429;
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_COULDNT_RESOLVE_HOST:
      return true;
    default:
      return false;
  }
}

void check_endpoint(const std::string& e) {
  const bool scheme = e.rfind("http://", 0) == 0 || e.rfind("https://", 0) == 0;
  const size_t host = e.find("://") + 3;
  if (!scheme || host >= e.size() || e.find('/', host) != std::string::npos)
    throw ConfigError("S3 endpoint '" + e + "': expected http(s)://host[:port] (from --s3-endpoint or AWS_ENDPOINT_URL)");
}

}  // namespace

std::string uri_encode(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

S3Config S3Config::from_environment(const std::string& endpoint) {
  S3Config c;
  c.access_key = env("AWS_ACCESS_KEY_ID");
  c.secret_key = env("AWS_SECRET_ACCESS_KEY");
  c.session_token = env("AWS_SESSION_TOKEN");
  c.region = !env("AWS_REGION").empty() ? env("AWS_REGION") : !env("AWS_DEFAULT_REGION").empty() ? env("AWS_DEFAULT_REGION") : "us-east-1";
  c.endpoint = !endpoint.empty() ? endpoint : !env("AWS_ENDPOINT_URL_S3").empty() ? env("AWS_ENDPOINT_URL_S3") : env("AWS_ENDPOINT_URL");
  if (c.endpoint.empty()) c.endpoint = "https://s3." + c.region + ".amazonaws.com";
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  check_endpoint(c.endpoint);
  if (c.access_key.empty() || c.secret_key.empty())
    throw ConfigError("S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)");
  return c;
}

S3Client::S3Client(S3Config config) : config_(std::move(config)) {
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);  // once per process, before any thread uses curl
  if (init != CURLE_OK) throw Error(std::string("libcurl: cannot initialise: ") + curl_easy_strerror(init));
  check_endpoint(config_.endpoint);
}

std::string S3Client::where(const std::string& bucket, const std::string& key) const {
  return "s3://" + bucket + (key.empty() ? "" : "/" + key) + " at " + config_.endpoint;
}

S3Client::Response S3Client::request(const std::string& method, const std::string& bucket, const std::string& key,
                                     const std::string& query, const std::string* body, const std::vector<std::string>& extra,
                                     int attempts) const {
  const std::string url = config_.endpoint + "/" + bucket + (key.empty() ? "" : "/" + uri_encode(key, true)) +
                          (query.empty() ? "" : "?" + query);
  const std::string sigv4 = "aws:amz:" + config_.region + ":s3";
  // S3 wants the payload's sha256 signed in; libcurl 7.88 signs the header but does not compute it.
  const std::string payload_sha = "x-amz-content-sha256: " + sha256_hex(body ? *body : std::string());
  const int tries = std::max(1, config_.max_attempts);
  const int unanswered_tries = attempts > 0 ? std::min(attempts, tries) : tries;
  std::mt19937_64 jitter(std::random_device{}());
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<CURL, void (*)(CURL*)> c(curl_easy_init(), curl_easy_cleanup);
    if (!c) throw S3Error("libcurl: cannot create a handle", 0);
    std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(nullptr, curl_slist_free_all);
    auto add = [&](const std::string& h) { headers.reset(curl_slist_append(headers.release(), h.c_str())); };
    add(payload_sha);
    if (!config_.session_token.empty()) add("x-amz-security-token: " + config_.session_token);
    bool has_type = false;
    for (const auto& h : extra) {
      add(h);
      has_type = has_type || lower(h).rfind("content-type:", 0) == 0;
    }
    Response r;
    curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.get(), CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(c.get(), CURLOPT_USERNAME, config_.access_key.c_str());
    curl_easy_setopt(c.get(), CURLOPT_PASSWORD, config_.secret_key.c_str());
    curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, config_.connect_timeout_s);
    curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, config_.timeout_s);
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c.get(), CURLOPT_HEADERDATA, &r.headers);
    if (method == "HEAD") {
      curl_easy_setopt(c.get(), CURLOPT_NOBODY, 1L);
    } else if (method != "GET") {
      curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
      if (body || method == "POST" || method == "PUT") {
        static const std::string empty;
        const std::string& b = body ? *body : empty;
        curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, b.data());
        curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(b.size()));
        if (!has_type) add("Content-Type: application/octet-stream");  // not curl's form-encoding default
      }
    }
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
    const CURLcode rc = curl_easy_perform(c.get());
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.status);
    if (!retryable(rc, r.status) || attempt >= (rc == CURLE_OK ? tries : unanswered_tries)) {
      if (rc != CURLE_OK)
        throw S3Error(method + " " + where(bucket, key) + ": cannot connect or no answer (" + curl_easy_strerror(rc) + ", " +
                          std::to_string(attempt) + (attempt == 1 ? " attempt)" : " attempts)"),
                      0);
      return r;
    }
    // Full jitter: uniform in [0, backoff * 2^(attempt-1)], so retrying clients spread out.
    const double cap = config_.backoff_s * double(1 << std::min(attempt - 1, 10));
    std::this_thread::sleep_for(std::chrono::duration<double>(std::uniform_real_distribution<double>(0, cap)(jitter)));
  }
}

void S3Client::check_bucket(const std::string& bucket, int attempts) {
  const Response r = request("HEAD", bucket, "", "", nullptr, {}, attempts);
  if (r.status == 200) return;
  Response described = r;
  if (r.body.empty()) {  // HEAD has no body: a GET of one key says why (S3's error code)
    try {
      const Response g = request("GET", bucket, "", "list-type=2&max-keys=1", nullptr, {}, attempts);
      if (g.status == r.status) described = g;
    } catch (const S3Error&) {
    }
  }
  throw S3Error("s3://" + bucket + " at " + config_.endpoint + ": " + describe(described) +
                    (r.status == 404 ? ": no such bucket (create it first)" : ""),
                r.status);
}

S3Object S3Client::head(const std::string& bucket, const std::string& key) {
  const Response r = request("HEAD", bucket, key, "", nullptr, {});
  S3Object o;
  if (r.status == 404) return o;
  if (r.status != 200) throw S3Error("HEAD " + where(bucket, key) + ": " + describe(r), r.status);
  o.exists = true;
  auto it = r.headers.find("content-length");
  o.size = it == r.headers.end() ? 0 : std::stoull(it->second);
  it = r.headers.find("etag");
  if (it != r.headers.end()) o.etag = unquote(it->second);
  for (const auto& [k, v] : r.headers)
    if (k.rfind("x-amz-meta-", 0) == 0) o.meta[k.substr(11)] = v;
  return o;
}

std::string S3Client::get(const std::string& bucket, const std::string& key) {
  const Response r = request("GET", bucket, key, "", nullptr, {});
  if (r.status != 200) throw S3Error("GET " + where(bucket, key) + ": " + describe(r), r.status);
  return r.body;
}

namespace {
// SSE-KMS and SSE-C objects have ETags that are not their MD5 (S3 checks Content-MD5 itself then).
bool etag_is_md5(const S3Client::Response& r) {
  return !r.headers.count("x-amz-server-side-encryption-aws-kms-key-id") &&
         !r.headers.count("x-amz-server-side-encryption-customer-algorithm");
}
}  // namespace

void S3Client::put(const std::string& bucket, const std::string& key, const std::string& data,
                   const std::map<std::string, std::string>& meta) {
  const auto [hex, b64] = md5_of(data);
  std::vector<std::string> h{"Content-MD5: " + b64};
  for (const auto& [k, v] : meta) h.push_back("x-amz-meta-" + k + ": " + v);
  const Response r = request("PUT", bucket, key, "", &data, h);
  if (r.status != 200) throw S3Error("PUT " + where(bucket, key) + ": " + describe(r), r.status);
  auto it = r.headers.find("etag");
  if (it != r.headers.end() && etag_is_md5(r) && unquote(it->second) != hex)
    throw S3Error("PUT " + where(bucket, key) + ": the stored object's ETag " + it->second + " is not the MD5 of what was sent (" +
                      hex + "): corrupted in transit",
                  r.status);
}

void S3Client::put_file(const std::string& bucket, const std::string& key, const std::string& path, uint64_t part_size,
                        int parallel, const std::map<std::string, std::string>& meta,
                        const std::function<void(uint64_t)>& on_bytes,
                        const std::function<void(const std::string&)>& on_upload) {
  if (part_size < (5u << 20)) throw ConfigError("S3 part size " + std::to_string(part_size) + ": S3 needs at least 5 MiB per part");
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) throw IoError(path + ": cannot read: " + ec.message());
  std::unique_ptr<int, void (*)(int*)> fd(new int(open(path.c_str(), O_RDONLY | O_CLOEXEC)), [](int* f) {
    if (*f >= 0) close(*f);
    delete f;
  });
  if (*fd < 0) throw IoError(path + ": cannot open for upload");
  auto read_range = [&](uint64_t off, uint64_t n) {
    std::string buf(n, '\0');
    for (uint64_t got = 0; got < n;) {
      const ssize_t k = pread(*fd, buf.data() + got, n - got, static_cast<off_t>(off + got));
      if (k <= 0) throw IoError(path + ": read failed at byte " + std::to_string(off + got) + " during upload");
      got += static_cast<uint64_t>(k);
    }
    return buf;
  };
  if (size <= part_size) {
    put(bucket, key, read_range(0, size), meta);
    if (on_bytes) on_bytes(size);
  } else {
    const std::string upload_id = begin_upload(bucket, key, meta);
    if (on_upload) on_upload(upload_id);
    const int64_t parts = static_cast<int64_t>((size + part_size - 1) / part_size);
    std::vector<std::string> etags(static_cast<size_t>(parts));
    std::atomic<int64_t> next{0};
    std::mutex error_mu;
    std::string error;
    long error_status = 0;
    auto worker = [&] {
      for (int64_t p; (p = next.fetch_add(1)) < parts;) {
        {
          std::lock_guard<std::mutex> lock(error_mu);
          if (!error.empty()) return;
        }
        try {
          const uint64_t off = static_cast<uint64_t>(p) * part_size, n = std::min<uint64_t>(part_size, size - off);
          const std::string data = read_range(off, n);
          const std::string etag = put_part(bucket, key, upload_id, static_cast<int>(p + 1), data);
          etags[static_cast<size_t>(p)] = etag;
          if (on_bytes) on_bytes(n);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (error.empty()) {
            error = e.what();
            if (auto* s3 = dynamic_cast<const S3Error*>(&e)) error_status = s3->http_status;
          }
          return;
        }
      }
    };
    std::vector<std::thread> pool;
    for (int i = 0; i < std::max(1, std::min<int>(parallel, static_cast<int>(parts))); ++i) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    if (error.empty()) {
      std::string xml = "<CompleteMultipartUpload>";
      for (int64_t p = 0; p < parts; ++p)
        xml += "<Part><PartNumber>" + std::to_string(p + 1) + "</PartNumber><ETag>\"" + etags[static_cast<size_t>(p)] + "\"</ETag></Part>";
      xml += "</CompleteMultipartUpload>";
      const Response done = request("POST", bucket, key, "uploadId=" + uri_encode(upload_id, false), &xml, {"Content-Type: application/xml"});
      // S3 may answer 200 and put the error in the body.
      if (done.status != 200 || done.body.find("<Error>") != std::string::npos) {
        error = "POST " + where(bucket, key) + " (complete the multipart upload): " + describe(done);
        error_status = done.status;
      }
    }
    if (!error.empty()) {
      try {
        abort_upload(bucket, key, upload_id);
        if (on_upload) on_upload("");
      } catch (const S3Error&) {  // the first error is the one to report; the journaled upload is aborted on resume
      }
      throw S3Error(error, error_status);
    }
    if (on_upload) on_upload("");
  }
  const S3Object stored = head(bucket, key);
  if (!stored.exists || stored.size != size)
    throw S3Error("verify " + where(bucket, key) + ": " + (stored.exists ? std::to_string(stored.size) + " bytes stored" : "not found") +
                      " after uploading " + std::to_string(size) + " bytes of " + path,
                  200);
}

std::string S3Client::begin_upload(const std::string& bucket, const std::string& key, const std::map<std::string, std::string>& meta) {
  std::vector<std::string> h;
  for (const auto& [k, v] : meta) h.push_back("x-amz-meta-" + k + ": " + v);
  const Response init = request("POST", bucket, key, "uploads=", nullptr, h);
  tinyxml2::XMLDocument doc;
  std::string upload_id;
  if (init.status == 200 && doc.Parse(init.body.data(), init.body.size()) == tinyxml2::XML_SUCCESS)
    upload_id = child_text(doc.FirstChildElement("InitiateMultipartUploadResult"), "UploadId");
  if (upload_id.empty()) throw S3Error("POST " + where(bucket, key) + " (start a multipart upload): " + describe(init), init.status);
  return upload_id;
}

std::string S3Client::put_part(const std::string& bucket, const std::string& key, const std::string& upload_id, int part_number,
                               const std::string& data) {
  const auto [hex, b64] = md5_of(data);
  const std::string q = "partNumber=" + std::to_string(part_number) + "&uploadId=" + uri_encode(upload_id, false);
  const Response r = request("PUT", bucket, key, q, &data, {"Content-MD5: " + b64});
  const std::string what = "PUT " + where(bucket, key) + " part " + std::to_string(part_number);
  if (r.status != 200) throw S3Error(what + ": " + describe(r), r.status);
  auto it = r.headers.find("etag");
  if (it == r.headers.end()) throw S3Error(what + ": no ETag in the answer", r.status);
  if (etag_is_md5(r) && unquote(it->second) != hex)
    throw S3Error(what + ": ETag " + it->second + " is not the MD5 of the part sent (" + hex + "): corrupted in transit", r.status);
  return unquote(it->second);
}

void S3Client::abort_upload(const std::string& bucket, const std::string& key, const std::string& upload_id) {
  const Response r = request("DELETE", bucket, key, "uploadId=" + uri_encode(upload_id, false), nullptr, {});
  if (r.status != 204 && r.status != 200 && r.status != 404)
    throw S3Error("DELETE " + where(bucket, key) + " (abort upload " + upload_id + "): " + describe(r), r.status);
}

void S3Client::remove(const std::string& bucket, const std::string& key) {
  const Response r = request("DELETE", bucket, key, "", nullptr, {});
  if (r.status != 204 && r.status != 200 && r.status != 404) throw S3Error("DELETE " + where(bucket, key) + ": " + describe(r), r.status);
}

}  // namespace fme::storage
