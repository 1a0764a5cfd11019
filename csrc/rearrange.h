// Ops that move data between layouts: pixel shuffle and unshuffle, and global average pooling.
// Called inside an OpenMP parallel region.
#pragma once
#include <vector>

#include "view.h"

namespace fastsr {

// out (h*r, w*r, c/(r*r)) from x (h, w, c), PyTorch channel order c = co*r*r + i*r + j,
// plus skip (out's shape; it may be out itself) when given.
void pixel_shuffle(const View& x, int r, const View& out, const View* skip = nullptr);
// out (h/r, w/r, c*r*r) from x (h, w, c), the inverse of pixel_shuffle.
void pixel_unshuffle(const View& x, int r, const View& out);
// out (1, 1, c): mean over each image's pixels. `partial` holds per-thread sums; it is
// sized on the first run and reused after.
void global_avg_pool(const View& x, const View& out, std::vector<double>& partial);

}  // namespace fastsr
