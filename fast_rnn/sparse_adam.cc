// Keras' Adam update of a table whose gradient is sparse (an embedding's: the rows of the
// reviews in a batch), as one TensorFlow op that changes the variable and both moments in place.
//
// Why: Keras 3's Adam (TensorFlow backend) makes the sparse gradient dense twice per step, once
// as is and once squared, then runs about ten elementwise ops over the whole table, each a pass
// over memory. For a 10,000 x 100 embedding that is most of an LSTM classifier's step on a CPU
// (ops.py, docs/performance.md). Here the gradient's rows are summed once, compactly, and the
// table and its moments are updated in one pass, split over the intra-op threads.
//
// The result is bit for bit Keras': each value goes through the same IEEE float operations in
// the same order. Keras' code (optimizers/adam.py with the backend's sparse wrappers):
//   g  = dense(values)                      rows summed in input order, from +0
//   g2 = dense(square(values))              each value squared, then summed: Keras squares the
//                                           slices, not their sum
//   m += (g - m) * (1 - beta_1)
//   v += (g2 - v) * (1 - beta_2)
//   variable -= (m * alpha) / (sqrt(v) + epsilon)
// with alpha computed by the caller exactly as Keras computes it. Every product and sum is
// rounded on its own, as separate TensorFlow ops round them: no fused multiply-add below.
#pragma GCC optimize("fp-contract=off")
// sqrt is correctly rounded either way; without errno the loop vectorizes.
#pragma GCC optimize("no-math-errno")

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::Var;

// The variable behind resource input `index`, its tensor made this op's alone first: a tensor
// that a read still holds is copied before it changes (TensorFlow's own optimizer ops do the
// same), so no earlier read sees the update.
Tensor* WritableTensor(OpKernelContext* context, Var* var) {
  Tensor* tensor = var->tensor();
  if (!tensor->RefCountIsOne() || var->copy_on_read_mode.load()) {
    Tensor copy;
    context->SetStatus(context->allocate_temp(tensor->dtype(), tensor->shape(), &copy));
    if (!context->status().ok()) return nullptr;
    std::copy_n(tensor->flat<float>().data(), tensor->NumElements(), copy.flat<float>().data());
    *tensor = copy;
  }
  return tensor;
}

template <typename Index>
class SparseAdam : public OpKernel {
 public:
  explicit SparseAdam(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    ::tensorflow::core::RefCountPtr<Var> vars[3];
    for (int i = 0; i < 3; ++i) {
      OP_REQUIRES_OK(context, ::tensorflow::LookupResource(
                                  context, ::tensorflow::HandleFromInput(context, i), &vars[i]));
    }
    // Locked in one global order (by address), as TensorFlow locks several variables.
    Var* order[3] = {vars[0].get(), vars[1].get(), vars[2].get()};
    std::sort(order, order + 3);
    ::tensorflow::mutex_lock lock0(*order[0]->mu());
    ::tensorflow::mutex_lock lock1(*order[1]->mu());
    ::tensorflow::mutex_lock lock2(*order[2]->mu());

    const Tensor& values = context->input(3);
    const Tensor& indices = context->input(4);
    const Tensor* tables[3] = {vars[0]->tensor(), vars[1]->tensor(), vars[2]->tensor()};
    for (const Tensor* table : tables) {
      OP_REQUIRES(context,
                  table->dtype() == ::tensorflow::DT_FLOAT && table->dims() == 2 &&
                      table->shape() == tables[0]->shape(),
                  ::tensorflow::errors::InvalidArgument(
                      "the variable and its two moments must be initialized float32 tables "
                      "of one shape, got ",
                      table->shape().DebugString()));
    }
    const int64_t rows = tables[0]->dim_size(0), width = tables[0]->dim_size(1);
    OP_REQUIRES(context,
                values.dims() == 2 && values.dim_size(1) == width && indices.dims() == 1 &&
                    indices.dim_size(0) == values.dim_size(0),
                ::tensorflow::errors::InvalidArgument(
                    "expected values [N, ", width, "] and indices [N], got ",
                    values.shape().DebugString(), " and ", indices.shape().DebugString()));

    // Each row the gradient touches gets a slot, in order of first appearance; its sums add
    // the values in input order, as TensorFlow's UnsortedSegmentSum does.
    const auto index = indices.flat<Index>();
    const int64_t count = indices.dim_size(0);
    std::vector<int32_t> slot_of_row(rows, -1);
    std::vector<int32_t> slot_of_value(count);
    int32_t slots = 0;
    for (int64_t i = 0; i < count; ++i) {
      const int64_t row = static_cast<int64_t>(index(i));
      OP_REQUIRES(context, row >= 0 && row < rows,
                  ::tensorflow::errors::InvalidArgument("index ", row, " at position ", i,
                                                        " is outside the table's ", rows,
                                                        " rows"));
      if (slot_of_row[row] < 0) slot_of_row[row] = slots++;
      slot_of_value[i] = slot_of_row[row];
    }
    std::vector<float> sums(slots * width, 0.0f), sums_of_squares(slots * width, 0.0f);
    const float* value = values.flat<float>().data();
    for (int64_t i = 0; i < count; ++i) {
      float* sum = sums.data() + slot_of_value[i] * width;
      float* sum_of_squares = sums_of_squares.data() + slot_of_value[i] * width;
      const float* row_values = value + i * width;
      for (int64_t k = 0; k < width; ++k) {
        const float square = row_values[k] * row_values[k];
        sum[k] += row_values[k];
        sum_of_squares[k] += square;
      }
    }

    float* tensors[3];
    for (int i = 0; i < 3; ++i) {
      Tensor* writable = WritableTensor(context, vars[i].get());
      if (writable == nullptr) return;
      tensors[i] = writable->flat<float>().data();
    }
    const float alpha = context->input(5).scalar<float>()();
    const float one_minus_beta_1 = context->input(6).scalar<float>()();
    const float one_minus_beta_2 = context->input(7).scalar<float>()();
    const float epsilon = context->input(8).scalar<float>()();
    const std::vector<float> zeros(width, 0.0f);

    auto update = [&](int64_t first_row, int64_t last_row) {
      for (int64_t row = first_row; row < last_row; ++row) {
        const int32_t slot = slot_of_row[row];
        const float* g = slot < 0 ? zeros.data() : sums.data() + slot * width;
        const float* g2 = slot < 0 ? zeros.data() : sums_of_squares.data() + slot * width;
        float* variable = tensors[0] + row * width;
        float* m = tensors[1] + row * width;
        float* v = tensors[2] + row * width;
        for (int64_t k = 0; k < width; ++k) {
          const float new_m = m[k] + (g[k] - m[k]) * one_minus_beta_1;
          const float new_v = v[k] + (g2[k] - v[k]) * one_minus_beta_2;
          m[k] = new_m;
          v[k] = new_v;
          variable[k] = variable[k] - (new_m * alpha) / (std::sqrt(new_v) + epsilon);
        }
      }
    };
    auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
    // About 20 float operations and 28 bytes of memory traffic per element.
    pool->ParallelFor(rows, /*cost_per_unit=*/width * 20, update);
  }
};

}  // namespace

REGISTER_OP("FastRnnSparseAdam")
    .Input("variable: resource")       // [rows, width] float32
    .Input("momentum: resource")       // Adam's m, like variable
    .Input("velocity: resource")       // Adam's v, like variable
    .Input("values: float")            // [N, width]: the gradient's slices
    .Input("indices: Tindices")        // [N]: the row of each slice, repeats allowed
    .Input("alpha: float")             // learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    .Input("one_minus_beta_1: float")
    .Input("one_minus_beta_2: float")
    .Input("epsilon: float")
    .Attr("Tindices: {int32, int64}")
    .SetIsStateful()
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs);

REGISTER_KERNEL_BUILDER(Name("FastRnnSparseAdam")
                            .Device(::tensorflow::DEVICE_CPU)
                            .TypeConstraint<int32_t>("Tindices"),
                        SparseAdam<int32_t>);
REGISTER_KERNEL_BUILDER(Name("FastRnnSparseAdam")
                            .Device(::tensorflow::DEVICE_CPU)
                            .TypeConstraint<int64_t>("Tindices"),
                        SparseAdam<int64_t>);
