// The loot service's handlers: the same validation, status codes, messages, counting and
// answer bytes as lootlab/remote/handlers.py, on grpc++'s async API.
//
// Server timing (trailing metadata on every answer, errors included):
//   lootlab-compute-us  from the handler thread taking the call off the completion queue
//                       (the request has arrived; it is decoded inside this time, which
//                       the Python server's excludes: ~1 us for these messages) until the
//                       answer is encoded;
//   lootlab-queue-us    always 0: with grpc++ the time a received call waits on the
//                       completion queue for a free handler thread is not observable (no
//                       arrival stamp is exposed), so this server does not claim one.
#include "server.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>

#include "encode.h"

namespace lootlab {

namespace pb = lootlab::v1;
using grpc::Status;
using grpc::StatusCode;

struct Call {
  explicit Call(Method m) : method(m), writer(&ctx) {}
  Method method;
  grpc::ServerContext ctx;
  grpc::ByteBuffer request;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> writer;
  bool finishing = false;
};

namespace {

constexpr size_t kMaxPeers = 65536;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool has_property(const grpc::ServerContext& ctx, const char* name, const char* value) {
  auto auth = ctx.auth_context();
  if (!auth) return false;
  for (const auto& v : auth->FindPropertyValues(name))
    if (std::string(v.data(), v.size()) == value) return true;
  return false;
}

template <typename Message>
bool parse(const grpc::ByteBuffer& buffer, Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  if (slices.size() == 1) return message->ParseFromArray(slices[0].begin(), (int)slices[0].size());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return message->ParseFromString(bytes);
}

std::string triple(int64_t a, int64_t b, int64_t c) {     // a Python tuple's str
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ")";
}

double cpu_seconds() {                   // user + system CPU of the whole process
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

void Counters::note(const grpc::ServerContext& ctx) {
  const bool tls = has_property(ctx, "transport_security_type", "ssl");
  const bool resumed = tls && has_property(ctx, "ssl_session_reused", "true");
  std::string peer = ctx.peer();
  std::lock_guard<std::mutex> lock(mu_);
  requests_++;
  tls_requests_ += tls;
  resumed_requests_ += resumed;
  if (!peers_.insert(peer).second) return;
  order_.push_back(std::move(peer));
  if (order_.size() > kMaxPeers) {
    peers_.erase(order_.front());
    order_.pop_front();
  }
  connections_++;
  tls_connections_ += tls;
  tls_resumed_ += resumed;
}

void Counters::fill(pb::Stats* s) {
  std::lock_guard<std::mutex> lock(mu_);
  s->set_requests(requests_);
  s->set_connections(connections_);
  s->set_tls_connections(tls_connections_);
  s->set_tls_resumed(tls_resumed_);
  s->set_tls_requests(tls_requests_);
  s->set_resumed_requests(resumed_requests_);
  s->set_cpu_seconds(cpu_seconds());
  s->set_processes(1);
  s->add_process_requests(requests_);
}

LootServer::LootServer(Index* index, Limits limits, int threads)
    : index_(index), limits_(limits), threads_(threads) {}

void LootServer::attach(grpc::ServerBuilder& builder) {
  builder.RegisterService(&service_);
  cq_ = builder.AddCompletionQueue();
}

void LootServer::start(grpc::Server* server) {
  server_ = server;
  for (int m = 0; m < kMethodCount; m++)
    for (int i = 0; i < threads_; i++) post(static_cast<Method>(m));
  for (int i = 0; i < threads_; i++) workers_.emplace_back([this] { work(); });
}

void LootServer::stop(double grace_seconds) {
  auto grace = std::chrono::microseconds((int64_t)(std::max(0.0, grace_seconds) * 1e6));
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    closing_ = true;
    cq_->Shutdown();
  }
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void LootServer::post(Method method) {
  std::lock_guard<std::mutex> lock(post_mu_);
  if (closing_) return;
  Call* call = new Call(method);
  auto* cq = cq_.get();
  switch (method) {
    case kGet: service_.RequestGet(&call->ctx, &call->request, &call->writer, cq, cq, call); break;
    case kNear: service_.RequestNear(&call->ctx, &call->request, &call->writer, cq, cq, call); break;
    case kBox: service_.RequestBox(&call->ctx, &call->request, &call->writer, cq, cq, call); break;
    case kKnn: service_.RequestKnn(&call->ctx, &call->request, &call->writer, cq, cq, call); break;
    default:
      service_.RequestServerStats(&call->ctx, &call->request, &call->writer, cq, cq, call);
  }
}

void LootServer::work() {
  void* tag;
  bool ok;
  while (cq_->Next(&tag, &ok)) {
    Call* call = static_cast<Call*>(tag);
    if (call->finishing || !ok) {        // answer sent (or the server is shutting down)
      delete call;
      continue;
    }
    post(call->method);                  // keep the method's slots filled
    handle(call);
  }
}

void LootServer::handle(Call* call) {
  const int64_t begun = now_ns();
  grpc::ByteBuffer out;
  Status status = answer(call, &out);
  call->ctx.AddTrailingMetadata("lootlab-queue-us", "0");
  call->ctx.AddTrailingMetadata("lootlab-compute-us", std::to_string((now_ns() - begun) / 1000));
  call->finishing = true;
  if (status.ok())
    call->writer.Finish(out, Status::OK, call);
  else
    call->writer.FinishWithError(status, call);
}

Status LootServer::answer(Call* call, grpc::ByteBuffer* out) {
  if (call->method != kStats) return query(call, out);
  pb::StatsRequest request;
  if (!parse(call->request, &request))
    return Status(StatusCode::INTERNAL, "Exception deserializing request!");
  pb::Stats stats;
  counters_.fill(&stats);
  auto snap = index_->current();
  stats.set_generation(snap->header().generation);
  stats.set_records(snap->size());
  std::string bytes = stats.SerializeAsString();
  grpc::Slice slice(bytes);
  *out = grpc::ByteBuffer(&slice, 1);
  return Status::OK;
}

// handlers.LootServicer.prepare, then counting, the deadline check and run.
Status LootServer::query(Call* call, grpc::ByteBuffer* out) {
  pb::GetRequest get;
  pb::NearRequest near;
  pb::BoxRequest box;
  pb::KnnRequest knn;
  bool parsed = false, packed = false;
  switch (call->method) {
    case kGet: parsed = parse(call->request, &get); packed = get.packed(); break;
    case kNear: parsed = parse(call->request, &near); packed = near.packed(); break;
    case kBox: parsed = parse(call->request, &box); packed = box.packed(); break;
    default: parsed = parse(call->request, &knn); packed = knn.packed();
  }
  if (!parsed) return Status(StatusCode::INTERNAL, "Exception deserializing request!");
  if (call->method == kNear) {
    const double r = near.radius();
    if (!std::isfinite(r) || r < 0 || r > limits_.max_radius)
      return Status(StatusCode::INVALID_ARGUMENT, "radius must be a finite number in [0, " +
                                                      py_g(limits_.max_radius) + "], got " +
                                                      py_float_repr(r));
  } else if (call->method == kBox) {
    const auto &lo = box.lo(), &hi = box.hi();
    if (lo.x() > hi.x() || lo.y() > hi.y() || lo.z() > hi.z())
      return Status(StatusCode::INVALID_ARGUMENT,
                    "box lo " + triple(lo.x(), lo.y(), lo.z()) + " must be <= hi " +
                        triple(hi.x(), hi.y(), hi.z()) + " on every axis");
  } else if (call->method == kKnn && knn.k() > limits_.max_k) {
    return Status(StatusCode::INVALID_ARGUMENT, "k must be in [0, " +
                                                    std::to_string(limits_.max_k) + "], got " +
                                                    std::to_string(knn.k()));
  }
  counters_.note(call->ctx);
  if (call->ctx.deadline() <= std::chrono::system_clock::now())
    return Status(StatusCode::DEADLINE_EXCEEDED, "deadline passed before the query ran");
  auto snap = index_->current();         // one generation for the whole answer
  std::vector<uint32_t> rows;
  try {
    switch (call->method) {
      case kGet: {
        uint32_t found;
        if (snap->get(get.at().x(), get.at().y(), get.at().z(), &found)) rows.push_back(found);
        break;
      }
      case kNear: snap->near(near.at().x(), near.at().y(), near.at().z(), near.radius(), rows); break;
      case kBox: {
        const int64_t lo[3] = {box.lo().x(), box.lo().y(), box.lo().z()};
        const int64_t hi[3] = {box.hi().x(), box.hi().y(), box.hi().z()};
        snap->box(lo, hi, rows);
        break;
      }
      default: snap->knn(knn.at().x(), knn.at().y(), knn.at().z(), knn.k(), rows);
    }
  } catch (const QueryError& e) {
    return Status(StatusCode::INVALID_ARGUMENT, e.what());
  }
  if (rows.size() > limits_.max_results)
    return Status(StatusCode::OUT_OF_RANGE,
                  "query matched " + with_commas(rows.size()) + " records; this server returns "
                  "at most " + with_commas(limits_.max_results) +
                      ": use a smaller radius, box or k");
  void* buf = std::malloc(answer_capacity(rows.size(), packed));
  if (!buf) return Status(StatusCode::RESOURCE_EXHAUSTED, "out of memory encoding the answer");
  size_t used = encode_answer(*snap, rows, packed, snap->header().generation,
                              static_cast<unsigned char*>(buf));
  grpc::Slice slice(buf, used, std::free);          // the slice owns the buffer
  *out = grpc::ByteBuffer(&slice, 1);
  return Status::OK;
}

}  // namespace lootlab
