// Zero-initialised float storage aligned for 512-bit loads; never reallocated, so raw
// pointers into it stay valid for the life of a Program.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

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

}  // namespace fastsr
