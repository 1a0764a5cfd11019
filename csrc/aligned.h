// Zero-initialised storage aligned to cache lines: malloc aligns large blocks to 16 bytes
// only, so a 512-bit load or a 64-byte AMX tile row would straddle two lines and cost two.
// Never reallocated, so raw pointers into it stay valid for the life of a Program.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fastsr {

constexpr size_t kHugePage = size_t(2) << 20;

template <class T>
class AlignedArray {
 public:
  AlignedArray() = default;
  // huge_pages: whole 2 MB pages, asked of the kernel as transparent huge pages where it
  // has them: physically contiguous, a per-thread scratch has no L2 set conflicts that
  // 4 KB pages scattered by the kernel can bring.
  explicit AlignedArray(size_t count, bool huge_pages = false) : size_(count) {
    const size_t align = huge_pages ? kHugePage : 64;
    size_t bytes = ((count * sizeof(T) + align - 1) / align) * align;
    if (bytes == 0) bytes = align;
    T* p = static_cast<T*>(std::aligned_alloc(align, bytes));
    if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    if (huge_pages) madvise(p, bytes, MADV_HUGEPAGE);  // advice: no huge pages, no harm
#endif
    std::memset(p, 0, bytes);
    data_.reset(p);
    bytes_ = bytes;
  }
  size_t bytes() const { return bytes_; }  // allocated: size() rounded up to the alignment
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  size_t size_ = 0, bytes_ = 0;
};

using AlignedFloats = AlignedArray<float>;

}  // namespace fastsr
