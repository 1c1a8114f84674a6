/* Argument checks shared by the public op functions: every op validates
 * once here, so backends can trust their inputs. Each check records a
 * message naming the op and the argument ("rms_norm: w: expected [4096],
 * got bf16[2048]") and returns the status to pass up. */
#ifndef MLXN_OP_CHECK_H
#define MLXN_OP_CHECK_H

#include "backend/backend.h"
#include "core/internal.h"

/* dtype masks for op_check_dtype */
#define DT(d) (1u << (d))
#define DT_FLOAT16_32 (DT(MLXN_DTYPE_F32) | DT(MLXN_DTYPE_F16) | DT(MLXN_DTYPE_BF16))
#define DT_F32 DT(MLXN_DTYPE_F32)
#define DT_INDEX (DT(MLXN_DTYPE_I32) | DT(MLXN_DTYPE_U32))

/* The stream is usable. */
mlxn_status op_check_stream(const char *op, mlxn_stream *s);
/* t is non-NULL, has a buffer on the stream's device, a sane rank, and its
 * elements lie inside the buffer. */
mlxn_status op_check_tensor(const char *op, const char *arg, mlxn_stream *s, const mlxn_tensor *t);
/* t's dtype is one of `mask`. */
mlxn_status op_check_dtype(const char *op, const char *arg, const mlxn_tensor *t, unsigned mask);
/* An output: checked as a tensor, f32 unless said otherwise, contiguous. */
mlxn_status op_check_output(const char *op, mlxn_stream *s, const mlxn_tensor *out, unsigned mask);
/* a and b have identical shapes. */
mlxn_status op_check_same_shape(const char *op, const char *an, const mlxn_tensor *a, const char *bn,
                                const mlxn_tensor *b);
/* t has rank `ndim` (or >= ndim when at_least). */
mlxn_status op_check_rank(const char *op, const char *arg, const mlxn_tensor *t, int ndim, int at_least);
/* t is 1-D with `n` elements. */
mlxn_status op_check_vector(const char *op, const char *arg, const mlxn_tensor *t, int64_t n);

/* A cache append's source and cache (named sn and dn): float dtypes, one
 * rank >= 2, the same dims but axis -2, the rows fit, no zero stride in
 * the cache (kv_write.c). */
mlxn_status op_check_kv_pair(const char *op, mlxn_stream *s, const char *sn, const mlxn_tensor *src, const char *dn,
                             const mlxn_tensor *dst);
/* A cache slot: i32 with one element (kv_write.c). */
mlxn_status op_check_kv_slot(const char *op, mlxn_stream *s, const mlxn_tensor *slot);
/* Rotary embedding parameters for rows of D columns (rope.c). */
mlxn_status op_check_rope_params(const char *op, mlxn_stream *s, const mlxn_rope_params *p, int64_t D);
/* The arguments of mlxn_rope_kv_write (rope_kv.c). */
mlxn_status op_check_rope_kv(const char *op, mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k,
                             const mlxn_tensor *v, const mlxn_rope_params *p, const mlxn_tensor *slot,
                             const mlxn_tensor *q_out, const mlxn_tensor *k_dst, const mlxn_tensor *v_dst);

/* out shares no bytes with in (in may be NULL): the op API forbids
 * aliasing, and a kernel that reads in while writing out would produce
 * garbage rather than an error. */
mlxn_status op_check_no_alias(const char *op, const char *arg, const mlxn_tensor *out, const mlxn_tensor *in);
/* The same for an op with several outputs: out (named out_name) shares no
 * bytes with t (named t_name, an input or another output). */
mlxn_status op_check_disjoint(const char *op, const char *out_name, const mlxn_tensor *out, const char *t_name,
                              const mlxn_tensor *t);
/* out is exactly x (same buffer, offset, dtype and shape): an in-place call. */
int op_same_view(const mlxn_tensor *out, const mlxn_tensor *x);

/* wq/scales/biases describe a logical [rows, cols] matrix quantized along
 * cols with params q (mode, bits, group and dtypes all checked). */
mlxn_status op_check_quantized(const char *op, mlxn_stream *s, const mlxn_tensor *wq, const mlxn_tensor *scales,
                               const mlxn_tensor *biases, const mlxn_quant_params *q, int64_t *rows,
                               int64_t *cols);

#endif
