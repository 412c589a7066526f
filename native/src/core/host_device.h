// CLOZE_HD marks a function the CPU code and the CUDA kernels both call (one definition of a rule both
// backends must follow bit for bit: Philox draws, label-word pooling, AdamW's clip and guard).
#pragma once

#if defined(__CUDACC__)
#define CLOZE_HD __host__ __device__
#else
#define CLOZE_HD
#endif
