// An S3 server on loopback for tests: tests/storage/s3_server.py (Python's standard library; it verifies
// every request's SigV4 signature, payload hash and Content-MD5 as S3 does, its verifier checked against
// botocore by s3_server_selftest.py), started with the buckets asked for and stopped (SIGTERM, then SIGKILL)
// when the object goes.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fme::test {

class S3TestServer {
 public:
  static constexpr const char* kAccessKey = "FMETESTKEY";
  static constexpr const char* kSecretKey = "fme/test/secret";

  // A free loopback port (bound, then released for the server to take).
  static int free_port() {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || getsockname(s, reinterpret_cast<sockaddr*>(&a), &n) != 0)
      throw std::runtime_error("no free loopback port");
    const int port = ntohs(a.sin_port);
    close(s);
    return port;
  }

  // `port` 0: the server binds a port the kernel picks and says which (no window in which another test's
  // process can take it). A given port (a test that starts the server late): `wait` for it to listen.
  explicit S3TestServer(const std::vector<std::string>& buckets, int port = 0, bool wait = true) : port_(port) {
    const std::string script = std::string(FME_SOURCE_DIR) + "/tests/storage/s3_server.py";
    std::vector<std::string> args = {"/usr/bin/python3", script, "--port", std::to_string(port_), "--access-key", kAccessKey,
                                     "--secret-key", kSecretKey};
    for (const auto& b : buckets) args.insert(args.end(), {"--bucket", b});
    int out[2] = {-1, -1};
    if (port_ == 0 && pipe(out) != 0) throw std::runtime_error("the test S3 server: no pipe");
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      if (port_ == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
      } else if (!std::freopen("/dev/null", "w", stdout)) {
        _exit(126);
      }
      execv(argv[0], argv.data());
      _exit(127);
    }
    if (port_ == 0) {  // "ready PORT", within 30 s
      close(out[1]);
      std::string line;
      pollfd p{out[0], POLLIN, 0};
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      char c = 0;
      while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        if (poll(&p, 1, 100) > 0) {
          if (read(out[0], &c, 1) != 1) break;
          line += c;
        }
      }
      close(out[0]);
      if (line.rfind("ready ", 0) != 0) throw std::runtime_error("the test S3 server did not start: '" + line + "'");
      port_ = std::stoi(line.substr(6));
    } else if (wait) {
      wait_ready();
    }
  }
  ~S3TestServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      for (int i = 0; i < 50 && waitpid(pid_, nullptr, WNOHANG) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  S3TestServer(const S3TestServer&) = delete;
  S3TestServer& operator=(const S3TestServer&) = delete;

  // Until the port accepts connections (30 s at most).
  void wait_ready() const {
    for (int i = 0; i < 300; ++i) {
      const int s = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(port_));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      const bool up = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      close(s);
      if (up) return;
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) throw std::runtime_error("the test S3 server exited at start");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("the test S3 server did not listen within 30 s");
  }

  // The server's test controls (s3_server.py's docstring): the next `count` requests answer `status` (0: the
  // connection is dropped); and the manifests it received that listed objects not yet stored whole ("" if none).
  void inject_faults(int status, int count) const { admin("/_fme/faults?status=" + std::to_string(status) + "&count=" + std::to_string(count)); }
  std::string audit() const { return admin("/_fme/audit"); }
  // The keys stored (PUT, or a completed multipart upload) since the last call, a line each.
  std::string puts() const { return admin("/_fme/puts"); }

  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  // A plain HTTP/1.0 GET on loopback; the answer's body.
  std::string admin(const std::string& path) const {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(s);
      throw std::runtime_error("the test S3 server does not answer");
    }
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(s, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
      close(s);
      throw std::runtime_error("the test S3 server does not take a request");
    }
    std::string answer;
    char buf[4096];
    for (ssize_t n; (n = read(s, buf, sizeof buf)) > 0;) answer.append(buf, static_cast<size_t>(n));
    close(s);
    const size_t body = answer.find("\r\n\r\n");
    if (answer.rfind("HTTP/1.", 0) != 0 || answer.compare(8, 4, " 200") != 0 || body == std::string::npos) throw std::runtime_error("the test S3 server: " + answer);
    return answer.substr(body + 4);
  }

  int port_;
  pid_t pid_ = -1;
};

}  // namespace fme::test
