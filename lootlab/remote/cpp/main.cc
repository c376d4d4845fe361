// lootlab-server: the C++ loot service.  Options, TLS, start-up and shutdown.
//
//   lootlab-server --index PATH (--cert PEM --key PEM [--client-ca PEM] | --plaintext)
//                  [--host 127.0.0.1] [--port 0] [--threads 4] [--max-results 95000]
//                  [--max-radius 4096] [--max-k 10000] [--refresh-ms 50] [--grace 5]
//                  [--no-stdin-watch]
//
// When the port is bound it prints one JSON line on stdout,
//   {"target": "127.0.0.1:PORT", "pid": N, "tls": true, "threads": 4, ...}
// and it serves until SIGTERM / SIGINT or until its stdin closes (so a parent that dies
// leaves no orphan; --no-stdin-watch turns that off for a shell).  Errors: one line on
// stderr, "lootlab-server: error: ...", exit status 1 (2 for bad usage).
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "server.h"

namespace {

struct Options {
  std::string index, host = "127.0.0.1", cert, key, client_ca;
  int port = 0, threads = 4, refresh_ms = 50;
  bool plaintext = false, watch_stdin = true;
  double grace = 5.0;
  lootlab::Limits limits;
};

[[noreturn]] void fail(const std::string& message, int code = 1) {
  std::cerr << "lootlab-server: error: " << message << std::endl;
  std::exit(code);
}

long long number(const std::string& name, const char* text, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (errno || !*text || *end || v < lo || v > hi)
    fail(name + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
             "], got '" + text + "'", 2);
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) fail(a + " needs a value", 2);
      return argv[++i];
    };
    if (a == "--index") o.index = value();
    else if (a == "--host") o.host = value();
    else if (a == "--port") o.port = (int)number(a, value(), 0, 65535);
    else if (a == "--threads") o.threads = (int)number(a, value(), 1, 1024);
    else if (a == "--cert") o.cert = value();
    else if (a == "--key") o.key = value();
    else if (a == "--client-ca") o.client_ca = value();
    else if (a == "--plaintext") o.plaintext = true;
    else if (a == "--no-stdin-watch") o.watch_stdin = false;
    else if (a == "--max-results") o.limits.max_results = (uint64_t)number(a, value(), 0, LLONG_MAX);
    else if (a == "--max-k") o.limits.max_k = (uint32_t)number(a, value(), 0, UINT32_MAX);
    else if (a == "--max-radius") o.limits.max_radius = (double)number(a, value(), 0, 1 << 28);
    else if (a == "--refresh-ms") o.refresh_ms = (int)number(a, value(), -1, INT_MAX);
    else if (a == "--grace") o.grace = (double)number(a, value(), 0, 3600);
    else fail("unknown option " + a + " (see the comment at the top of main.cc)", 2);
  }
  if (o.index.empty()) fail("--index PATH is required", 2);
  if (o.plaintext && (!o.cert.empty() || !o.key.empty() || !o.client_ca.empty()))
    fail("--plaintext cannot be combined with --cert/--key/--client-ca", 2);
  if (!o.plaintext && (o.cert.empty() || o.key.empty()))
    fail("give both --cert and --key (PEM files), or --plaintext", 2);
  return o;
}

std::string read_file(const std::string& label, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(label + " file " + path + " cannot be read: " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::shared_ptr<grpc::ServerCredentials> credentials(const Options& o) {
  if (o.plaintext) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({read_file("key", o.key), read_file("certificate", o.cert)});
  if (!o.client_ca.empty()) {
    ssl.pem_root_certs = read_file("client CA", o.client_ca);
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

// Blocks until SIGTERM / SIGINT arrives or (when watched) stdin reaches end of file.
void wait_for_stop(int sigfd, bool watch_stdin) {
  char buf[4096];
  for (;;) {
    struct pollfd fds[2] = {{sigfd, POLLIN, 0}, {0, POLLIN, 0}};
    int n = poll(fds, watch_stdin ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;
    if (fds[0].revents) return;
    if (watch_stdin && fds[1].revents) {
      ssize_t got = read(0, buf, sizeof buf);
      if (got <= 0 && !(got < 0 && errno == EINTR)) return;   // EOF: the parent is gone
    }
  }
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  // Debian's abseil checks every gRPC mutex for lock-order cycles (a debug aid that perf
  // shows at ~5 % of this server's CPU); gRPC's locking is not ours to debug here.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Signals go to a signalfd, and every thread (gRPC's too) inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int sigfd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (sigfd < 0) fail(std::string("signalfd: ") + std::strerror(errno));

  std::unique_ptr<lootlab::Index> index;
  try {
    index = std::make_unique<lootlab::Index>(o.index, o.refresh_ms);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  auto creds = credentials(o);
  std::string address = (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) +
                        ":" + std::to_string(o.port);
  lootlab::LootServer loot(index.get(), o.limits, o.threads);
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort(address, creds, &bound);
  builder.SetMaxReceiveMessageSize(o.limits.max_request_bytes);
  builder.SetMaxSendMessageSize(o.limits.max_response_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, INT_MAX);   // calls queue
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);   // a taken port is an error
  loot.attach(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0)
    fail("cannot listen on " + address + ": the port is in use or the host is not an address "
         "of this machine; pick another --port (0 picks a free one)");
  loot.start(server.get());
  std::string target = (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) +
                       ":" + std::to_string(bound);
  auto snap = index->current();
  std::cout << "{\"target\": " << json_string(target) << ", \"pid\": " << getpid()
            << ", \"tls\": " << (o.plaintext ? "false" : "true")
            << ", \"threads\": " << o.threads << ", \"index\": " << json_string(o.index)
            << ", \"records\": " << snap->size()
            << ", \"generation\": " << snap->header().generation << "}" << std::endl;
  snap.reset();
  wait_for_stop(sigfd, o.watch_stdin);
  loot.stop(o.grace);
  server.reset();
  return 0;
}
