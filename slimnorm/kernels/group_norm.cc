// Fused CPU kernels for the math of group, layer and instance norm
// (slimnorm/group_math.py gives the same math as TensorFlow ops).
//
// Both ops see the input as a rank-3 view of B samples, R reduced positions
// and C = groups * (C / groups) channels, either channels last [B, R, C]
// (NHWC-like) or channels first [B, C, R] (NCHW-like). A cell (one set of
// statistics) is one sample and one group of consecutive channels, over all
// R positions. gamma and beta are per channel, float32; x, y, dy and dx are
// float32, float16 or bfloat16; all arithmetic is float32 with float64 sums.
//
// Why the shift: each cell's sums are taken of d = x - shift, with shift the
// cell's first value, so that sum(d^2)/n - mean(d)^2 keeps float32 precision
// when the mean is large against the spread (1e4 + N(0, 1)). The forward
// returns the cell mean relative to that shift; the backward reads the shift
// from x again, so it never sees a rounded large mean either.
//
// One unit of parallel work is one sample: it makes one pass over the
// sample's values for the sums and one for the output (forward), or one for
// the sums of dy and dy * d and one for dx (backward). A sample's values are
// usually still in cache for the second pass. Per-sample results are summed
// over samples in a fixed order, so the results do not depend on how TF's
// thread pool splits the work (bit-for-bit deterministic).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace slimnorm {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// Values are summed in float32 over blocks of this many terms per lane, then
// added to float64 totals: vector speed, float64 accuracy on large R.
constexpr int64_t kBlock = 256;
constexpr int kLanes = 16;

// ---- conversions: float32 views of the input rows, and back ---------------

template <typename T>
inline const float* AsFloat(const T* src, int64_t n, float* buffer) {
  for (int64_t i = 0; i < n; ++i) buffer[i] = static_cast<float>(src[i]);
  return buffer;
}
template <>
inline const float* AsFloat<float>(const float* src, int64_t, float*) {
  return src;
}

template <typename T>
inline void Store(const float* src, int64_t n, T* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
}
template <>
inline void Store<float>(const float*, int64_t, float*) {}

// The float32 row a loop writes into: the output itself for float32.
template <typename T>
inline float* OutRow(T*, float* buffer) { return buffer; }
template <>
inline float* OutRow<float>(float* out, float*) { return out; }

// ---- the shape of the problem ---------------------------------------------

struct Dims {
  int64_t batch, reduced, channels, groups, members;
  bool channels_last;
  int64_t SampleSize() const { return reduced * channels; }
  // The index in a sample of the value at position r of channel c.
  int64_t Index(int64_t r, int64_t c) const {
    return channels_last ? r * channels + c : c * reduced + r;
  }
};

inline Dims GetDims(const TensorShape& shape, int64_t groups, bool channels_last) {
  Dims d;
  d.batch = shape.dim_size(0);
  d.reduced = shape.dim_size(channels_last ? 1 : 2);
  d.channels = shape.dim_size(channels_last ? 2 : 1);
  d.groups = groups;
  d.members = d.channels / groups;
  d.channels_last = channels_last;
  return d;
}

// Sums over a contiguous row of n values of (a) and (a * b), b = x - shift.
// float32 partial sums in kLanes lanes per block, float64 totals.
inline void RowSums(const float* a, const float* x, float shift, int64_t n,
                    bool square_of_x, double* sum_a, double* sum_ab) {
  double total_a = 0.0, total_ab = 0.0;
  for (int64_t start = 0; start < n; start += kBlock * kLanes) {
    const int64_t end = std::min(n, start + kBlock * kLanes);
    float lane_a[kLanes] = {0}, lane_ab[kLanes] = {0};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) {
        const float d = x[i + j] - shift;
        const float v = square_of_x ? d : a[i + j];
        lane_a[j] += v;
        lane_ab[j] += v * d;
      }
    }
    for (; i < end; ++i) {
      const float d = x[i] - shift;
      const float v = square_of_x ? d : a[i];
      lane_a[0] += v;
      lane_ab[0] += v * d;
    }
    for (int j = 0; j < kLanes; ++j) {
      total_a += lane_a[j];
      total_ab += lane_ab[j];
    }
  }
  *sum_a = total_a;
  *sum_ab = total_ab;
}

// Per-channel sums over one sample's R positions of v and v * d, where
// d = x - shift[c] and v = d (statistics) or v = dy (backward).
// Writes channels values to sum_v and sum_vd.
template <typename T>
void ChannelSums(const Dims& dims, const T* x, const T* dy, const float* shift,
                 double* sum_v, double* sum_vd, std::vector<float>* scratch) {
  const int64_t C = dims.channels, R = dims.reduced;
  const bool stats = dy == nullptr;
  if (!dims.channels_last) {
    scratch->resize(2 * R);
    float* xbuf = scratch->data();
    float* dybuf = xbuf + R;
    for (int64_t c = 0; c < C; ++c) {
      const float* xr = AsFloat(x + c * R, R, xbuf);
      const float* dyr = stats ? xr : AsFloat(dy + c * R, R, dybuf);
      RowSums(dyr, xr, shift[c], R, stats, &sum_v[c], &sum_vd[c]);
    }
    return;
  }
  scratch->resize(4 * C);
  float* acc_v = scratch->data();
  float* acc_vd = acc_v + C;
  float* xbuf = acc_vd + C;
  float* dybuf = xbuf + C;
  std::fill(sum_v, sum_v + C, 0.0);
  std::fill(sum_vd, sum_vd + C, 0.0);
  for (int64_t start = 0; start < R; start += kBlock) {
    const int64_t end = std::min(R, start + kBlock);
    std::fill(acc_v, acc_v + 2 * C, 0.0f);
    for (int64_t r = start; r < end; ++r) {
      const float* xr = AsFloat(x + r * C, C, xbuf);
      if (stats) {
        for (int64_t c = 0; c < C; ++c) {
          const float d = xr[c] - shift[c];
          acc_v[c] += d;
          acc_vd[c] += d * d;
        }
      } else {
        const float* dyr = AsFloat(dy + r * C, C, dybuf);
        for (int64_t c = 0; c < C; ++c) {
          const float d = xr[c] - shift[c];
          acc_v[c] += dyr[c];
          acc_vd[c] += dyr[c] * d;
        }
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      sum_v[c] += acc_v[c];
      sum_vd[c] += acc_vd[c];
    }
  }
}

// out = a * scale[c] + d * dscale[c] + offset[c], d = x - shift[c], over one
// sample (a = x for the forward: then pass dscale = nullptr and a = x).
template <typename T>
void Affine(const Dims& dims, const T* x, const T* a, const float* shift,
            const float* scale, const float* dscale, const float* offset, T* out,
            std::vector<float>* scratch) {
  const int64_t C = dims.channels, R = dims.reduced;
  const bool channels_last = dims.channels_last;
  const int64_t rows = channels_last ? R : C;
  const int64_t len = channels_last ? C : R;
  scratch->resize(3 * len);
  float* xbuf = scratch->data();
  float* abuf = xbuf + len;
  float* obuf = abuf + len;
  for (int64_t row = 0; row < rows; ++row) {
    const float* xr = AsFloat(x + row * len, len, xbuf);
    float* o = OutRow(out + row * len, obuf);
    if (channels_last) {
      if (dscale == nullptr) {
        for (int64_t c = 0; c < C; ++c) o[c] = (xr[c] - shift[c]) * scale[c] + offset[c];
      } else {
        const float* ar = AsFloat(a + row * len, len, abuf);
        for (int64_t c = 0; c < C; ++c) {
          o[c] = ar[c] * scale[c] + ((xr[c] - shift[c]) * dscale[c] + offset[c]);
        }
      }
    } else {
      const float s = shift[row], k = scale[row], b = offset[row];
      if (dscale == nullptr) {
        for (int64_t r = 0; r < R; ++r) o[r] = (xr[r] - s) * k + b;
      } else {
        const float* ar = AsFloat(a + row * len, len, abuf);
        const float dk = dscale[row];
        for (int64_t r = 0; r < R; ++r) o[r] = ar[r] * k + ((xr[r] - s) * dk + b);
      }
    }
    Store(o, len, out + row * len);
  }
}

// Each channel's shift: the first value of its cell (position 0, first
// member of the group).
template <typename T>
void Shifts(const Dims& dims, const T* x, float* shift) {
  for (int64_t g = 0; g < dims.groups; ++g) {
    const float s = static_cast<float>(x[dims.Index(0, g * dims.members)]);
    std::fill(shift + g * dims.members, shift + (g + 1) * dims.members, s);
  }
}

inline int64_t CostPerSample(const Dims& dims) {
  return std::max<int64_t>(1, dims.SampleSize()) * 12;
}

void CheckView(OpKernelContext* ctx, const Tensor& x) {
  OP_REQUIRES(ctx, x.dims() == 3,
              InvalidArgument("x must be rank 3 (a [B, R, C] or [B, C, R] view), got ",
                              x.shape().DebugString()));
}

// ---- forward -------------------------------------------------------------

template <typename T>
class GroupNormOp : public OpKernel {
 public:
  explicit GroupNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("channels_last", &channels_last_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& gamma = ctx->input(1);
    const Tensor& beta = ctx->input(2);
    CheckView(ctx, x);
    if (!ctx->status().ok()) return;
    const Dims dims = GetDims(x.shape(), groups_, channels_last_);
    OP_REQUIRES(ctx, dims.channels % groups_ == 0,
                InvalidArgument("groups=", groups_, " does not divide ", dims.channels,
                                " channels"));
    OP_REQUIRES(ctx, gamma.NumElements() == dims.channels &&
                         beta.NumElements() == dims.channels,
                InvalidArgument("gamma and beta need ", dims.channels, " values"));
    Tensor *y, *mean, *rstd;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({dims.batch, groups_}), &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({dims.batch, groups_}), &rstd));
    const int64_t n_cell = dims.reduced * dims.members;
    if (n_cell == 0) {  // no values to normalise: statistics of empty cells
      mean->flat<float>().setZero();
      rstd->flat<float>().setZero();
      return;
    }
    const T* xs = x.flat<T>().data();
    T* ys = y->flat<T>().data();
    const float* gs = gamma.flat<float>().data();
    const float* bs = beta.flat<float>().data();
    float* means = mean->flat<float>().data();
    float* rstds = rstd->flat<float>().data();
    const double epsilon = epsilon_;

    auto work = [&](int64_t begin, int64_t end) {
      const int64_t C = dims.channels, M = dims.members;
      std::vector<double> sums(2 * C);
      std::vector<float> coef(3 * C), scratch;
      float* shift = coef.data();
      float* scale = shift + C;
      float* offset = scale + C;
      for (int64_t b = begin; b < end; ++b) {
        const T* xb = xs + b * dims.SampleSize();
        Shifts(dims, xb, shift);
        ChannelSums<T>(dims, xb, nullptr, shift, sums.data(), sums.data() + C, &scratch);
        for (int64_t g = 0; g < dims.groups; ++g) {
          double s1 = 0.0, s2 = 0.0;
          for (int64_t m = 0; m < M; ++m) {
            s1 += sums[g * M + m];
            s2 += sums[C + g * M + m];
          }
          const double mean_d = s1 / n_cell;
          const double variance = std::max(s2 / n_cell - mean_d * mean_d, 0.0);
          const double rs = 1.0 / std::sqrt(variance + epsilon);
          means[b * dims.groups + g] = static_cast<float>(mean_d);
          rstds[b * dims.groups + g] = static_cast<float>(rs);
          for (int64_t c = g * M; c < (g + 1) * M; ++c) {
            const double k = gs[c] * rs;
            scale[c] = static_cast<float>(k);
            offset[c] = static_cast<float>(bs[c] - mean_d * k);
          }
        }
        Affine<T>(dims, xb, xb, shift, scale, nullptr, offset, ys + b * dims.SampleSize(),
                  &scratch);
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        dims.batch, CostPerSample(dims), work);
  }

 private:
  int64_t groups_;
  float epsilon_;
  bool channels_last_;
};

// ---- backward ------------------------------------------------------------

template <typename T>
class GroupNormGradOp : public OpKernel {
 public:
  explicit GroupNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("channels_last", &channels_last_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& gamma = ctx->input(2);
    const Tensor& mean = ctx->input(3);
    const Tensor& rstd = ctx->input(4);
    CheckView(ctx, x);
    if (!ctx->status().ok()) return;
    OP_REQUIRES(ctx, dy.shape() == x.shape(),
                InvalidArgument("dy and x differ in shape: ", dy.shape().DebugString(),
                                " vs ", x.shape().DebugString()));
    const Dims dims = GetDims(x.shape(), groups_, channels_last_);
    OP_REQUIRES(ctx, gamma.NumElements() == dims.channels &&
                         mean.NumElements() == dims.batch * groups_ &&
                         rstd.NumElements() == dims.batch * groups_,
                InvalidArgument("gamma, mean or rstd do not match x"));
    const int64_t C = dims.channels, M = dims.members, B = dims.batch;
    Tensor *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({C}), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({C}), &dbeta));
    const T* xs = x.flat<T>().data();
    const T* dys = dy.flat<T>().data();
    T* dxs = dx->flat<T>().data();
    const float* gs = gamma.flat<float>().data();
    const float* means = mean.flat<float>().data();
    const float* rstds = rstd.flat<float>().data();
    const int64_t n_cell = dims.reduced * M;
    if (n_cell == 0) {  // no values: no gradient
      dgamma->flat<float>().setZero();
      dbeta->flat<float>().setZero();
      return;
    }
    // Per-sample parameter gradients, summed over samples in order below.
    std::vector<double> partial(2 * B * C, 0.0);

    auto work = [&](int64_t begin, int64_t end) {
      std::vector<double> sums(2 * C);
      std::vector<float> coef(4 * C), scratch;
      float* shift = coef.data();
      float* scale = shift + C;
      float* dscale = scale + C;
      float* offset = dscale + C;
      for (int64_t b = begin; b < end; ++b) {
        const T* xb = xs + b * dims.SampleSize();
        const T* dyb = dys + b * dims.SampleSize();
        Shifts(dims, xb, shift);
        double* sum_dy = sums.data();
        double* sum_dy_d = sum_dy + C;
        ChannelSums<T>(dims, xb, dyb, shift, sum_dy, sum_dy_d, &scratch);
        double* dgamma_b = partial.data() + b * C;
        double* dbeta_b = partial.data() + (B + b) * C;
        for (int64_t g = 0; g < dims.groups; ++g) {
          const double mean_d = means[b * dims.groups + g];
          const double rs = rstds[b * dims.groups + g];
          double g_dy = 0.0, g_dy_xc = 0.0;
          for (int64_t c = g * M; c < (g + 1) * M; ++c) {
            // sum over positions of dy * (x - mean)
            const double dy_xc = sum_dy_d[c] - mean_d * sum_dy[c];
            dgamma_b[c] = dy_xc * rs;
            dbeta_b[c] = sum_dy[c];
            g_dy += gs[c] * sum_dy[c];
            g_dy_xc += gs[c] * dy_xc;
          }
          // dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), g = gamma * dy
          const double mean_g = g_dy / n_cell;
          const double mean_g_xhat = g_dy_xc * rs / n_cell;
          const double d_coef = -rs * rs * mean_g_xhat;
          const double constant = -d_coef * mean_d - rs * mean_g;
          for (int64_t c = g * M; c < (g + 1) * M; ++c) {
            scale[c] = static_cast<float>(gs[c] * rs);
            dscale[c] = static_cast<float>(d_coef);
            offset[c] = static_cast<float>(constant);
          }
        }
        Affine<T>(dims, xb, dyb, shift, scale, dscale, offset, dxs + b * dims.SampleSize(),
                  &scratch);
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        B, CostPerSample(dims) * 2, work);

    float* dg = dgamma->flat<float>().data();
    float* db = dbeta->flat<float>().data();
    for (int64_t c = 0; c < C; ++c) {
      double sg = 0.0, sb = 0.0;
      for (int64_t b = 0; b < B; ++b) {
        sg += partial[b * C + c];
        sb += partial[(B + b) * C + c];
      }
      dg[c] = static_cast<float>(sg);
      db[c] = static_cast<float>(sb);
    }
  }

 private:
  int64_t groups_;
  bool channels_last_;
};

// ---- registration --------------------------------------------------------

::tensorflow::Status ForwardShape(InferenceContext* c) {
  ShapeHandle x;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
  int64_t groups;
  TF_RETURN_IF_ERROR(c->GetAttr("groups", &groups));
  c->set_output(0, x);
  c->set_output(1, c->Matrix(c->Dim(x, 0), groups));
  c->set_output(2, c->Matrix(c->Dim(x, 0), groups));
  return ::tensorflow::OkStatus();
}

::tensorflow::Status BackwardShape(InferenceContext* c) {
  ShapeHandle x;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &x));
  c->set_output(0, x);
  c->set_output(1, c->input(2));
  c->set_output(2, c->input(2));
  return ::tensorflow::OkStatus();
}

}  // namespace slimnorm

REGISTER_OP("SlimnormGroupNorm")
    .Input("x: T")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: T")
    .Output("shifted_mean: float")
    .Output("rstd: float")
    .Attr("T: {float, half, bfloat16}")
    .Attr("groups: int >= 1")
    .Attr("epsilon: float")
    .Attr("channels_last: bool = true")
    .SetShapeFn(slimnorm::ForwardShape)
    .Doc("Group-norm forward on a [B, R, C] or [B, C, R] view; shifted_mean is the "
         "cell mean minus the cell's first value.");

REGISTER_OP("SlimnormGroupNormGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("gamma: float")
    .Input("shifted_mean: float")
    .Input("rstd: float")
    .Output("dx: T")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("T: {float, half, bfloat16}")
    .Attr("groups: int >= 1")
    .Attr("epsilon: float")
    .Attr("channels_last: bool = true")
    .SetShapeFn(slimnorm::BackwardShape)
    .Doc("Gradient of SlimnormGroupNorm with respect to x, gamma and beta (epsilon: "
         "the forward's, for a second derivative built from TF ops).");

#define SLIMNORM_REGISTER(T)                                                     \
  REGISTER_KERNEL_BUILDER(                                                       \
      Name("SlimnormGroupNorm").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      slimnorm::GroupNormOp<T>);                                                 \
  REGISTER_KERNEL_BUILDER(                                                       \
      Name("SlimnormGroupNormGrad").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      slimnorm::GroupNormGradOp<T>);

SLIMNORM_REGISTER(float)
SLIMNORM_REGISTER(Eigen::half)
SLIMNORM_REGISTER(Eigen::bfloat16)
#undef SLIMNORM_REGISTER
