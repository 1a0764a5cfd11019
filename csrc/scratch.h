// Per-thread scratch rows, grown on demand and kept for the thread's life, so passes over
// rows allocate nothing per row. Each caller takes its own slot: image_io 0 and 1 (a
// row of values, a row of chroma), resize 2 and 3 (a run of its horizontal pass, the rows
// of a WidthRing).
#pragma once
#include <cstddef>
#include <vector>

namespace fastsr {

inline std::vector<float>& row_scratch(int slot, size_t floats) {
  static thread_local std::vector<float> rows[4];
  if (rows[slot].size() < floats) rows[slot].resize(floats);
  return rows[slot];
}

}  // namespace fastsr
