// One-pass Adam(W) leaf update for XLA:CPU, called through jax.ffi.
//
// Built and loaded by gradtx/engines/native.py; see adam_leaf_step there.
// Inputs are p, g, m, v (float32, same element count, row-major, any rank)
// and s, a float32 vector of runtime scalars (12 per batch row, see Scalars
// below). Outputs p', m', v' are aliased by the caller to p, m, v, so the
// update reads and writes each buffer once: 16 bytes read and 12 written per
// element.
//
// The per-element maths is gradtx's jnp definition, adam_leaf in
// gradtx/transforms/adam.py, followed by the decay and learning-rate terms of
// adamw; every scalar coefficient (complements 1 - b, bias corrections, step
// size, decay, clip factor) is computed in Python by the functions the jnp
// path uses and passed in s. The kernel writes the expression as it stands,
// each operation rounded once in float32 (built with -ffp-contract=off: no
// fused multiply-adds). XLA may compile the jnp expression with other
// roundings (FMAs, x * (1/c) for x / c), so the two agree to the ulp bound
// stated in tests/engines/test_native.py, not bit for bit.
//
// Under vmap (vmap_method="broadcast_all") every operand gains the same
// leading batch dimensions: s then holds 12 scalars per batch row, and the
// row of p, g, m, v that row r covers is [r*n/rows, (r+1)*n/rows).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kNumScalars = 12;
// Below this many elements one thread does the whole leaf.
constexpr int64_t kParallelThreshold = 1 << 18;
// Work unit of the threads: 64K floats (256 KiB per array), a multiple of 16
// floats so that every chunk but the last starts on a 64-byte boundary
// relative to the buffer (XLA:CPU buffers are themselves 64-byte aligned).
constexpr int64_t kChunk = 1 << 16;

struct Scalars {
  float f, b1, omb1, b2, omb2, c1, c2, c1n, eps, eps_root, wd, nlr;
};

Scalars LoadScalars(const float* s) {
  return Scalars{s[0], s[1], s[2], s[3], s[4],  s[5],
                 s[6], s[7], s[8], s[9], s[10], s[11]};
}

// In place over [0, n): p, m, v are read and written, g only read. The
// pointers never alias one another (XLA copies an aliased operand that is
// also used elsewhere), hence __restrict__, which lets GCC vectorise without
// runtime overlap checks. Scalars are copied into locals for the same reason.
// kScaled is false when the caller has no clip factor: g is then used as is.
template <bool kNesterov, bool kDecay, bool kScaled>
void AdamSpan(float* __restrict__ p, const float* __restrict__ g,
              float* __restrict__ m, float* __restrict__ v, int64_t n,
              const Scalars& s) {
  const float f = s.f, b1 = s.b1, omb1 = s.omb1, b2 = s.b2, omb2 = s.omb2;
  const float c1 = s.c1, c2 = s.c2, c1n = s.c1n;
  const float eps = s.eps, eps_root = s.eps_root, wd = s.wd, nlr = s.nlr;
  for (int64_t i = 0; i < n; ++i) {
    const float pi = p[i];
    const float gs = kScaled ? g[i] * f : g[i];
    // adam_leaf (gradtx/transforms/adam.py), term by term:
    const float mi = omb1 * gs + b1 * m[i];
    const float vi = omb2 * (gs * gs) + b2 * v[i];
    const float mh = kNesterov ? b1 * (mi / c1n) + omb1 * (gs / c1) : mi / c1;
    float u = mh / (std::sqrt(vi / c2 + eps_root) + eps);
    if (kDecay) u = u + wd * pi;  // add_decayed_weights
    p[i] = pi + nlr * u;          // scale(-lr), apply_updates
    m[i] = mi;
    v[i] = vi;
  }
}

template <bool kNesterov, bool kScaled>
void AdamSpanDecay(float* p, const float* g, float* m, float* v, int64_t n,
                   const Scalars& s) {
  // wd == 0 skips the decay term: u + 0 * p is not u when p is inf or nan,
  // and the jnp path without a decay transform has no such term.
  if (s.wd != 0.0f) {
    AdamSpan<kNesterov, true, kScaled>(p, g, m, v, n, s);
  } else {
    AdamSpan<kNesterov, false, kScaled>(p, g, m, v, n, s);
  }
}

void AdamSpanDispatch(float* p, const float* g, float* m, float* v, int64_t n,
                      const Scalars& s, bool nesterov, bool scaled) {
  if (nesterov) {
    scaled ? AdamSpanDecay<true, true>(p, g, m, v, n, s)
           : AdamSpanDecay<true, false>(p, g, m, v, n, s);
  } else {
    scaled ? AdamSpanDecay<false, true>(p, g, m, v, n, s)
           : AdamSpanDecay<false, false>(p, g, m, v, n, s);
  }
}

struct Job {
  const float *p_in, *g, *m_in, *v_in, *s;
  float *p, *m, *v;
  int64_t n, rows, row_len, chunks;
  bool nesterov, scaled;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

// Chunk c covers [c*kChunk, min(n, (c+1)*kChunk)) of the flat leaf, split at
// batch-row boundaries so that each piece uses its own row's scalars.
void RunChunk(const Job& job, int64_t c) {
  int64_t lo = c * kChunk;
  const int64_t hi = std::min(job.n, lo + kChunk);
  if (job.p != job.p_in) std::memcpy(job.p + lo, job.p_in + lo, (hi - lo) * 4);
  if (job.m != job.m_in) std::memcpy(job.m + lo, job.m_in + lo, (hi - lo) * 4);
  if (job.v != job.v_in) std::memcpy(job.v + lo, job.v_in + lo, (hi - lo) * 4);
  while (lo < hi) {
    const int64_t row = lo / job.row_len;
    const int64_t end = std::min(hi, (row + 1) * job.row_len);
    const Scalars s = LoadScalars(job.s + row * kNumScalars);
    AdamSpanDispatch(job.p + lo, job.g + lo, job.m + lo, job.v + lo, end - lo,
                     s, job.nesterov, job.scaled);
    lo = end;
  }
}

// Claims chunks until none is left; returns after its last one is done.
void Drain(Job& job) {
  for (;;) {
    const int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.chunks) return;
    RunChunk(job, c);
    job.done.fetch_add(1, std::memory_order_release);
  }
}

ffi::Error AdamLeafImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> p,
                        ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> m,
                        ffi::Buffer<ffi::F32> v, ffi::Buffer<ffi::F32> s,
                        ffi::ResultBuffer<ffi::F32> p_out,
                        ffi::ResultBuffer<ffi::F32> m_out,
                        ffi::ResultBuffer<ffi::F32> v_out, bool nesterov,
                        bool scaled) {
  const int64_t n = static_cast<int64_t>(p.element_count());
  if (static_cast<int64_t>(g.element_count()) != n ||
      static_cast<int64_t>(m.element_count()) != n ||
      static_cast<int64_t>(v.element_count()) != n ||
      static_cast<int64_t>(p_out->element_count()) != n ||
      static_cast<int64_t>(m_out->element_count()) != n ||
      static_cast<int64_t>(v_out->element_count()) != n) {
    return ffi::Error::InvalidArgument(
        "gradtx_adam_leaf: p, g, m, v and the outputs must have the same "
        "number of elements");
  }
  const int64_t ns = static_cast<int64_t>(s.element_count());
  if (ns < kNumScalars || ns % kNumScalars != 0 ||
      (n > 0 && n % (ns / kNumScalars) != 0)) {
    return ffi::Error::InvalidArgument(
        "gradtx_adam_leaf: s must hold 12 float32 scalars per batch row, got " +
        std::to_string(ns) + " for " + std::to_string(n) + " elements");
  }
  if (n == 0) return ffi::Error::Success();

  auto job = std::make_shared<Job>();
  job->p_in = p.typed_data();
  job->g = g.typed_data();
  job->m_in = m.typed_data();
  job->v_in = v.typed_data();
  job->s = s.typed_data();
  job->p = p_out->typed_data();
  job->m = m_out->typed_data();
  job->v = v_out->typed_data();
  job->n = n;
  job->rows = ns / kNumScalars;
  job->row_len = n / job->rows;
  job->chunks = (n + kChunk - 1) / kChunk;
  job->nesterov = nesterov;
  job->scaled = scaled;

  int64_t helpers = 0;
  if (n >= kParallelThreshold) {
    helpers = std::min<int64_t>(pool.num_threads(), job->chunks) - 1;
  }
  // Helpers share the Job through a shared_ptr: one that starts after the
  // caller has returned finds no chunk left and touches no buffer.
  for (int64_t t = 0; t < helpers; ++t) {
    pool.Schedule([job] { Drain(*job); });
  }
  Drain(*job);
  // The caller has claimed chunks too, so this wait never depends on a helper
  // having started (no deadlock when every pool thread is busy).
  while (job->done.load(std::memory_order_acquire) < job->chunks) {
    std::this_thread::yield();
  }
  return ffi::Error::Success();
}

}  // namespace

// The only exported symbol (the library is built with -fvisibility=hidden).
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* GradtxAdamLeaf(
    XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(GradtxAdamLeaf, AdamLeafImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // p
                                  .Arg<ffi::Buffer<ffi::F32>>()  // g
                                  .Arg<ffi::Buffer<ffi::F32>>()  // m
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v
                                  .Arg<ffi::Buffer<ffi::F32>>()  // s
                                  .Ret<ffi::Buffer<ffi::F32>>()  // p'
                                  .Ret<ffi::Buffer<ffi::F32>>()  // m'
                                  .Ret<ffi::Buffer<ffi::F32>>()  // v'
                                  .Attr<bool>("nesterov")
                                  .Attr<bool>("scaled"));
