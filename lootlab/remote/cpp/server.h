// The loot service in C++ (lootlab/remote/loot.proto), served with grpc++'s async API on a
// fixed number of handler threads.  See docs/cpp-server.md.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "index.h"
#include "loot.grpc.pb.h"

namespace lootlab {

// What one request may ask for: lootlab.remote.handlers.Limits' defaults.
struct Limits {
  double max_radius = 4096.0;
  uint32_t max_k = 10000;
  uint64_t max_results = 95000;
  int max_request_bytes = 16 * 1024;
  int max_response_bytes = 64 * 1024 * 1024;
};

// ServerStats' counts, as lootlab.remote.counters.Counters keeps them for one process:
// connections are distinct peer addresses (the last 65,536 remembered).
class Counters {
 public:
  void note(const grpc::ServerContext& ctx);
  void fill(lootlab::v1::Stats* stats);

 private:
  std::mutex mu_;
  uint64_t requests_ = 0, connections_ = 0, tls_connections_ = 0, tls_resumed_ = 0;
  uint64_t tls_requests_ = 0, resumed_requests_ = 0;
  std::unordered_set<std::string> peers_;
  std::deque<std::string> order_;
};

using RawService = lootlab::v1::LootService::WithRawMethod_Get<
    lootlab::v1::LootService::WithRawMethod_Near<
        lootlab::v1::LootService::WithRawMethod_Box<
            lootlab::v1::LootService::WithRawMethod_Knn<
                lootlab::v1::LootService::WithRawMethod_ServerStats<
                    lootlab::v1::LootService::Service>>>>>;

enum Method { kGet, kNear, kBox, kKnn, kStats, kMethodCount };

struct Call;

// Owns the completion queue and the handler threads.  Each method always has `threads`
// requested calls posted, so as many calls of one method can be matched at once; later
// calls wait in gRPC core until a handler re-posts.
class LootServer {
 public:
  LootServer(Index* index, Limits limits, int threads);
  // Adds the service and the queue to `builder` (before BuildAndStart).
  void attach(grpc::ServerBuilder& builder);
  // Posts the requested calls and starts the threads (after BuildAndStart).
  void start(grpc::Server* server);
  // Lets running calls finish for up to `grace_seconds`, then stops the threads.
  void stop(double grace_seconds);
  uint64_t generation() { return index_->current()->header().generation; }

 private:
  void post(Method method);
  void work();
  void handle(Call* call);
  grpc::Status answer(Call* call, grpc::ByteBuffer* out);
  grpc::Status query(Call* call, grpc::ByteBuffer* out);

  Index* index_;
  Limits limits_;
  int threads_;
  RawService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  grpc::Server* server_ = nullptr;
  std::mutex post_mu_;
  bool closing_ = false;                   // no posting once the queue shuts down
  std::vector<std::thread> workers_;
  Counters counters_;
};

}  // namespace lootlab
