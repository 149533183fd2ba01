// c10d, the engine under PyTorch's DistributedDataParallel, for simclr-rs: a store to meet at
// (TCPStore, behind a PrefixStore), a gloo backend for CPU tensors and, where this build found
// NCCL's headers, an NCCL backend for CUDA tensors, the four collectives training needs, and a
// sum over the ranks that autograd differentiates (its backward sums the gradients likewise).
// Every function catches C++ exceptions and reports them as -1 with the message in `err`.
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef SIMCLR_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SIMCLR_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

void report(const char* what, char* err, size_t len) {
  if (err == nullptr || len == 0) return;
  std::strncpy(err, what, len - 1);
  err[len - 1] = '\0';
}

// Runs `f`, turning an exception into -1 and its message.
template <typename F>
int guarded(char* err, size_t len, F f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    // Without the C++ stack trace that c10 appends to what().
    report(e.what_without_backtrace(), err, len);
  } catch (const std::exception& e) {
    report(e.what(), err, len);
  } catch (...) {
    report("unknown C++ exception", err, len);
  }
  return -1;
}

// Waits for `work`, rethrowing its failure, within the group's timeout.
void finish(const Group& g, const c10::intrusive_ptr<c10d::Work>& work) {
  if (!work->wait(g.timeout)) throw std::runtime_error("collective did not complete");
}

// Sums `t` over the ranks, in place.
void all_reduce_sum(const Group& g, at::Tensor& t) {
  std::vector<at::Tensor> ts{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  opts.timeout = g.timeout;
  finish(g, g.backend->allreduce(ts, opts));
}

// y = the sum over the ranks of each rank's x. Every rank's loss depends on y, so the gradient
// of the sum of their losses with respect to one rank's x is the sum over the ranks of the
// gradients with respect to y: the backward is the same sum. (SyncBatchNorm's statistics.)
struct SumOverRanks : public torch::autograd::Function<SumOverRanks> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            int64_t group) {
    ctx->saved_data["group"] = group;
    ctx->saved_data["zeros"] = at::zeros_like(x, at::MemoryFormat::Contiguous);
    auto y = x.clone(at::MemoryFormat::Contiguous);
    all_reduce_sum(*reinterpret_cast<const Group*>(group), y);
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto group = ctx->saved_data["group"].toInt();
    // Every rank takes part, also one whose output got no gradient.
    auto g = grads[0].defined() ? grads[0].clone(at::MemoryFormat::Contiguous)
                                : ctx->saved_data["zeros"].toTensor().clone();
    all_reduce_sum(*reinterpret_cast<const Group*>(group), g);
    return {g, at::Tensor()};
  }
};

}  // namespace

extern "C" {

// 1 when this build has the gloo backend, 2 when it has NCCL, 3 both, 0 neither.
int dist_backends() {
  int b = 0;
#ifdef SIMCLR_GLOO
  b |= 1;
#endif
#ifdef SIMCLR_NCCL
  b |= 2;
#endif
  return b;
}

// Joins the group: the store at host:port (served by this process when `serve`, else reached as
// a client), its keys under `prefix`, then a gloo (`backend` 0) or NCCL (1) backend of `world`
// ranks. `timeout_ms` bounds the meeting and every collective. On success `*out` owns the group
// (free with dist_free).
int dist_init(const char* host, int port, const char* prefix, int rank, int world, int serve,
              long long timeout_ms, int backend, void** out, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = serve != 0;
    // Every process counts itself in; the serving one waits until all `world` have.
    opts.numWorkers = static_cast<std::size_t>(world);
    opts.waitWorkers = true;
    opts.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    auto g = std::make_unique<Group>();
    g->store = store;
    g->timeout = timeout;
    if (backend == 0) {
#ifdef SIMCLR_GLOO
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      g->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
#else
      throw std::runtime_error(
          "this build has no gloo backend (its headers were missing: install libgloo-dev and "
          "rebuild)");
#endif
    } else {
#ifdef SIMCLR_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      g->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
#else
      throw std::runtime_error(
          "this build has no NCCL backend (libtorch_cuda or NCCL's headers were missing when "
          "it was built; scripts/setup.sh installs the headers)");
#endif
    }
    *out = g.release();
  });
}

void dist_free(void* group) { delete static_cast<Group*>(group); }

// Sums `t` over the ranks, in place.
int dist_all_reduce_sum(void* group, at::Tensor* t, char* err, size_t len) {
  return guarded(err, len, [&] { all_reduce_sum(*static_cast<Group*>(group), *t); });
}

// `*out` = a new tensor holding the sum over the ranks of `in`, differentiable (see
// SumOverRanks); the caller owns it. The group must outlive any backward through it.
int dist_sum_with_grad(void* group, at::Tensor* in, at::Tensor** out, char* err, size_t len) {
  return guarded(err, len, [&] {
    *out = new at::Tensor(SumOverRanks::apply(*in, reinterpret_cast<int64_t>(group)));
  });
}

// Replaces `t` on every rank by rank `root`'s, in place.
int dist_broadcast(void* group, at::Tensor* t, int root, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto& g = *static_cast<Group*>(group);
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g.timeout;
    finish(g, g.backend->broadcast(ts, opts));
  });
}

// Writes every rank's `in`, in rank order, into `out` (`world` times `in`'s rows).
int dist_all_gather(void* group, at::Tensor* out, at::Tensor* in, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto& g = *static_cast<Group*>(group);
    c10d::AllgatherOptions opts;
    opts.timeout = g.timeout;
    finish(g, g.backend->_allgather_base(*out, *in, opts));
  });
}

// Returns once every rank has called it.
int dist_barrier(void* group, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto& g = *static_cast<Group*>(group);
    c10d::BarrierOptions opts;
    opts.timeout = g.timeout;
    finish(g, g.backend->barrier(opts));
  });
}

}  // extern "C"
