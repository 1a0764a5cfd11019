// Storage aligned to cache lines: a 512-bit load or an AMX tile row that straddles two lines
// costs two (malloc aligns large blocks to 16 bytes only). AlignedFloats is zero-initialised
// and never reallocated, so raw pointers into it stay valid for the life of a Program.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

namespace fastsr {

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

class AlignedFloats {
 public:
  AlignedFloats() = default;
  explicit AlignedFloats(size_t count) : size_(count) {
    size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
    if (bytes == 0) bytes = 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, bytes);
    data_.reset(p);
  }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<float, FreeDeleter> data_;
  size_t size_ = 0;
};

// std::vector storage for the narrow (u8, bf16) tensors and packed weights.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) {
    const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace fastsr
