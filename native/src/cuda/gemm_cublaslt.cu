// Row-major GEMM (core/blas.h's GemmParams) through cuBLASLt. cuBLASLt is
// column-major: a row-major [R×C] matrix with row stride ld is a column-major
// [C×R] one with the same ld, so C = op(A)·op(B) is computed as
// Cᵀ = op(B)ᵀ·op(A)ᵀ with B passed first and no data moved.
//
// Descriptors and the heuristic's algorithm are cached per shape: a training
// step repeats the same few GEMMs, and the heuristic query costs more than a
// small GEMM.
//
// gemm_bias_cuda adds a bias row in cuBLASLt's epilogue. The first H200
// profile showed why: filling C with the bias and accumulating onto it
// (beta = 1) cost a full extra write and read of C, and took BERT-base's
// forward GEMMs to 180–200 TFLOP/s against 440–650 for the backward's.
#include <cuda_runtime.h>

#if __has_include(<cublasLt.h>)
#include <cublasLt.h>
#else
// This machine has nvcc but not cuBLAS (CI): declarations of the few cuBLASLt
// entry points we call let the compile check type-check this file. A real
// build always uses the toolkit's header (CMakeLists.txt requires it).
#include "cublaslt_decls.h"
#endif

#include <mutex>
#include <string>
#include <unordered_map>

#include "../core/blas.h"
#include "../core/dtype.h"
#include "../core/error.h"
#include "../ops/linalg.h"
#include "runtime.h"

namespace cloze {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLASLt's advice for Hopper

void check_lt(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    fail(st == CUBLAS_STATUS_ALLOC_FAILED ? ErrCode::OOM : ErrCode::Cuda, "gemm",
         std::string(what) + " failed with cuBLAS status " + std::to_string(static_cast<int>(st)));
}

struct Key {
  int dtype;
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  bool beta0;
  bool bias;  // the bias epilogue (the pointer itself is set per call)
  bool operator==(const Key& o) const {
    return dtype == o.dtype && ta == o.ta && tb == o.tb && M == o.M && N == o.N && K == o.K && lda == o.lda &&
           ldb == o.ldb && ldc == o.ldc && beta0 == o.beta0 && bias == o.bias;
  }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = static_cast<size_t>(k.dtype) * 1315423911u ^ (k.ta ? 7 : 0) ^ (k.tb ? 13 : 0) ^ (k.beta0 ? 17 : 0) ^
               (k.bias ? 257 : 0);
    for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc}) h = h * 1000003u ^ static_cast<size_t>(v);
    return h;
  }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // a = our B (first operand), b = our A
  cublasLtMatmulAlgo_t algo;
};

struct Lt {
  std::mutex mu;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::unordered_map<Key, Plan, KeyHash> plans;
};

Lt& lt() {
  static Lt* s = new Lt();  // never destroyed: the driver releases it at exit
  return *s;
}

cudaDataType_t data_type(int dtype) { return dtype == static_cast<int>(DType::BF16) ? CUDA_R_16BF : CUDA_R_32F; }

// The cached plan of k; null when k asks for the bias epilogue and cuBLASLt
// has no algorithm with it (the caller then adds the bias itself).
const Plan* plan_for(Lt& L, const Key& k) {
  auto it = L.plans.find(k);
  if (it != L.plans.end()) return it->second.desc ? &it->second : nullptr;
  if (!L.handle) {
    check_lt(cublasLtCreate(&L.handle), "cublasLtCreate");
    cloze::cuda::check(cudaMalloc(&L.workspace, kWorkspaceBytes), "gemm", "cudaMalloc (cuBLASLt workspace)");
  }
  Plan p;
  const cudaDataType_t t = data_type(k.dtype);
  check_lt(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t opa = k.tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // first operand is our B
  const cublasOperation_t opb = k.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_lt(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "set TRANSA");
  check_lt(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "set TRANSB");
  if (k.bias) {
    // D is column-major [N × M] here, so the length-N bias is per row of D:
    // exactly what the BIAS epilogue broadcasts. The bias has D's type.
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    check_lt(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "set EPILOGUE");
  }
  // Column-major layouts of the stored matrices (see the file comment).
  const uint64_t a_rows = k.tb ? k.K : k.N, a_cols = k.tb ? k.N : k.K;
  const uint64_t b_rows = k.ta ? k.M : k.K, b_cols = k.ta ? k.K : k.M;
  check_lt(cublasLtMatrixLayoutCreate(&p.a, t, a_rows, a_cols, k.ldb), "layout of B");
  check_lt(cublasLtMatrixLayoutCreate(&p.b, t, b_rows, b_cols, k.lda), "layout of A");
  check_lt(cublasLtMatrixLayoutCreate(&p.c, t, k.N, k.M, k.ldc), "layout of C");
  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = kWorkspaceBytes;
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
           "set workspace");
  cublasLtMatmulHeuristicResult_t res;
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(L.handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (k.bias && (st != CUBLAS_STATUS_SUCCESS || found == 0)) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
    L.plans.emplace(k, Plan{});  // remembered: no epilogue for this shape
    return nullptr;
  }
  check_lt(st, "cublasLtMatmulAlgoGetHeuristic");
  if (found == 0)
    fail(ErrCode::Internal, "gemm",
         "cuBLASLt found no algorithm for M=" + std::to_string(k.M) + " N=" + std::to_string(k.N) +
             " K=" + std::to_string(k.K) + " (lda " + std::to_string(k.lda) + ", ldb " + std::to_string(k.ldb) +
             ", ldc " + std::to_string(k.ldc) + ")");
  p.algo = res.algo;
  return &L.plans.emplace(k, p).first->second;
}

template <typename T>
constexpr int dtype_of() {
  return std::is_same_v<T, bf16> ? static_cast<int>(DType::BF16) : static_cast<int>(DType::F32);
}

}  // namespace

template <typename T>
void gemm_cuda(const GemmParams& p) {
  gemm_bias_cuda<T>(p, static_cast<const T*>(p.bias));  // the field blas.h documents, in cuBLASLt's epilogue
}

template <typename T>
void gemm_bias_cuda(const GemmParams& p, const T* bias) {
  if (p.M == 0 || p.N == 0) return;
  const float alpha = static_cast<float>(p.alpha), beta = static_cast<float>(p.beta);
  if (bias && (beta != 0.f || p.K == 0 || reinterpret_cast<uintptr_t>(bias) % 16 != 0)) {
    // Outside the epilogue's case (C is accumulated into, K = 0, or a bias
    // view off 16-byte alignment): start C from the bias and accumulate.
    if (beta != 0.f) fail(ErrCode::Internal, "gemm", "a bias with beta other than 0");
    bias_rows_cuda<T>(static_cast<T*>(p.C), p.ldc, bias, p.M, p.N, "gemm");
    GemmParams q = p;
    q.bias = nullptr;  // applied above; never twice
    q.beta = 1.0;
    gemm_bias_cuda<T>(q, nullptr);
    return;
  }
  if (p.K == 0) {
    // cuBLASLt rejects K = 0; C = beta·C is then the whole answer.
    if (beta == 0.f) {
      for (int64_t r = 0; r < p.M; r++)
        cuda::memset_zero(static_cast<char*>(p.C) + r * p.ldc * sizeof(T), p.N * sizeof(T), "gemm");
      return;
    }
    if (beta == 1.f) return;
    fail(ErrCode::Value, "gemm", "K = 0 with beta other than 0 or 1 is not supported on cuda");
  }
  Lt& L = lt();
  std::unique_lock<std::mutex> lk(L.mu);
  const Key key{dtype_of<T>(), p.trans_a, p.trans_b, p.M, p.N, p.K, p.lda, p.ldb, p.ldc, beta == 0.f, bias != nullptr};
  const Plan* found = plan_for(L, key);
  if (!found) {  // only with a bias: no algorithm has the epilogue for this shape
    lk.unlock();
    bias_rows_cuda<T>(static_cast<T*>(p.C), p.ldc, bias, p.M, p.N, "gemm");
    GemmParams q = p;
    q.bias = nullptr;  // applied above; never twice
    q.beta = 1.0;
    gemm_bias_cuda<T>(q, nullptr);
    return;
  }
  const Plan& pl = *found;
  if (bias) {
    const void* ptr = bias;
    check_lt(cublasLtMatmulDescSetAttribute(pl.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ptr, sizeof ptr),
             "set BIAS_POINTER");
  }
  check_lt(cublasLtMatmul(L.handle, pl.desc, &alpha, p.B, pl.a, p.A, pl.b, &beta, p.C, pl.c, p.C, pl.c, &pl.algo,
                          L.workspace, kWorkspaceBytes, cuda::stream()),
           "cublasLtMatmul");
}

template void gemm_cuda<float>(const GemmParams&);
template void gemm_cuda<bf16>(const GemmParams&);
template void gemm_bias_cuda<float>(const GemmParams&, const float*);
template void gemm_bias_cuda<bf16>(const GemmParams&, const bf16*);

}  // namespace cloze
