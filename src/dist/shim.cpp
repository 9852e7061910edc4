// The few torch.distributed (c10d) calls microvision needs, as a C API for Rust: a TCPStore
// rendezvous and a Gloo process group laid out as torch.distributed.init_process_group lays out
// its default group (store prefixes "default_pg", "0/", "cpu/"), so that microvision ranks and
// Python ranks can share one group; all-reduce (sum), broadcast and barrier on tch tensors.
// Compiled by build.rs with torch-sys's flags (C++17, the same _GLIBCXX_USE_CXX11_ABI).

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::chrono::milliseconds timeout;
};

// Runs `f`; a C++ exception becomes a malloc'd message in *err (freed by mv_dist_free_error).
template <typename F>
int guarded(char** err, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    *err = strdup(e.what());
  } catch (...) {
    *err = strdup("unknown C++ exception in c10d");
  }
  return 1;
}

void wait(Group* g, c10::intrusive_ptr<c10d::Work> work) {
  if (!work->wait(g->timeout)) {
    throw std::runtime_error("c10d operation timed out");
  }
}

} // namespace

extern "C" {

// Joins the TCPStore at host:port (hosting it when `serve`: rank 0, unless torchrun's agent
// hosts it) and makes the Gloo group of `world` ranks.
void* mv_dist_new(const char* host, int port, int rank, int world, int serve, int64_t timeout_ms, char** err) {
  Group* out = nullptr;
  guarded(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = serve != 0;
    opts.numWorkers = world;
    opts.waitWorkers = true; // as torch.distributed: every member counts itself in, rank 0 waits for all
    opts.timeout = timeout;
    opts.multiTenant = true;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(host, opts);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("default_pg", store);
    auto group = c10::make_intrusive<c10d::PrefixStore>("0/", prefixed);
    auto device = c10::make_intrusive<c10d::PrefixStore>("cpu/", group);
    auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(device, rank, world, options);
    out = new Group{store, pg, timeout};
  });
  return out;
}

// Sums `t` (contiguous CPU tensor) over the group, in place.
int mv_dist_all_reduce_sum(void* g, at::Tensor* t, char** err) {
  return guarded(err, [&] {
    auto group = static_cast<Group*>(g);
    std::vector<at::Tensor> v{*t};
    wait(group, group->pg->allreduce(v, c10d::AllreduceOptions{}));
  });
}

// Copies rank `root`'s `t` into every rank's `t`.
int mv_dist_broadcast(void* g, at::Tensor* t, int root, char** err) {
  return guarded(err, [&] {
    auto group = static_cast<Group*>(g);
    std::vector<at::Tensor> v{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    wait(group, group->pg->broadcast(v, opts));
  });
}

// Waits until every rank has reached it.
int mv_dist_barrier(void* g, char** err) {
  return guarded(err, [&] {
    auto group = static_cast<Group*>(g);
    wait(group, group->pg->barrier(c10d::BarrierOptions{}));
  });
}

void mv_dist_free(void* g) {
  delete static_cast<Group*>(g);
}

void mv_dist_free_error(char* err) {
  free(err);
}

} // extern "C"
