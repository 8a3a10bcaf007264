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
// the others. A row's numbers do not depend on the other rows, so the outputs are the same from
// run to run.
//
// Layouts are time-major and row-major: sequences are [T, B, width], kernels [U, G]. The math is
// that of Keras' SimpleRNN, LSTM and GRU cells (Keras' gate orders: LSTM i, f, c, o; GRU z, r, h
// with reset_after=True); tests/fast_rnn/test_layers.py checks outputs and gradients against them.

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "Eigen/Core"
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

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMajor>;
using ConstMatrixMap = Eigen::Map<const RowMajor>;
using Vector = Eigen::Map<Eigen::ArrayXf>;
using ConstVector = Eigen::Map<const Eigen::ArrayXf>;

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

// matrix[rows, U or G] (+)= previous[rows, U] @ kernel[U, G], or @ kernel^T for the backward
// pass.
inline void Project(const float* previous, const float* kernel, const Sizes& s, int64_t rows,
                    float* out) {
  MatrixMap(out, rows, s.gates).noalias() =
      ConstMatrixMap(previous, rows, s.units) * ConstMatrixMap(kernel, s.units, s.gates);
}
inline void AddBackProjected(const float* d_gates, const float* kernel, const Sizes& s,
                             int64_t rows, float* out) {
  MatrixMap(out, rows, s.units).noalias() +=
      ConstMatrixMap(d_gates, rows, s.gates) *
      ConstMatrixMap(kernel, s.units, s.gates).transpose();
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
        const int64_t n = rows * s.units;
        Vector(h, n) = (Vector(h, n) + ConstVector(At(x, s, s.units, t, first), n)).tanh();
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
    const float *d_hs = In(context, 0), *d_h_final = In(context, 1), *hs = In(context, 2),
                *r = In(context, 3);
    ForRowBlocks(context, s.batch, [&](int64_t first, int64_t last) {
      const int64_t n = (last - first) * s.units;
      // The gradient reaching h_t from after step t: from step t + 1, or as the final state.
      Vector carry(d_h0 + first * s.units, n);
      carry = ConstVector(d_h_final + first * s.units, n);
      for (int64_t t = s.steps - 1; t >= 0; --t) {
        ConstVector h(At(hs, s, s.units, t, first), n);
        Vector d_z(At(d_zs, s, s.units, t, first), n);
        d_z = (ConstVector(At(d_hs, s, s.units, t, first), n) + carry) * (1.0f - h * h);
        carry.setZero();
        AddBackProjected(d_z.data(), r, s, last - first, carry.data());
      }
    });
  }
};

// ---------------------------------------------------------------------------------------------
// LSTM: z = x_t + h_{t-1} @ R; i, f, o = sigmoid, g = tanh of z's quarters;
// c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t).

// One row's gate activations, in arrays a block allocates once for all its rows and steps.
struct LstmGates {
  explicit LstmGates(int64_t units) : i(units), f(units), g(units), o(units) {}
  void From(const float* pre_activations, int64_t u) {
    ConstVector z(pre_activations, 4 * u);
    i = z.segment(0, u).logistic();
    f = z.segment(u, u).logistic();
    g = z.segment(2 * u, u).tanh();
    o = z.segment(3 * u, u).logistic();
  }
  Eigen::ArrayXf i, f, g, o;
};

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
      LstmGates gates(u);
      for (int64_t t = 0; t < s.steps; ++t) {
        float* z_block = At(zs, s, s.gates, t, first);
        Project(Previous(hs, h0, s, t, first), r, s, last - first, z_block);
        for (int64_t row = first; row < last; ++row) {
          Vector z(At(zs, s, s.gates, t, row), s.gates);
          z += ConstVector(At(x, s, s.gates, t, row), s.gates);
          gates.From(z.data(), u);
          Vector c(At(cs, s, u, t, row), u);
          c = gates.f * ConstVector(Previous(cs, c0, s, t, row), u) + gates.i * gates.g;
          Vector(At(hs, s, u, t, row), u) = gates.o * c.tanh();
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
                *cs = In(context, 3), *zs = In(context, 4), *c0 = In(context, 5),
                *r = In(context, 6);
    const int64_t u = s.units;
    ForRowBlocks(context, s.batch, [&](int64_t first, int64_t last) {
      const int64_t n = (last - first) * u;
      // The gradients reaching h_t and c_t from after step t.
      Vector carry_h(d_h0 + first * u, n), carry_c(d_c0 + first * u, n);
      carry_h = ConstVector(d_h_final + first * u, n);
      carry_c = ConstVector(d_c_final + first * u, n);
      LstmGates gates(u);
      Eigen::ArrayXf tanh_c(u), d_h(u), d_c(u);
      for (int64_t t = s.steps - 1; t >= 0; --t) {
        for (int64_t row = first; row < last; ++row) {
          gates.From(At(zs, s, s.gates, t, row), u);
          const auto& [i, f, g, o] = gates;
          tanh_c = ConstVector(At(cs, s, u, t, row), u).tanh();
          const int64_t offset = (row - first) * u;
          d_h = ConstVector(At(d_hs, s, u, t, row), u) + carry_h.segment(offset, u);
          d_c = carry_c.segment(offset, u) + d_h * o * (1.0f - tanh_c * tanh_c);
          Vector d_z(At(d_zs, s, s.gates, t, row), s.gates);
          d_z.segment(0, u) = d_c * g * i * (1.0f - i);
          d_z.segment(u, u) = d_c * ConstVector(Previous(cs, c0, s, t, row), u) * f * (1.0f - f);
          d_z.segment(2 * u, u) = d_c * i * (1.0f - g * g);
          d_z.segment(3 * u, u) = d_h * tanh_c * o * (1.0f - o);
          carry_c.segment(offset, u) = d_c * f;
        }
        carry_h.setZero();
        AddBackProjected(At(d_zs, s, s.gates, t, first), r, s, last - first, carry_h.data());
      }
    });
  }
};

// ---------------------------------------------------------------------------------------------
// GRU, reset_after=True: m = h_{t-1} @ R + b_R; z, r = sigmoid(x_zr + m_zr);
// candidate = tanh(x_h + r * m_h); h_t = candidate + z * (h_{t-1} - candidate).

// One row's gates from its input part x and recurrent part m, in arrays a block allocates once.
struct GruGates {
  explicit GruGates(int64_t units) : update(units), reset(units), candidate(units) {}
  void From(const float* x, const float* m, int64_t u) {
    ConstVector in(x, 3 * u), recurrent(m, 3 * u);
    update = (in.segment(0, u) + recurrent.segment(0, u)).logistic();
    reset = (in.segment(u, u) + recurrent.segment(u, u)).logistic();
    candidate = (in.segment(2 * u, u) + reset * recurrent.segment(2 * u, u)).tanh();
  }
  Eigen::ArrayXf update, reset, candidate;
};

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
      GruGates gates(u);
      for (int64_t t = 0; t < s.steps; ++t) {
        Project(Previous(hs, h0, s, t, first), r, s, last - first, At(ms, s, s.gates, t, first));
        for (int64_t row = first; row < last; ++row) {
          Vector m(At(ms, s, s.gates, t, row), s.gates);
          m += ConstVector(b, s.gates);
          gates.From(At(x, s, s.gates, t, row), m.data(), u);
          const auto& candidate = gates.candidate;
          Vector(At(hs, s, u, t, row), u) =
              candidate + gates.update * (ConstVector(Previous(hs, h0, s, t, row), u) - candidate);
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
                *hs = In(context, 3), *ms = In(context, 4), *h0 = In(context, 5),
                *r = In(context, 6);
    const int64_t u = s.units;
    ForRowBlocks(context, s.batch, [&](int64_t first, int64_t last) {
      const int64_t n = (last - first) * u;
      // The gradient reaching h_t from after step t.
      Vector carry(d_h0 + first * u, n);
      carry = ConstVector(d_h_final + first * u, n);
      GruGates gates(u);
      Eigen::ArrayXf d_h(u), d_update(u), d_candidate(u), d_reset(u);
      for (int64_t t = s.steps - 1; t >= 0; --t) {
        for (int64_t row = first; row < last; ++row) {
          const float* m = At(ms, s, s.gates, t, row);
          gates.From(At(x, s, s.gates, t, row), m, u);
          const auto& [update, reset, candidate] = gates;
          const int64_t offset = (row - first) * u;
          d_h = ConstVector(At(d_hs, s, u, t, row), u) + carry.segment(offset, u);
          d_update = d_h * (ConstVector(Previous(hs, h0, s, t, row), u) - candidate) * update *
                     (1.0f - update);
          d_candidate = d_h * (1.0f - update) * (1.0f - candidate * candidate);
          d_reset = d_candidate * ConstVector(m + 2 * u, u) * reset * (1.0f - reset);
          Vector d_x(At(d_xs, s, s.gates, t, row), s.gates);
          Vector d_m(At(d_ms, s, s.gates, t, row), s.gates);
          d_x.segment(0, u) = d_update;
          d_x.segment(u, u) = d_reset;
          d_x.segment(2 * u, u) = d_candidate;
          d_m.segment(0, u) = d_update;
          d_m.segment(u, u) = d_reset;
          d_m.segment(2 * u, u) = d_candidate * reset;
          carry.segment(offset, u) = d_h * update;
        }
        AddBackProjected(At(d_ms, s, s.gates, t, first), r, s, last - first, carry.data());
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
