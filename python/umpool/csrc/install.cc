// What the Python package calls (through ctypes) to put umpool's allocator
// in place, and to give MemPools a role. Never throws across the C boundary.
#include <c10/core/Allocator.h>
#include <c10/core/DeviceType.h>

#include <cstdio>
#include <exception>
#include <string>

#include "allocator.h"
#include "pools.h"

namespace {

thread_local std::string tls_error;

template <class F>
int Guarded(F&& f) noexcept {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    tls_error = e.what();
  } catch (...) {
    tls_error = "unknown exception";
  }
  return 1;
}

}  // namespace

extern "C" {

// Makes umpool PyTorch's CUDA allocator. Must run before CUDA is initialised
// (PyTorch's own allocator must not have served anything yet). 0 or 1 with
// umpool_torch_error() saying why.
__attribute__((visibility("default"))) int umpool_torch_install(void) {
  return Guarded([] {
    namespace cca = c10::cuda::CUDACachingAllocator;
    cca::CUDAAllocator* current = cca::allocator.load();
    if (current == &umpool_torch::Allocator()) return;
    UMPOOL_TORCH_CHECK(current == nullptr || !current->initialized(),
                "umpool.torch.enable() must run before CUDA is initialised in this process: "
                "PyTorch's allocator is already in use");
    cca::allocator.store(&umpool_torch::Allocator());
    // Code that asks c10's registry for the CUDA allocator gets umpool too.
    c10::SetAllocator(c10::DeviceType::CUDA, &umpool_torch::Allocator(), /*priority=*/10);
  });
}

// Routes allocations made while the MemPool (device, id) is in use to the
// device's pool with `role`'s placement (umpool.torch.mem_pool(role)).
__attribute__((visibility("default"))) int umpool_torch_set_pool_role(int device,
                                                                      unsigned long long id_hi,
                                                                      unsigned long long id_lo,
                                                                      int role) {
  return Guarded([&] {
    umpool_torch::Pools::Get().SetRole(static_cast<c10::DeviceIndex>(device), {id_hi, id_lo},
                                       role);
  });
}

// Counters of the allocator, by name, for tests: "checkpoint_restores".
__attribute__((visibility("default"))) long long umpool_torch_counter(const char* name) {
  if (name != nullptr && std::string(name) == "checkpoint_restores") {
    return umpool_torch::checkpoint_restores.load();
  }
  return -1;
}

__attribute__((visibility("default"))) const char* umpool_torch_error(void) {
  return tls_error.c_str();
}

// 1 when umpool's allocator is PyTorch's current CUDA allocator.
__attribute__((visibility("default"))) int umpool_torch_installed(void) {
  return c10::cuda::CUDACachingAllocator::allocator.load() == &umpool_torch::Allocator();
}

}  // extern "C"
