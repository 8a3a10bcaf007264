// Whole-sequence loops of SimpleRNN, LSTM and GRU on the CPU, forward and backward, as
// TensorFlow ops (build.py compiles them, ops.py loads and calls them).
//
// Why: a recurrent step in a TensorFlow while loop is about 20 ops around one small matmul, and
// every op costs a few microseconds of dispatch whatever its size, so the loop spends most of
// its time between ops (README.md, How it works). Here one op runs every step of a layer. The
// input part of the gates (inputs @ kernel + bias, all steps in one large matmul) and the
// kernels' gradients (one large matmul each) stay in TensorFlow, outside these ops.
//
// Every batch row is its own recurrence, so the batch is split into one block of rows per
// thread of TensorFlow's intra-op pool, and each block runs all its steps without waiting for
// the others.
//
// The same bits on every x86-64 CPU, whatever the vector width the build uses (AVX-512, AVX2 or
// SSE) and whatever the threads: every number is a fixed sequence of IEEE operations. Loops are
// vectorized across independent outputs only; each product's sum runs over its terms in one
// order (fused multiply-adds from zero, then added to the output); fused multiply-adds are
// written out (std::fma, or the vector instruction in the products' tiles) and the compiler may
// not contract anything else (the pragma below). The sequence is the one Eigen's AVX-512 code
// took before (its matrix product, its tanh and logistic, and the compiler's contractions of its
// expressions), so with the project's sizes an AVX-512 machine computes what it computed with
// Eigen; a build without FMA instructions computes std::fma in software, exactly and slowly.
//
// Layouts are time-major and row-major: sequences are [T, B, width], kernels [U, G]. The math is
// that of Keras' SimpleRNN, LSTM and GRU cells (Keras' gate orders: LSTM i, f, c, o; GRU z, r, h
// with reset_after=True); tests/fast_rnn/test_layers.py checks outputs and gradients against them.
#pragma GCC optimize("fp-contract=off")
// Nothing reads errno or the floating-point exception flags, and without them std::fma and
// std::floor vectorize; every result stays the same.
#pragma GCC optimize("no-math-errno", "no-trapping-math")

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::InferenceContext;

struct Sizes {
  int64_t steps, batch, units, gates;
};

// Row `row` of step t of a [T, B, width] sequence (and the rows after it).
inline float* At(float* sequence, const Sizes& s, int64_t width, int64_t t, int64_t row) {
  return sequence + (t * s.batch + row) * width;
}
inline const float* At(const float* sequence, const Sizes& s, int64_t width, int64_t t,
                       int64_t row) {
  return sequence + (t * s.batch + row) * width;
}

// The state a row started step t from: the initial state at t = 0.
inline const float* Previous(const float* sequence, const float* initial, const Sizes& s,
                             int64_t t, int64_t row) {
  return t == 0 ? initial + row * s.units : At(sequence, s, s.units, t - 1, row);
}

// Runs work(first_row, last_row) on one block of rows per intra-op thread.
template <typename Work>
void ForRowBlocks(OpKernelContext* context, int64_t batch, const Work& work) {
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  // Blocks of fewer than 16 rows make matmuls too small to pay for the thread.
  const int64_t blocks =
      std::max<int64_t>(1, std::min<int64_t>(pool->NumThreads(), (batch + 15) / 16));
  const int64_t rows = (batch + blocks - 1) / blocks;
  pool->ParallelFor(blocks, /*cost_per_unit=*/int64_t{1} << 40,
                    [&](int64_t first_block, int64_t last_block) {
                      for (int64_t block = first_block; block < last_block; ++block) {
                        const int64_t first = block * rows;
                        const int64_t last = std::min(batch, first + rows);
                        if (first < last) work(first, last);
                      }
                    });
}

// ---------------------------------------------------------------------------------------------
// Arithmetic with one result per input, whatever the vector width.

// A tile of out[Rows, Width] += a[Rows, depth] @ b[depth, Width]: each output's products are
// summed k = 0, 1, ... by fused multiply-adds from +0, and the sum is then added to the output.
// The tile only sets how many sums run side by side; no sum depends on it.
template <int64_t Rows, int64_t Width>
inline void AddProductTile(const float* a, int64_t a_stride, const float* b, int64_t b_stride,
                           int64_t depth, float* out, int64_t out_stride) {
  float sums[Rows][Width] = {};
  for (int64_t k = 0; k < depth; ++k) {
    const float* b_k = b + k * b_stride;
    for (int64_t r = 0; r < Rows; ++r) {
      const float a_rk = a[r * a_stride + k];
      for (int64_t j = 0; j < Width; ++j) sums[r][j] = std::fma(a_rk, b_k[j], sums[r][j]);
    }
  }
  for (int64_t r = 0; r < Rows; ++r) {
    for (int64_t j = 0; j < Width; ++j) out[r * out_stride + j] += sums[r][j];
  }
}

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
// The same tile in vector registers, written out: left to itself, the compiler unrolls the
// narrow AVX2 tile and then vectorizes it badly. The arithmetic is the scalar tile's, lane by
// lane (a vector fused multiply-add rounds each lane as std::fma does).
#if defined(__AVX512F__)
using Packet = __m512;
constexpr int64_t kLanes = 16;
inline Packet Load(const float* from) { return _mm512_loadu_ps(from); }
inline void Store(float* to, Packet value) { _mm512_storeu_ps(to, value); }
inline Packet Broadcast(float value) { return _mm512_set1_ps(value); }
inline Packet MultiplyAdd(Packet a, Packet b, Packet c) { return _mm512_fmadd_ps(a, b, c); }
inline Packet Add(Packet a, Packet b) { return _mm512_add_ps(a, b); }
inline Packet Zero() { return _mm512_setzero_ps(); }
#else
using Packet = __m256;
constexpr int64_t kLanes = 8;
inline Packet Load(const float* from) { return _mm256_loadu_ps(from); }
inline void Store(float* to, Packet value) { _mm256_storeu_ps(to, value); }
inline Packet Broadcast(float value) { return _mm256_set1_ps(value); }
inline Packet MultiplyAdd(Packet a, Packet b, Packet c) { return _mm256_fmadd_ps(a, b, c); }
inline Packet Add(Packet a, Packet b) { return _mm256_add_ps(a, b); }
inline Packet Zero() { return _mm256_setzero_ps(); }
#endif

template <int64_t Rows, int64_t Packets>
inline void AddProductPacketTile(const float* a, int64_t a_stride, const float* b,
                                 int64_t b_stride, int64_t depth, float* out,
                                 int64_t out_stride) {
  Packet sums[Rows][Packets];
  for (int64_t r = 0; r < Rows; ++r) {
    for (int64_t p = 0; p < Packets; ++p) sums[r][p] = Zero();
  }
  for (int64_t k = 0; k < depth; ++k) {
    const float* b_k = b + k * b_stride;
    Packet b_kp[Packets];
    for (int64_t p = 0; p < Packets; ++p) b_kp[p] = Load(b_k + p * kLanes);
    for (int64_t r = 0; r < Rows; ++r) {
      const Packet a_rk = Broadcast(a[r * a_stride + k]);
      for (int64_t p = 0; p < Packets; ++p) sums[r][p] = MultiplyAdd(a_rk, b_kp[p], sums[r][p]);
    }
  }
  for (int64_t r = 0; r < Rows; ++r) {
    for (int64_t p = 0; p < Packets; ++p) {
      float* to = out + r * out_stride + p * kLanes;
      Store(to, Add(Load(to), sums[r][p]));
    }
  }
}
// 4 rows by 2 vectors, 8 sums in registers: of 4x2, 4x3, 3x3 and 2x4, the fastest with AVX2
// and within the noise of the fastest with AVX-512 (the three cells, 2026-12-07).
constexpr int64_t kTilePackets = 2;
constexpr int64_t kTileWidth = kTilePackets * kLanes;
#define FAST_RNN_PACKET_TILES 1
#else
constexpr int64_t kTileWidth = 16;
#endif
constexpr int64_t kTileRows = 4;

template <int64_t Rows>
void AddProductRows(const float* a, const float* b, int64_t depth, int64_t width, float* out) {
  int64_t j = 0;
#ifdef FAST_RNN_PACKET_TILES
  for (; j + kTileWidth <= width; j += kTileWidth) {
    AddProductPacketTile<Rows, kTilePackets>(a, depth, b + j, width, depth, out + j, width);
  }
  for (; j + kLanes <= width; j += kLanes) {
    AddProductPacketTile<Rows, 1>(a, depth, b + j, width, depth, out + j, width);
  }
#else
  for (; j + kTileWidth <= width; j += kTileWidth) {
    AddProductTile<Rows, kTileWidth>(a, depth, b + j, width, depth, out + j, width);
  }
#endif
  for (; j < width; ++j) AddProductTile<Rows, 1>(a, depth, b + j, width, depth, out + j, width);
}

// out[rows, width] += a[rows, depth] @ b[depth, width], all row-major and dense.
void AddProduct(const float* a, const float* b, int64_t rows, int64_t depth, int64_t width,
                float* out) {
  int64_t r = 0;
  for (; r + kTileRows <= rows; r += kTileRows) {
    AddProductRows<kTileRows>(a + r * depth, b, depth, width, out + r * width);
  }
  for (; r < rows; ++r) AddProductRows<1>(a + r * depth, b, depth, width, out + r * width);
}

// Eigen's float tanh (ptanh_float, its FMA variant): a [9, 8] rational approximation.
inline float Tanh(float input) {
  constexpr float kClamp = 8.01773357391357422f;  // tanh is exactly +-1 in float beyond it
  const float x = std::max(std::min(input, kClamp), -kClamp);
  const float x2 = x * x;
  const float x3 = x2 * x;
  float p = std::fma(std::fma(std::fma(1.394553628e-8f, x2, 2.102733560e-5f), x2,
                              3.520756727e-3f), x2, 1.340216100e-1f);
  const float q = std::fma(std::fma(std::fma(std::fma(8.015776984e-7f, x2, 3.326951409e-4f), x2,
                                             2.597254514e-2f), x2, 4.673548340e-1f), x2, 1.0f);
  p = std::fma(x3, p, x);
  return p / q;
}

// Eigen's float logistic (scalar_logistic_op<float>::packetOp): e = exp(x / 2)^2, e / (1 + e).
inline float Logistic(float input) {
  float x = std::min(input, 16.6355324f) * 0.5f;
  // exp(x) = 2^m * exp(r), with r = x - m * ln(2) subtracted in two parts (Cephes).
  const float m = std::floor(std::fma(x, 1.44269504088896341f, 0.5f));
  float r = std::fma(m, -0.693359375f, x);
  r = std::fma(m, 2.12194440e-4f, r);
  const float r2 = r * r;
  const float p_even = std::fma(r2, 4.1898667812347412109375e-2f, 0.49999141693115234375f);
  const float p_odd = std::fma(r2, 8.33471305668354034423828125e-3f, 0.16666877269744873046875f);
  float p = std::fma(r, p_odd, p_even);
  p = std::fma(r2, p, r + 1.0f);
  // 2^m from its exponent bits (m is a whole number within float's exponents here).
  const int32_t exponent_bits =
      static_cast<int32_t>(std::min(std::max(m + 127.0f, 0.0f), 255.0f)) << 23;
  float e = p * __builtin_bit_cast(float, exponent_bits);
  e = e * e;
  const float s = e / (1.0f + e);
  return input < -104.0f ? 0.0f : s;
}

// out[i] = Tanh(a[i] + b[i]).
inline void TanhOfSum(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = Tanh(a[i] + b[i]);
}

// The recurrent kernel transposed, [G, U]: the backward pass's products read it row by row.
std::vector<float> Transposed(const float* kernel, const Sizes& s) {
  std::vector<float> transposed(s.units * s.gates);
  for (int64_t i = 0; i < s.units; ++i) {
    for (int64_t g = 0; g < s.gates; ++g) transposed[g * s.units + i] = kernel[i * s.gates + g];
  }
  return transposed;
}

// matrix[rows, G] = previous[rows, U] @ kernel[U, G] (from +0, as Eigen's product assigned).
inline void Project(const float* previous, const float* kernel, const Sizes& s, int64_t rows,
                    float* out) {
  std::fill(out, out + rows * s.gates, 0.0f);
  AddProduct(previous, kernel, rows, s.units, s.gates, out);
}
// out[rows, U] += d_gates[rows, G] @ kernel^T, given kernel^T [G, U].
inline void AddBackProjected(const float* d_gates, const float* transposed_kernel,
                             const Sizes& s, int64_t rows, float* out) {
  AddProduct(d_gates, transposed_kernel, rows, s.gates, s.units, out);
}

// The sizes, from the inputs holding a [T, B, ...] sequence and a [U, gates_per_unit * U]
// kernel. The Python side (ops.py) passes consistent shapes; a mismatch here fails
// the op, not the process.
Sizes CheckedSizes(OpKernelContext* context, int sequence_input, int kernel_input,
                   int64_t gates_per_unit) {
  const Tensor& sequence = context->input(sequence_input);
  const Tensor& kernel = context->input(kernel_input);
  if (sequence.dims() != 3 || kernel.dims() != 2 ||
      kernel.dim_size(1) != gates_per_unit * kernel.dim_size(0)) {
    context->SetStatus(::tensorflow::errors::InvalidArgument(
        "expected a [T, B, width] sequence and a [U, ", gates_per_unit,
        " * U] recurrent kernel, got ", sequence.shape().DebugString(), " and ",
        kernel.shape().DebugString()));
    return Sizes{0, 0, 0, 0};
  }
  const int64_t units = kernel.dim_size(0);
  return Sizes{sequence.dim_size(0), sequence.dim_size(1), units, gates_per_unit * units};
}

const float* In(OpKernelContext* context, int index) {
  return context->input(index).flat<float>().data();
}

// Allocates output `index`: nullptr, with the context's status set, if that fails or an earlier
// check did.
float* Out(OpKernelContext* context, int index, std::initializer_list<int64_t> shape) {
  Tensor* out = nullptr;
  if (context->status().ok()) {
    context->SetStatus(context->allocate_output(index, TensorShape(shape), &out));
  }
  return out == nullptr ? nullptr : out->flat<float>().data();
}

// ---------------------------------------------------------------------------------------------
// SimpleRNN: h_t = tanh(x_t + h_{t-1} @ R).

class SimpleRnnSequence : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    // inputs, initial_state, recurrent_kernel
    const Sizes s = CheckedSizes(context, 0, 2, 1);
    float* hs = Out(context, 0, {s.steps, s.batch, s.units});
    if (!context->status().ok()) return;
    const float *x = In(context, 0), *h0 = In(context, 1), *r = In(context, 2);
    ForRowBlocks(context, s.batch, [&](int64_t first, int64_t last) {
      const int64_t rows = last - first;
      for (int64_t t = 0; t < s.steps; ++t) {
        float* h = At(hs, s, s.units, t, first);
        Project(Previous(hs, h0, s, t, first), r, s, rows, h);
        TanhOfSum(h, At(x, s, s.units, t, first), rows * s.units, h);
      }
    });
  }
};

class SimpleRnnSequenceGrad : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    // d_states, d_final_state, states, recurrent_kernel
    const Sizes s = CheckedSizes(context, 2, 3, 1);
    float* d_zs = Out(context, 0, {s.steps, s.batch, s.units});
    float* d_h0 = Out(context, 1, {s.batch, s.units});
    if (!context->status().ok()) return;
    const float *d_hs = In(context, 0), *d_h_final = In(context, 1), *hs = In(context, 2);
    const std::vector<float> r_t = Transposed(In(context, 3), s);
    ForRowBlocks(context, s.batch, [&](int64_t first, int64_t last) {
      const int64_t n = (last - first) * s.units;
      // The gradient reaching h_t from after step t: from step t + 1, or as the final state.
      float* carry = d_h0 + first * s.units;
      std::copy_n(d_h_final + first * s.units, n, carry);
      for (int64_t t = s.steps - 1; t >= 0; --t) {
        const float* h = At(hs, s, s.units, t, first);
        const float* d_h = At(d_hs, s, s.units, t, first);
        float* d_z = At(d_zs, s, s.units, t, first);
        for (int64_t i = 0; i < n; ++i) {
          d_z[i] = (d_h[i] + carry[i]) * std::fma(-h[i], h[i], 1.0f);
          carry[i] = 0.0f;
        }
        AddBackProjected(d_z, r_t.data(), s, last - first, carry);
      }
    });
  }
};

// ---------------------------------------------------------------------------------------------
// LSTM: z = x_t + h_{t-1} @ R; i, f, o = sigmoid, g = tanh of z's quarters;
// c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t).

// One row's step, from its pre-activations z [4U] (restrict: the rows' arrays never overlap, and
// without the promise the loop is not vectorized).
void LstmStepRow(const float* __restrict z, const float* __restrict c_previous, int64_t u,
                 float* __restrict c, float* __restrict h) {
  for (int64_t j = 0; j < u; ++j) {
    const float i = Logistic(z[j]), f = Logistic(z[u + j]), g = Tanh(z[2 * u + j]),
                o = Logistic(z[3 * u + j]);
    c[j] = std::fma(i, g, f * c_previous[j]);
    h[j] = o * Tanh(c[j]);
  }
}

// One row's step backward: d_z [4U] from the gradients reaching h_t (d_h_t and carry_h) and
// c_t (carry_c); carry_c becomes the gradient reaching c_{t-1}, carry_h is zeroed for the
// recurrent product to add to.
void LstmStepGradRow(const float* __restrict z, const float* __restrict c,
                     const float* __restrict c_previous, const float* __restrict d_h_t, int64_t u,
                     float* __restrict d_z, float* __restrict carry_h,
                     float* __restrict carry_c) {
  for (int64_t j = 0; j < u; ++j) {
    const float i = Logistic(z[j]), f = Logistic(z[u + j]), g = Tanh(z[2 * u + j]),
                o = Logistic(z[3 * u + j]);
    const float tanh_c = Tanh(c[j]);
    const float d_h = d_h_t[j] + carry_h[j];
    const float d_c = std::fma(d_h * o, std::fma(-tanh_c, tanh_c, 1.0f), carry_c[j]);
    d_z[j] = d_c * g * i * (1.0f - i);
    d_z[u + j] = d_c * c_previous[j] * f * (1.0f - f);
    d_z[2 * u + j] = d_c * i * std::fma(-g, g, 1.0f);
    d_z[3 * u + j] = d_h * tanh_c * o * (1.0f - o);
    carry_c[j] = d_c * f;
    carry_h[j] = 0.0f;
  }
}

class LstmSequence : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    // inputs, initial_state, initial_carry, recurrent_kernel
    const Sizes s = CheckedSizes(context, 0, 3, 4);
    float* hs = Out(context, 0, {s.steps, s.batch, s.units});
    float* cs = Out(context, 1, {s.steps, s.batch, s.units});
    float* zs = Out(context, 2, {s.steps, s.batch, s.gates});
    if (!context->status().ok()) return;
    const float *x = In(context, 0), *h0 = In(context, 1), *c0 = In(context, 2),
                *r = In(context, 3);
    const int64_t u = s.units;
    ForRowBlocks(context, s.batch, [&](int64_t first, int64_t last) {
      for (int64_t t = 0; t < s.steps; ++t) {
        Project(Previous(hs, h0, s, t, first), r, s, last - first, At(zs, s, s.gates, t, first));
        for (int64_t row = first; row < last; ++row) {
          float* z = At(zs, s, s.gates, t, row);
          const float* x_t = At(x, s, s.gates, t, row);
          for (int64_t j = 0; j < s.gates; ++j) z[j] += x_t[j];
          LstmStepRow(z, Previous(cs, c0, s, t, row), u, At(cs, s, u, t, row),
                      At(hs, s, u, t, row));
        }
      }
    });
  }
};

class LstmSequenceGrad : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    // d_states, d_final_state, d_final_carry, carries, pre_activations, initial_carry,
    // recurrent_kernel
    const Sizes s = CheckedSizes(context, 3, 6, 4);
    float* d_zs = Out(context, 0, {s.steps, s.batch, s.gates});
    float* d_h0 = Out(context, 1, {s.batch, s.units});
    float* d_c0 = Out(context, 2, {s.batch, s.units});
    if (!context->status().ok()) return;
    const float *d_hs = In(context, 0), *d_h_final = In(context, 1), *d_c_final = In(context, 2),
                *cs = In(context, 3), *zs = In(context, 4), *c0 = In(context, 5);
    const std::vector<float> r_t = Transposed(In(context, 6), s);
    const int64_t u = s.units;
    ForRowBlocks(context, s.batch, [&](int64_t first, int64_t last) {
      const int64_t n = (last - first) * u;
      // The gradients reaching h_t and c_t from after step t.
      float *carry_h = d_h0 + first * u, *carry_c = d_c0 + first * u;
      std::copy_n(d_h_final + first * u, n, carry_h);
      std::copy_n(d_c_final + first * u, n, carry_c);
      for (int64_t t = s.steps - 1; t >= 0; --t) {
        for (int64_t row = first; row < last; ++row) {
          LstmStepGradRow(At(zs, s, s.gates, t, row), At(cs, s, u, t, row),
                          Previous(cs, c0, s, t, row), At(d_hs, s, u, t, row), u,
                          At(d_zs, s, s.gates, t, row), carry_h + (row - first) * u,
                          carry_c + (row - first) * u);
        }
        AddBackProjected(At(d_zs, s, s.gates, t, first), r_t.data(), s, last - first, carry_h);
      }
    });
  }
};

// ---------------------------------------------------------------------------------------------
// GRU, reset_after=True: m = h_{t-1} @ R + b_R; z, r = sigmoid(x_zr + m_zr);
// candidate = tanh(x_h + r * m_h); h_t = candidate + z * (h_{t-1} - candidate).

// One row's step, from its input part x_t [3U] and recurrent part m [3U] (bias added).
void GruStepRow(const float* __restrict x_t, const float* __restrict m,
                const float* __restrict h_previous, int64_t u, float* __restrict h) {
  for (int64_t j = 0; j < u; ++j) {
    const float update = Logistic(x_t[j] + m[j]);
    const float reset = Logistic(x_t[u + j] + m[u + j]);
    const float candidate = Tanh(std::fma(reset, m[2 * u + j], x_t[2 * u + j]));
    h[j] = std::fma(update, h_previous[j] - candidate, candidate);
  }
}

// One row's step backward: the gradients of its input and recurrent parts from the gradient
// reaching h_t (d_h_t and carry); carry becomes the part that reaches h_{t-1} directly.
void GruStepGradRow(const float* __restrict x_t, const float* __restrict m,
                    const float* __restrict h_previous, const float* __restrict d_h_t, int64_t u,
                    float* __restrict d_x, float* __restrict d_m, float* __restrict carry) {
  for (int64_t j = 0; j < u; ++j) {
    const float update = Logistic(x_t[j] + m[j]);
    const float reset = Logistic(x_t[u + j] + m[u + j]);
    const float candidate = Tanh(std::fma(reset, m[2 * u + j], x_t[2 * u + j]));
    const float d_h = d_h_t[j] + carry[j];
    const float d_update = d_h * (h_previous[j] - candidate) * update * (1.0f - update);
    const float d_candidate = d_h * (1.0f - update) * std::fma(-candidate, candidate, 1.0f);
    const float d_reset = d_candidate * m[2 * u + j] * reset * (1.0f - reset);
    d_x[j] = d_update;
    d_x[u + j] = d_reset;
    d_x[2 * u + j] = d_candidate;
    d_m[j] = d_update;
    d_m[u + j] = d_reset;
    d_m[2 * u + j] = d_candidate * reset;
    carry[j] = d_h * update;
  }
}

class GruSequence : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    // inputs, initial_state, recurrent_kernel, recurrent_bias
    const Sizes s = CheckedSizes(context, 0, 2, 3);
    float* hs = Out(context, 0, {s.steps, s.batch, s.units});
    float* ms = Out(context, 1, {s.steps, s.batch, s.gates});
    if (!context->status().ok()) return;
    const float *x = In(context, 0), *h0 = In(context, 1), *r = In(context, 2),
                *b = In(context, 3);
    const int64_t u = s.units;
    ForRowBlocks(context, s.batch, [&](int64_t first, int64_t last) {
      for (int64_t t = 0; t < s.steps; ++t) {
        Project(Previous(hs, h0, s, t, first), r, s, last - first, At(ms, s, s.gates, t, first));
        for (int64_t row = first; row < last; ++row) {
          float* m = At(ms, s, s.gates, t, row);
          for (int64_t j = 0; j < s.gates; ++j) m[j] += b[j];
          GruStepRow(At(x, s, s.gates, t, row), m, Previous(hs, h0, s, t, row), u,
                     At(hs, s, u, t, row));
        }
      }
    });
  }
};

class GruSequenceGrad : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    // d_states, d_final_state, inputs, states, recurrent_parts, initial_state, recurrent_kernel
    const Sizes s = CheckedSizes(context, 2, 6, 3);
    float* d_xs = Out(context, 0, {s.steps, s.batch, s.gates});
    float* d_ms = Out(context, 1, {s.steps, s.batch, s.gates});
    float* d_h0 = Out(context, 2, {s.batch, s.units});
    if (!context->status().ok()) return;
    const float *d_hs = In(context, 0), *d_h_final = In(context, 1), *x = In(context, 2),
                *hs = In(context, 3), *ms = In(context, 4), *h0 = In(context, 5);
    const std::vector<float> r_t = Transposed(In(context, 6), s);
    const int64_t u = s.units;
    ForRowBlocks(context, s.batch, [&](int64_t first, int64_t last) {
      const int64_t n = (last - first) * u;
      // The gradient reaching h_t from after step t.
      float* carry = d_h0 + first * u;
      std::copy_n(d_h_final + first * u, n, carry);
      for (int64_t t = s.steps - 1; t >= 0; --t) {
        for (int64_t row = first; row < last; ++row) {
          GruStepGradRow(At(x, s, s.gates, t, row), At(ms, s, s.gates, t, row),
                         Previous(hs, h0, s, t, row), At(d_hs, s, u, t, row), u,
                         At(d_xs, s, s.gates, t, row), At(d_ms, s, s.gates, t, row),
                         carry + (row - first) * u);
        }
        AddBackProjected(At(d_ms, s, s.gates, t, first), r_t.data(), s, last - first, carry);
      }
    });
  }
};

// ---------------------------------------------------------------------------------------------

::tensorflow::Status SameAs(InferenceContext* c, int output, int input) {
  c->set_output(output, c->input(input));
  return ::tensorflow::OkStatus();
}

}  // namespace

REGISTER_OP("FastRnnSimpleRnnSequence")
    .Input("inputs: float")           // [T, B, U]: x_t @ kernel + bias
    .Input("initial_state: float")    // [B, U]
    .Input("recurrent_kernel: float") // [U, U]
    .Output("states: float")          // [T, B, U]
    .SetShapeFn([](InferenceContext* c) { return SameAs(c, 0, 0); });
REGISTER_OP("FastRnnSimpleRnnSequenceGrad")
    .Input("d_states: float")         // [T, B, U]
    .Input("d_final_state: float")    // [B, U]
    .Input("states: float")
    .Input("recurrent_kernel: float")
    .Output("d_inputs: float")
    .Output("d_initial_state: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      return ::tensorflow::OkStatus();
    });

REGISTER_OP("FastRnnLstmSequence")
    .Input("inputs: float")           // [T, B, 4U]
    .Input("initial_state: float")    // [B, U]
    .Input("initial_carry: float")    // [B, U]
    .Input("recurrent_kernel: float") // [U, 4U]
    .Output("states: float")          // [T, B, U]
    .Output("carries: float")         // [T, B, U]
    .Output("pre_activations: float") // [T, B, 4U]
    .SetShapeFn([](InferenceContext* c) {
      auto inputs = c->input(0);
      auto units = c->Dim(c->input(1), 1);
      c->set_output(0, c->MakeShape({c->Dim(inputs, 0), c->Dim(inputs, 1), units}));
      c->set_output(1, c->output(0));
      c->set_output(2, inputs);
      return ::tensorflow::OkStatus();
    });
REGISTER_OP("FastRnnLstmSequenceGrad")
    .Input("d_states: float")         // [T, B, U]
    .Input("d_final_state: float")    // [B, U]
    .Input("d_final_carry: float")    // [B, U]
    .Input("carries: float")
    .Input("pre_activations: float")
    .Input("initial_carry: float")
    .Input("recurrent_kernel: float")
    .Output("d_pre_activations: float")
    .Output("d_initial_state: float")
    .Output("d_initial_carry: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(4));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return ::tensorflow::OkStatus();
    });

REGISTER_OP("FastRnnGruSequence")
    .Input("inputs: float")           // [T, B, 3U]: x_t @ kernel + input bias
    .Input("initial_state: float")    // [B, U]
    .Input("recurrent_kernel: float") // [U, 3U]
    .Input("recurrent_bias: float")   // [3U]
    .Output("states: float")          // [T, B, U]
    .Output("recurrent_parts: float") // [T, B, 3U]: h_{t-1} @ R + b_R
    .SetShapeFn([](InferenceContext* c) {
      auto inputs = c->input(0);
      auto units = c->Dim(c->input(1), 1);
      c->set_output(0, c->MakeShape({c->Dim(inputs, 0), c->Dim(inputs, 1), units}));
      c->set_output(1, inputs);
      return ::tensorflow::OkStatus();
    });
REGISTER_OP("FastRnnGruSequenceGrad")
    .Input("d_states: float")         // [T, B, U]
    .Input("d_final_state: float")    // [B, U]
    .Input("inputs: float")
    .Input("states: float")
    .Input("recurrent_parts: float")
    .Input("initial_state: float")
    .Input("recurrent_kernel: float")
    .Output("d_inputs: float")
    .Output("d_recurrent_parts: float")
    .Output("d_initial_state: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(2));
      c->set_output(1, c->input(2));
      c->set_output(2, c->input(1));
      return ::tensorflow::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("FastRnnSimpleRnnSequence").Device(::tensorflow::DEVICE_CPU),
                        SimpleRnnSequence);
REGISTER_KERNEL_BUILDER(Name("FastRnnSimpleRnnSequenceGrad").Device(::tensorflow::DEVICE_CPU),
                        SimpleRnnSequenceGrad);
REGISTER_KERNEL_BUILDER(Name("FastRnnLstmSequence").Device(::tensorflow::DEVICE_CPU),
                        LstmSequence);
REGISTER_KERNEL_BUILDER(Name("FastRnnLstmSequenceGrad").Device(::tensorflow::DEVICE_CPU),
                        LstmSequenceGrad);
REGISTER_KERNEL_BUILDER(Name("FastRnnGruSequence").Device(::tensorflow::DEVICE_CPU),
                        GruSequence);
REGISTER_KERNEL_BUILDER(Name("FastRnnGruSequenceGrad").Device(::tensorflow::DEVICE_CPU),
                        GruSequenceGrad);
