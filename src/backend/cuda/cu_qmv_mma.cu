/* The 4-bit mat-vec of decode on the bf16 tensor cores: out[m, n] =
 * sum_k x[m, k] * W[n, k] for 1..8 f32 x rows, W [N, K] MLX affine 4-bit
 * with bf16 or f16 scales and biases, groups of 64 or 128. docs/perf.md
 * (CUDA mat-vec log, v8, and the 3..8-row section) has the measurements;
 * it replaced the f32 streaming kernels (cu_qmv_fast.cu) for these formats,
 * which every other case keeps.
 * The one-row kernel comes first; the two-row one reuses its layout, and
 * 3..8 rows take the x rows as the mma's B columns (qmv_mma8_kernel); each
 * is described where it starts.
 *
 * Why tensor cores for a mat-vec: the f32 kernel spent ~5 instructions per
 * weight per lane (decode, convert, FMA) and could not keep the issue slots
 * and the memory system busy at once. Here a code becomes a bf16 operand
 * with one LOP3 per two codes (plus a shift), and one mma.m16n8k16 does 256
 * multiply-adds: ~1.5 instructions per weight per lane.
 *
 * Exactness (why the products are exact and the sums f32):
 *   - A code q (0..15) OR-ed under the exponent of 128.0 in bf16 is the
 *     bf16 value 128 + q, exactly (7 mantissa bits). The tensor core then
 *     sums x * (128 + q); 128 * sum(x) over the group is subtracted in f32
 *     in the group's epilogue (sum(x) per group, summed by the warp as it
 *     stages the chunk).
 *   - x is f32; it is split into three bf16 parts hi + mid + lo that sum
 *     to x exactly (3 x 8 significant bits), and each part is its own B
 *     column. (128 + q) * part has at most 16 significant bits, so every
 *     product is exact and the tensor core accumulates in f32.
 *
 * Layout of one mma (m16n8k16, A row-major rows x k, B k x columns):
 *   - A = 16 rows of W (the block's row tile) x 16 codes; lane (g, t) =
 *     (lane / 4, lane % 4) holds rows g and g + 8. A "chunk" is 128 codes
 *     of each row: lane t loads 16 bytes (32 codes) of each of its two
 *     rows, and its 32 codes are the k it feeds to 8 mmas. Which k of the
 *     chunk an mma slot means does not matter to a dot product, as long as
 *     A and B agree: both use "lane t, word j, nibble pair m" (nibbles m
 *     and m + 4 of word j share one bf16x2 register after the LOP3).
 *   - B = 8 columns; column c = (group in chunk) * 3 + part (the one-row
 *     kernel on offsets: 4 * group + part, part 3 zeros; qm1_bvalid). With
 *     groups of 64 a chunk holds 2 groups: lanes t = 0, 1 carry group 0's
 *     codes and t = 2, 3 group 1's, so column c is zero in the lanes whose
 *     codes are not in its group. The accumulator's columns then hold every
 *     (group, part) sum separately, and the epilogue applies each group's
 *     scale: acc += s * (C - 128 sum x) + b * sum x.
 *   - x's parts are staged per chunk, by the warp that computes it: each
 *     lane loads 4 x values of the chunk with the chunk's codes (D chunks
 *     ahead), splits them and stores them in the warp's shared-memory
 *     buffer in "lane t, word, pair" order, so each lane reads its B
 *     registers with 16-byte loads. The first version staged all of x per
 *     block before the loop (86 KB at K = 14336): that cost a serial L2
 *     round trip per pass at the start and capped a SM at 2 blocks.
 *     The 16-byte slot j of lane t's 64 bytes is stored at j ^ (t >> 1), and
 *     part p's array starts p * 32 bytes further on, so one read phase
 *     touches distinct banks.
 * Work split: a block owns 16 rows (one row tile) and all of K; its W
 * warps take the chunks in turn (warp w: chunks w, w + W, ...), so at any
 * moment a block reads W consecutive 64-byte pieces of each of its 16
 * rows, and each warp keeps D chunks of codes, scales and x in flight in a
 * register ring. The warps' sums meet once in shared memory at the end, in
 * a fixed order (deterministic). Products with many row tiles run blocks
 * of two tiles instead (each warp stages x once for both; qm_launch says
 * where).
 * Weight layouts: MLX's rows, or the TILED16 layout a model's weights take
 * on the GPU (quant_tiled.h: a tile's chunk is 1 KB in one piece, so a
 * warp's code load reads 512 contiguous bytes where by rows it reads 64
 * from each of 8 rows; decode measured 5-8% faster, docs/perf.md); the
 * kernels see either through qm_rows' pointers (or offsets) and chunk steps.
 * Conditions (else the caller runs the f32 kernels): affine
 * 4-bit, group 64 or 128, bf16/f16 scales with biases (one row stride for
 * both), K % 128 == 0, 16-byte aligned rows (and x, for one row), element
 * offsets under 2^31. */
#include "backend/cuda/cu_qmv.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

enum { QM_CHUNK = 128, QM_ROWS = 16, QM_PARTS = 3 };

/* bf16x2 of codes m and m + 4 of word w, each as 128 + q: one LOP3 with
 * both constants as operands (written in C, the compiler splits it into an
 * AND and an OR, a third more instructions in the hot loop). */
__device__ __forceinline__ uint32_t qm_pair(uint32_t w, int m) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(w >> (4 * m)), "r"(0x000F000Fu), "r"(0x43004300u));
    return r; /* 0xEA: (a & b) | c */
}

/* The parts of x: the top 16 bits of an f32 are a bf16, its leading 8
 * significant bits (x truncated toward zero), and x minus them is exact and
 * has at most 16 significant bits left; so three truncations take x apart
 * exactly (the third holds what is left whole). A bf16x2 of the top halves
 * of two f32 words is one byte permute, where rounding (cvt) took a convert
 * and two unpacks per pair for the remainder: 192 -> 184 SASS instructions
 * per chunk in the one-row kernel of 8 warps (bench/sass_loops.py).
 * (Truncation also cannot overflow: x rounded to bf16 near FLT_MAX could.) */
__device__ __forceinline__ uint32_t qm_bf16_top2(uint32_t lo, uint32_t hi) { return __byte_perm(lo, hi, 0x7632); }

/* A 16-bit scale picked out of a raw word by a byte permute (sel). */
__device__ __forceinline__ float qm_scale(uint32_t raw, int sel, int sdt) {
    const uint32_t v = __byte_perm(raw, 0, sel);
    return sdt == MLXN_DTYPE_BF16 ? __uint_as_float(v) : __half2float(__ushort_as_half((unsigned short)v));
}
/* The byte permute that moves group gi's (0 or 1) 16-bit scale out of a
 * raw word: under the top half (bf16 -> f32 bits) or into the low half
 * (f16, converted after). */
template <int SDT>
__device__ __forceinline__ int qm_scale_sel(int gi) {
    return SDT == MLXN_DTYPE_BF16 ? (gi ? 0x3244 : 0x1044) : (gi ? 0x4432 : 0x4410);
}

__device__ __forceinline__ void qm_mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Bytes of one warp's staging buffer: x's parts of one chunk ([3 parts][4
 * lanes t][4 slots] of 16 bytes, part p starting p * 32 bytes further on
 * so parts sit on different banks), then 64 bytes of zeros. */
enum { QM_PART_BYTES = 256 + 32, QM_ZEROS = QM_PARTS * QM_PART_BYTES, QM_WARP_BYTES = QM_ZEROS + 64 };

/* Per lane of a 16-row tile: where its next chunk's codes and its rows'
 * scales and biases are. Lane (g, t) reads 16 bytes of each chunk (16
 * words per row) in rows g and g + 8; scales and biases share one row
 * stride (checked). A warp reads chunks c0, c0 + W, c0 + 2 W, ... in that
 * order: load() reads the next one.
 * Rows r0 + g and r8 + g (r8 = r0 + 8 but for the gated epilogue). In the
 * TILED16 layout r0 and r8 are multiples of 8, so the 8 lanes g of a half
 * read 8 neighbouring rows of one tile's chunk: 512 contiguous bytes of
 * codes (quant_tiled.h). Where the two halves are one stored tile, a
 * lane's scales of both rows are neighbours too, but each row's are loaded
 * on their own: whether a tile is paired is known only at run time, and
 * both forms, predicated, cost more instructions than one 8-byte load
 * saves (the gated gate/up kernel, 357 -> 332 per chunk pair).
 * Two forms, by the registers the kernel may hold (PTR):
 *   - running pointers (6 of them), where it may hold 128 a thread: a
 *     load's address is then the pointer itself, one add after it. In the
 *     one-row kernel of 8 warps, 184 -> 172 SASS instructions per chunk
 *     (with the truncated x parts, 192 -> 172; 4096 x 14336 on an H200
 *     13.36 -> 12.20 us back to back, docs/perf.md);
 *   - 32-bit element offsets from the parameters' bases and a chunk
 *     counter where it may hold fewer (blocks of 4 warps at 5 a SM, of 6
 *     at 3; and the 2..4-row kernel, already spilling): the pointers
 *     spilled there; and for blocks of two row tiles, where 12 pointers
 *     took 358 -> 372 instructions per chunk pair. Each load costs a
 *     multiply-add, a widening one and a reload of the base (the callers
 *     check the offsets fit). */
template <bool PTR>
struct qm_rows;

template <>
struct qm_rows<true> {
    const uint32_t *wg, *wh;
    const uint16_t *sg, *sh, *bg, *bh;
    uint32_t stw, sts; /* bytes from one of this warp's chunks to its next: of codes, of scales */
    __device__ qm_rows() {}
    /* p advanced by n steps of st bytes */
    template <class P>
    static __device__ __forceinline__ const P *at(const P *p, uint32_t n, uint32_t st) {
        return (const P *)((const char *)p + (size_t)(n * st));
    }
    __device__ qm_rows(const qmv_args &a, int64_t r0, int g, int t, int64_t r8, int c0, int W) {
        const int64_t rg = r0 + g < a.N ? r0 + g : a.N - 1, rh = r8 + g < a.N ? r8 + g : a.N - 1;
        const uint16_t *sc = (const uint16_t *)a.w.sc, *bi = (const uint16_t *)a.w.bi;
        const int64_t cw = cu_qchunk_words(a.w) * (int64_t)c0, cs = cu_qchunk_scales(a.w) * (int64_t)c0;
        wg = a.w.wq + cu_qrow_words(a.w, rg) + 4 * t + cw, wh = a.w.wq + cu_qrow_words(a.w, rh) + 4 * t + cw;
        sg = sc + cu_qrow_scales(a.w, rg) + cs, sh = sc + cu_qrow_scales(a.w, rh) + cs;
        bg = bi + cu_qrow_scales(a.w, rg) + cs, bh = bi + cu_qrow_scales(a.w, rh) + cs;
        stw = 4 * W * (uint32_t)cu_qchunk_words(a.w), sts = 2 * W * (uint32_t)cu_qchunk_scales(a.w);
    }
    /* Programmatic launch (cu_launch): before the kernel ahead finishes,
     * only L2 prefetches (the weights could in principle be an earlier
     * kernel's output; a prefetch cannot leave a stale value in a register)
     * of the chunk n loads ahead */
    __device__ void prefetch(const qmv_args &, uint32_t n) const {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(at(wg, n, stw)));
        asm volatile("prefetch.global.L2 [%0];" ::"l"(at(wh, n, stw)));
    }
    /* the next chunk: cw = words 0..3 of row g then of row g + 8; sw = the
     * raw scales of the chunk's G groups in rows g, g + 8, then the biases
     * (a group pair as one 32-bit word when G = 2) */
    template <int G>
    __device__ void load(const qmv_args &, uint32_t (&cw)[8], uint32_t (&sw)[4]) {
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(cw[0]), "=r"(cw[1]), "=r"(cw[2]), "=r"(cw[3])
                     : "l"(wg));
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(cw[4]), "=r"(cw[5]), "=r"(cw[6]), "=r"(cw[7])
                     : "l"(wh));
        if (G == 2) {
            sw[0] = __ldg((const unsigned int *)sg), sw[1] = __ldg((const unsigned int *)sh);
            sw[2] = __ldg((const unsigned int *)bg), sw[3] = __ldg((const unsigned int *)bh);
        } else {
            sw[0] = __ldg(sg), sw[1] = __ldg(sh), sw[2] = __ldg(bg), sw[3] = __ldg(bh);
        }
        wg = at(wg, 1, stw), wh = at(wh, 1, stw);
        sg = at(sg, 1, sts), sh = at(sh, 1, sts), bg = at(bg, 1, sts), bh = at(bh, 1, sts);
    }
};

template <>
struct qm_rows<false> {
    uint32_t owg, owh, osg, osh;
    uint32_t stw, sts; /* a chunk's step in words and in scale elements (the layout's: cu_qchunk_*) */
    uint32_t c, W;     /* the next chunk, the step between this warp's chunks */
    __device__ qm_rows() {}
    __device__ qm_rows(const qmv_args &a, int64_t r0, int g, int t, int64_t r8, int c0, int W_) {
        const int64_t rg = r0 + g < a.N ? r0 + g : a.N - 1, rh = r8 + g < a.N ? r8 + g : a.N - 1;
        owg = (uint32_t)cu_qrow_words(a.w, rg) + 4 * t, owh = (uint32_t)cu_qrow_words(a.w, rh) + 4 * t;
        osg = (uint32_t)cu_qrow_scales(a.w, rg), osh = (uint32_t)cu_qrow_scales(a.w, rh);
        stw = (uint32_t)cu_qchunk_words(a.w), sts = (uint32_t)cu_qchunk_scales(a.w);
        c = (uint32_t)c0, W = (uint32_t)W_;
    }
    __device__ void prefetch(const qmv_args &a, uint32_t n) const {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a.w.wq + (owg + stw * (c + n * W))));
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a.w.wq + (owh + stw * (c + n * W))));
    }
    template <int G>
    __device__ void load(const qmv_args &a, uint32_t (&cw)[8], uint32_t (&sw)[4]) {
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(cw[0]), "=r"(cw[1]), "=r"(cw[2]), "=r"(cw[3])
                     : "l"(a.w.wq + (owg + stw * c)));
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(cw[4]), "=r"(cw[5]), "=r"(cw[6]), "=r"(cw[7])
                     : "l"(a.w.wq + (owh + stw * c)));
        const unsigned short *sc = (const unsigned short *)a.w.sc, *bi = (const unsigned short *)a.w.bi;
        if (G == 2) {
            sw[0] = __ldg((const unsigned int *)(sc + (osg + sts * c)));
            sw[1] = __ldg((const unsigned int *)(sc + (osh + sts * c)));
            sw[2] = __ldg((const unsigned int *)(bi + (osg + sts * c)));
            sw[3] = __ldg((const unsigned int *)(bi + (osh + sts * c)));
        } else {
            sw[0] = __ldg(sc + (osg + sts * c)), sw[1] = __ldg(sc + (osh + sts * c));
            sw[2] = __ldg(bi + (osg + sts * c)), sw[3] = __ldg(bi + (osh + sts * c));
        }
        c += W;
    }
};

/* Whether a kernel of W warps at MB blocks per SM may hold 128 registers a thread (qm_rows' form) */
#define QM_ROOMY(W, MB) ((W) * 32 * (MB) <= 512)

/* Whether lane (g, t) feeds its B column g = (group in chunk) * 3 + part:
 * only when lane t's codes lie in that group (other lanes feed zeros). */
template <int G>
__device__ __forceinline__ bool qm_bvalid(int g, int t) {
    return g < G * QM_PARTS && g / QM_PARTS == (G == 2 ? t >> 1 : 0);
}

/* The epilogue of lane (g, t): its accumulator columns 2t, 2t + 1 as
 * per-lane constants, so it has no branch: columns past G * 3 hold zeros
 * (their B column is zero); a part-0 column also takes the group's offset
 * and bias: acc += s * (C - 128 sum x) + b * sum x. */
template <int G, int SDT>
struct qm_epi {
    int egrp[2], ssel[2];
    float eoff[2], ebias[2];
    __device__ explicit qm_epi(int t) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int cc = 2 * t + e;
            egrp[e] = cc < G * QM_PARTS ? cc / QM_PARTS : 0;
            const bool p0 = cc < G * QM_PARTS && cc % QM_PARTS == 0;
            eoff[e] = p0 ? -128.0f : 0.0f, ebias[e] = p0 ? 1.0f : 0.0f;
            ssel[e] = qm_scale_sel<SDT>(egrp[e]);
        }
    }
    /* the chunk's scales sv and biases bv: [column e][row g, g + 8] */
    __device__ void scales(const uint32_t (&sw)[4], float (&sv)[4], float (&bv)[4]) const {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            sv[2 * e] = qm_scale(sw[0], ssel[e], SDT), sv[2 * e + 1] = qm_scale(sw[1], ssel[e], SDT);
            bv[2 * e] = qm_scale(sw[2], ssel[e], SDT), bv[2 * e + 1] = qm_scale(sw[3], ssel[e], SDT);
        }
    }
    /* column e's sums cg (row g), ch (row g + 8), group sum of x sxv */
    __device__ void add(int e, float sxv, float cg, float ch, const float (&sv)[4], const float (&bv)[4], float &accg,
                        float &acch) const {
        const float bsx = ebias[e] * sxv;
        accg = fmaf(sv[2 * e], fmaf(eoff[e], sxv, cg), accg);
        acch = fmaf(sv[2 * e + 1], fmaf(eoff[e], sxv, ch), acch);
        accg = fmaf(bv[2 * e], bsx, accg);
        acch = fmaf(bv[2 * e + 1], bsx, acch);
    }
};

/* The one-row kernel's own column order: B column n = 4 * (group in
 * chunk) + part, part 3 zeros. Lane (g, t)'s accumulator columns 2t, 2t + 1
 * then belong to one group (t / 2 with groups of 64; 0, or none for t >= 2,
 * with 128), so it unpacks that group's scale and bias of its two rows (4,
 * not 8) and fetches one group sum (1 shuffle, not 2), and adds its two
 * columns before scaling them once: the gated two-tile kernel 332 -> 314
 * instructions per chunk pair, the heads' 283 -> 265 (bench/sass_loops.py).
 * Taken where the kernel keeps offsets (qm_rows<false>); the 2..8-row
 * kernels keep qm_bvalid's order (their x images are laid out by it). */
template <int G>
__device__ __forceinline__ bool qm1_bvalid(int g, int t) {
    return (g & 3) < QM_PARTS && (g >> 2) == (G == 2 ? t >> 1 : 0);
}
template <int G, int SDT>
struct qm1_epi {
    int grp, ssel;
    float eoff, ebias; /* column 2t is part 0 of its group: acc += s (C - 128 sum x) + b sum x */
    __device__ explicit qm1_epi(int t) {
        const bool live = G == 2 || t < 2, p0 = live && (t & 1) == 0;
        grp = G == 2 ? t >> 1 : 0;
        ssel = qm_scale_sel<SDT>(grp);
        eoff = p0 ? -128.0f : 0.0f, ebias = p0 ? 1.0f : 0.0f;
    }
    /* cg, ch: the lane's two columns added, rows g and g + 8; sw: the raw scales and biases (qm_rows::load) */
    __device__ void add(float sxv, float cg, float ch, const uint32_t (&sw)[4], float &accg, float &acch) const {
        const float sg = qm_scale(sw[0], ssel, SDT), sh = qm_scale(sw[1], ssel, SDT);
        const float bg = qm_scale(sw[2], ssel, SDT), bh = qm_scale(sw[3], ssel, SDT);
        const float bsx = ebias * sxv;
        accg = fmaf(bg, bsx, fmaf(sg, fmaf(eoff, sxv, cg), accg));
        acch = fmaf(bh, bsx, fmaf(sh, fmaf(eoff, sxv, ch), acch));
    }
};

/* Tile b's two 8-row halves, rows r0.. and r8..: 16 rows in a row (r8 =
 * r0 + 8); with glu, 8 gate rows and their up rows N / 2 further on; with
 * the rope_kv epilogue, in q and k, 8 rows of a head and their rope
 * partners half a head further on (rope's halves pairing: rows j and
 * j + D / 2), so the epilogue finds each pair in one tile; v's tiles are
 * in a row. */
__device__ __forceinline__ void qm_tile(const qmv_args &a, int64_t b, int64_t &r0, int64_t &r8) {
    if (a.glu) {
        r0 = b * (QM_ROWS / 2), r8 = a.N / 2 + r0;
    } else if (a.rk && b * QM_ROWS < a.rk_qk) {
        const int per_head = a.rk_d / QM_ROWS; /* tiles per head */
        const int64_t h = b / per_head;
        r0 = h * a.rk_d + (b - h * per_head) * (QM_ROWS / 2), r8 = r0 + a.rk_d / 2;
    } else {
        r0 = b * QM_ROWS, r8 = r0 + QM_ROWS / 2;
    }
}

/* The rope_kv epilogue of output row r (value v, its rope partner's value
 * pv): rope_kv_kernel's work on that element (cu_rope_kv.cu), through
 * cu_rope_pair (cu_rope.cuh) and with its stores, so the bits are those of
 * the product followed by rope_kv_write. */
__device__ __forceinline__ void qm_rope_kv(const qmv_args &a, int64_t r, float v, float pv) {
    const int64_t at = (int64_t)a.rk_slot[0];
    if (at < 0 || at >= a.rk_cap) { /* every thread sees it: nothing is written; row 0's thread reports */
        if (r == 0) cu_report(a.err, CU_ERR_ROPE_KV_SLOT, 1, at, a.rk_cap - 1);
        return;
    }
    const int D = a.rk_d;
    if (r >= a.rk_qk) { /* v: stored as it is */
        const int64_t h = (r - a.rk_qk) / D, c = r - a.rk_qk - h * D;
        cu_store(a.rk_vc, a.rk_vdt, h * a.rk_vst[0] + at * a.rk_vst[1] + c * a.rk_vst[2], v);
        return;
    }
    const int64_t h = r / D;
    const int c = (int)(r - h * D), half = D / 2;
    const bool first = c < half;
    const int i = first ? c : c - half;
    const float pos = 0.0f + (a.rk_offp ? (float)*a.rk_offp : a.rk_rope.off); /* row t = 0 */
    const float o = cu_rope_pair(a.rk_rope, pos, i, first ? v : pv, first ? pv : v, first);
    if (r < a.rk_q) a.rk_qout[r] = o; /* q_out [Hq, 1, D]: element r */
    else cu_store(a.rk_kc, a.rk_kdt, (h - a.rk_q / D) * a.rk_kst[0] + at * a.rk_kst[1] + c * a.rk_kst[2], o);
}

/* The end of a tile: rows g and g + 8 summed over the 4 lanes t, then over
 * the W warps in order (deterministic), written for x rows m < a.M. With
 * red_ss (the one-row kernel's fused norm: each warp's sum of x^2 over its
 * chunks, stored before this call) the sums are scaled by the norm's
 * 1 / sqrt(sum(x^2) / K + eps), the warps' shares added in order, so every
 * block gets the same bits; with a.res (one row) each output is res + sum
 * (the add of add_kernel, the same bits), thread i < 16 adding resv, the
 * residual of row r0 + i it loaded at its start; with a.glu (one row) the
 * tile is 8 gate rows and their up rows, and out [N / 2] gets
 * act(gate) * up; with a.rk (one row) the tile's halves are rows r0.. and
 * r8.. (qm_tile), written to out and through qm_rope_kv. */
template <int W, int NX>
__device__ __forceinline__ void qm_finish(const qmv_args &a, int64_t r0, float (&accg)[NX], float (&acch)[NX],
                                          float (&red)[W][NX][QM_ROWS], const float *red_ss = nullptr,
                                          float resv = 0.0f, int64_t r8 = 0) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int m = 0; m < NX; m++) {
        accg[m] += __shfl_xor_sync(0xffffffffu, accg[m], 1);
        acch[m] += __shfl_xor_sync(0xffffffffu, acch[m], 1);
        accg[m] += __shfl_xor_sync(0xffffffffu, accg[m], 2);
        acch[m] += __shfl_xor_sync(0xffffffffu, acch[m], 2);
        if (t == 0) red[warp][m][g] = accg[m], red[warp][m][g + 8] = acch[m];
    }
    __syncthreads();
    float inv = 1.0f;
    if (red_ss) {
        float ss = 0.0f;
#pragma unroll
        for (int w = 0; w < W; w++) ss += red_ss[w];
        inv = 1.0f / sqrtf(ss / (float)a.K + a.eps);
    }
    if (NX == 1 && a.glu) {
        /* thread i < 8: gate row r0 + i (tile row i) and its up row (tile row i + 8) */
        if (threadIdx.x < QM_ROWS / 2 && r0 + threadIdx.x < a.N / 2) {
            float gv = 0.0f, uv = 0.0f;
#pragma unroll
            for (int w = 0; w < W; w++) gv += red[w][0][threadIdx.x], uv += red[w][0][threadIdx.x + 8];
            if (red_ss) gv *= inv, uv *= inv;
            a.out[r0 + threadIdx.x] = cu_act(a.glu - 1, gv) * uv; /* act_kernel's expression */
        }
        return;
    }
    if (NX == 1 && a.rk) {
        /* warp 0's lane i < 16: tile row i (row r0 + i, then r8 + i - 8); its rope partner is lane i ^ 8 */
        if (warp == 0) {
            float v = 0.0f;
            if (lane < QM_ROWS) {
#pragma unroll
                for (int w = 0; w < W; w++) v += red[w][0][lane];
                if (red_ss) v *= inv;
            }
            const float pv = __shfl_xor_sync(0xffffffffu, v, 8);
            const int64_t r = (lane < 8 ? r0 : r8) + (lane & 7);
            if (lane < QM_ROWS && r < a.N) {
                a.out[r] = v;
                qm_rope_kv(a, r, v, pv);
            }
        }
        return;
    }
    for (int i = threadIdx.x; i < NX * QM_ROWS; i += W * 32) {
        const int m = i / QM_ROWS, r = i % QM_ROWS;
        if (m < a.M && r0 + r < a.N) {
            float v = 0.0f;
#pragma unroll
            for (int w = 0; w < W; w++) v += red[w][m][r];
            if (red_ss) v *= inv;
            if (a.res) v = resv + v; /* one row: thread i holds res[r0 + i] (NX == 1 only) */
            a.out[m * a.ldo + r0 + r] = v;
        }
    }
}

/* The fused norm's effective weight pair from two 16-bit values of dtype
 * NDT (bf16 or f16) in one word (lo first), each off + w rounded to NDT as
 * rms_norm's norm weight (cu_reduce.cu). */
template <int NDT>
__device__ __forceinline__ float2 qm_norm_w2(uint32_t raw, float off) {
    float2 v;
    v.x = NDT == MLXN_DTYPE_BF16 ? __uint_as_float(raw << 16) : cu_f16_f32((uint16_t)raw);
    v.y = NDT == MLXN_DTYPE_BF16 ? __uint_as_float(raw & 0xffff0000u) : cu_f16_f32((uint16_t)(raw >> 16));
    if (off != 0.0f) {
        v.x = off + v.x, v.y = off + v.y;
        v.x = NDT == MLXN_DTYPE_BF16 ? cu_bf16_f32(cu_f32_bf16(v.x)) : cu_f16_f32(cu_f32_f16(v.x));
        v.y = NDT == MLXN_DTYPE_BF16 ? cu_bf16_f32(cu_f32_bf16(v.y)) : cu_f16_f32(cu_f32_f16(v.y));
    }
    return v;
}

/* Blocks per SM the one-row kernel's registers must allow: 16 warps (a
 * 128-register cap: 2 blocks of 8 warps, 1 of 16), 3 blocks of 6 warps
 * (one wave of ~18 warps per SM, qm_launch_one), and 5 blocks of 4 warps,
 * what the plain kernel gets at 95 registers (the NORM variant needs the
 * cap: ~100 unforced). */
#define QM_MIN_BLOCKS(W) ((W) == 4 ? 5 : (W) == 6 ? 3 : (W) == 16 ? 1 : 512 / ((W) * 32))
/* T = 2 (two row tiles per block): a 128-register cap by default;
 * qm_launch also builds the 4-warp kernel at 5 blocks per SM (its MB) */
#define QM_MIN_BLOCKS_T(W, T) ((T) == 1 ? QM_MIN_BLOCKS(W) : (W) == 16 ? 1 : 512 / ((W) * 32))

/* G: groups per chunk (2: group 64, 1: group 128); SDT: scale dtype; W
 * warps per block; D chunks in flight per warp (per tile); T row tiles per
 * block (1, or 2 where qm_launch's rule picks it: the chunk's x parts and B
 * registers then serve both tiles); MB the blocks per SM the registers must
 * allow (QM_MIN_BLOCKS_T; qm_launch also builds two-tile blocks of 4 warps
 * at 5). At least 16 warps per SM (a 128-register cap).
 * NDT (0, or bf16 / f16: the fused op's rms_norm of x with the weight
 * a.nw of that dtype): a decode step's norm before its q/k/v and gate/up
 * projections, without a kernel of its own. The norm is linear up to its
 * scale, so each lane stages x * w instead of x, sums x^2 as it goes, and
 * the tile's sums are scaled once by 1 / sqrt(mean(x^2) + eps) at the end
 * (every block sees all of x, so each computes the scale itself). The
 * weights ride in the register ring with x (two 16-bit values per word).
 * Measured on an H100 (docs/perf.md): copied into shared memory at each
 * block's start instead, the kernel was 6-15% slower (a serial round trip
 * and a barrier per block); with an f32 ring beside the 16-bit one it held
 * 112 registers and the 4-warp launch lost a fifth of its blocks per SM. */
template <int G, int SDT, int W, int D, int NDT, int T, int MB = QM_MIN_BLOCKS_T(W, T)>
__global__ void __launch_bounds__(W * 32, MB) qmv_mma_kernel(qmv_args a) {
    constexpr bool NORM = NDT != 0;
    __shared__ uint4 xbuf[W][QM_WARP_BYTES / 16]; /* per warp: the chunk being computed, x as B operands */
    __shared__ float red[T][W][1][QM_ROWS];       /* each warp's row sums, per tile */
    __shared__ float red_ss[NORM ? W : 1];        /* NORM: each warp's sum of x^2 */
    const int nch = a.K / QM_CHUNK;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int64_t r0[T], r8[T]; /* each tile's two halves of 8 rows (qm_tile): tiles T b .. T b + T - 1 */
    constexpr bool ROOMY = QM_ROOMY(W, MB) && T == 1; /* (two tiles: 12 pointers, 358 -> 372 instructions a chunk pair) */
    qm_rows<ROOMY> rows[T];
#pragma unroll
    for (int u = 0; u < T; u++) {
        qm_tile(a, (int64_t)blockIdx.x * T + u, r0[u], r8[u]);
        rows[u] = qm_rows<ROOMY>(a, r0[u], g, t, r8[u], warp, W);
    }
    /* the x this lane stages per chunk: word-group jw (8 codes) of the
     * chunk, codes 2h, 2h + 1 and 2h + 4, 2h + 5 of it (two code pairs) */
    const int jw = lane >> 1, h = lane & 1;
    const uint32_t ox = 8 * jw + 2 * h;
    const float *xl = a.x + QM_CHUNK * warp + ox; /* the next chunk's (load advances it) */
    const uint16_t *nl = NORM ? (const uint16_t *)a.nw + QM_CHUNK * warp + ox : nullptr; /* same, of the norm weight */

    uint32_t cw[D][T][8];  /* ring: codes (qm_rows::load), per tile */
    uint32_t sw[D][T][4];  /* ring: raw scales and biases */
    float2 xr[D][2];    /* ring: this lane's 4 x values of the chunk */
    uint32_t nh[NORM ? D : 1][2]; /* NORM ring: the norm weights of those x, two per word */
    auto load = [&](int d, uint32_t c) {
#pragma unroll
        for (int u = 0; u < T; u++) rows[u].template load<G>(a, cw[d][u], sw[d][u]);
        /* x and the norm weight: running pointers, or offsets as qm_rows<false> */
        const float *xc = ROOMY ? xl : a.x + (QM_CHUNK * c + ox);
        const uint16_t *nc = ROOMY ? nl : (const uint16_t *)a.nw + (QM_CHUNK * c + ox);
        xr[d][0] = *(const float2 *)xc, xr[d][1] = *(const float2 *)(xc + 4);
        if (NORM) nh[d][0] = __ldg((const uint32_t *)nc), nh[d][1] = __ldg((const uint32_t *)(nc + 4));
        if (ROOMY) xl += QM_CHUNK * W, nl += NORM ? QM_CHUNK * W : 0;
    };
    float ssq = 0.0f; /* NORM: this lane's sum of x^2 */
#pragma unroll
    for (int d = 0; d < D; d++)
        if (warp + d * W < nch)
#pragma unroll
            for (int u = 0; u < T; u++) rows[u].prefetch(a, d);
    cu_pdl_wait();
    cu_pdl_launch_dependents();
#pragma unroll
    for (int d = 0; d < D; d++)
        if (warp + d * W < nch) load(d, warp + d * W);
    /* the residual this thread adds in qm_finish (thread i < 16 writes row r0 + i), loaded now */
    float resv[T];
#pragma unroll
    for (int u = 0; u < T; u++)
        resv[u] = a.res && threadIdx.x < QM_ROWS && r0[u] + threadIdx.x < a.N ? a.res[r0[u] + threadIdx.x] : 0.0f;

    unsigned char *wb = (unsigned char *)xbuf[warp];
    if (lane < 4) ((uint4 *)(wb + QM_ZEROS))[lane] = make_uint4(0, 0, 0, 0);
    /* where this lane's two pairs go: lane region jw / 4, 16-byte slot jw % 4
     * (swizzled), 8 bytes h */
    const int st_off = (jw >> 2) * 64 + 16 * ((jw & 3) ^ ((jw >> 3) & 1)) + 8 * h;
    /* this lane's B registers: its column's part, or zeros (no predicated loads, no register clears).
     * The column order (qm1_bvalid): 4 * group + part where the kernel keeps offsets; the one-tile
     * pointer kernels keep (group) * 3 + part, where the other cost 6 instructions a chunk more (the
     * compiler then recomputed the shared addresses every chunk) */
    constexpr bool COL4 = !ROOMY;
    const bool bvalid = COL4 ? qm1_bvalid<G>(g, t) : qm_bvalid<G>(g, t);
    const unsigned char *xb = bvalid ? wb + (COL4 ? g & 3 : g % QM_PARTS) * QM_PART_BYTES + t * 64 : wb + QM_ZEROS;
    const int swz = bvalid ? (t >> 1) : 0;
    const qm_epi<G, SDT> epi(t);
    const qm1_epi<G, SDT> epi1(t);
    float accg[T][1], acch[T][1];
#pragma unroll
    for (int u = 0; u < T; u++) accg[u][0] = acch[u][0] = 0.0f;
    for (int c0 = warp; c0 < nch; c0 += D * W) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int c = c0 + d * W;
            if (c >= nch) break;
            /* stage the chunk's x as three bf16 parts (pairs: codes m, m + 4) and its group sums */
            float rest[4] = {xr[d][0].x, xr[d][1].x, xr[d][0].y, xr[d][1].y}; /* pair 2h, then pair 2h + 1 */
            if (NORM) {
                const float2 w0 = qm_norm_w2<NDT>(nh[d][0], a.nw_off), w1 = qm_norm_w2<NDT>(nh[d][1], a.nw_off);
#pragma unroll
                for (int e = 0; e < 4; e++) ssq = fmaf(rest[e], rest[e], ssq);
                rest[0] *= w0.x, rest[1] *= w1.x, rest[2] *= w0.y, rest[3] *= w1.y;
            }
            float xsum = (rest[0] + rest[1]) + (rest[2] + rest[3]);
            __syncwarp(); /* the last chunk's B reads are done */
#pragma unroll
            for (int p = 0; p < QM_PARTS; p++) {
                uint32_t u[4];
#pragma unroll
                for (int e = 0; e < 4; e++) u[e] = __float_as_uint(rest[e]);
                *(uint2 *)(wb + p * QM_PART_BYTES + st_off) = make_uint2(qm_bf16_top2(u[0], u[1]), qm_bf16_top2(u[2], u[3]));
                if (p + 1 < QM_PARTS)
#pragma unroll
                    for (int e = 0; e < 4; e++) rest[e] -= __uint_as_float(u[e] & 0xffff0000u);
            }
#pragma unroll
            for (int o = 1; o < 32 / G; o *= 2) xsum += __shfl_xor_sync(0xffffffffu, xsum, o);
            __syncwarp();
            uint32_t b[16];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const uint4 v = *(const uint4 *)(xb + 16 * (j ^ swz));
                b[4 * j] = v.x, b[4 * j + 1] = v.y, b[4 * j + 2] = v.z, b[4 * j + 3] = v.w;
            }
            float acc[T][2][4] = {}; /* per tile two chains of 4 mmas (one of 8 waits on the mma latency 8 times) */
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const int j = i >> 1, m = 2 * (i & 1);
#pragma unroll
                for (int u = 0; u < T; u++)
                    qm_mma(acc[u][i & 1], qm_pair(cw[d][u][j], m), qm_pair(cw[d][u][4 + j], m), qm_pair(cw[d][u][j], m + 1),
                           qm_pair(cw[d][u][4 + j], m + 1), b[4 * j + m], b[4 * j + m + 1]);
            }
            if (COL4) {
                const float xs = __shfl_sync(0xffffffffu, xsum, epi1.grp * 16);
#pragma unroll
                for (int u = 0; u < T; u++)
                    epi1.add(xs, (acc[u][0][0] + acc[u][1][0]) + (acc[u][0][1] + acc[u][1][1]),
                             (acc[u][0][2] + acc[u][1][2]) + (acc[u][0][3] + acc[u][1][3]), sw[d][u], accg[u][0],
                             acch[u][0]);
            } else {
                float xs[2];
#pragma unroll
                for (int e = 0; e < 2; e++) xs[e] = __shfl_sync(0xffffffffu, xsum, epi.egrp[e] * 16);
#pragma unroll
                for (int u = 0; u < T; u++) {
                    float sv[4], bv[4];
                    epi.scales(sw[d][u], sv, bv);
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        epi.add(e, xs[e], acc[u][0][e] + acc[u][1][e], acc[u][0][2 + e] + acc[u][1][2 + e], sv, bv,
                                accg[u][0], acch[u][0]);
                }
            }
            /* refill the slot, D chunks ahead (refilling before the mmas, with the codes moved to operand
             * registers first, measured slower: 21.1 against 18.6 us at 4096 x 14336) */
            if (c + D * W < nch) load(d, c + D * W);
        }
    }
    if (NORM) {
#pragma unroll
        for (int o = 1; o < 32; o *= 2) ssq += __shfl_xor_sync(0xffffffffu, ssq, o);
        if (lane == 0) red_ss[warp] = ssq; /* read after qm_finish's barrier */
    }
#pragma unroll
    for (int u = 0; u < T; u++) qm_finish<W, 1>(a, r0[u], accg[u], acch[u], red[u], NORM ? red_ss : nullptr, resv[u], r8[u]);
}

/* qmv_mma_kernel for this product's norm variant (NDT), as a plain function pointer */
template <int G, int SDT, int W, int D, int T, int MB = QM_MIN_BLOCKS_T(W, T)>
static void (*qm_kernel_for(const qmv_args &a))(qmv_args) {
    if (!a.nw) return qmv_mma_kernel<G, SDT, W, D, 0, T, MB>;
    if (a.nw_dt == MLXN_DTYPE_BF16) return qmv_mma_kernel<G, SDT, W, D, MLXN_DTYPE_BF16, T, MB>;
    return qmv_mma_kernel<G, SDT, W, D, MLXN_DTYPE_F16, T, MB>;
}

/* How full the last wave of a grid of `blocks` is, on average over its
 * waves (1: every wave full), at `per_sm` blocks per SM. */
static double qm_wave_fill(int64_t blocks, int per_sm, int sms) {
    const int64_t wave = (int64_t)(per_sm > 0 ? per_sm : 1) * sms, waves = (blocks + wave - 1) / wave;
    return (double)blocks / (double)(waves * wave);
}

template <int G, int SDT, int W, int D>
static bool qm_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    /* Blocks of two row tiles (each warp's x parts and B reads serve both; one chunk of each in flight)
     * for the 4-warp launch's many-tile products, in one of two builds: capped at 128 registers (115
     * used: 4 blocks per SM) or at 102 (96 used, no spills: 5 blocks per SM, a quarter more warps).
     * Measured on an H100 (docs/perf.md), back to back, one tile / two at 4 per SM / two at 5 per SM:
     *   - 5 per SM where its grid fills its waves (>= 0.95): 20480 x 2560 (Gemma-3-4B's gate/up: 640
     *     blocks in 0.97 of a wave) 14.9 / 16.4 / 12.9 us, Gemma-3-4B tg128 470 -> 482 tok/s; and where
     *     it runs at least 4 waves (the vocabulary heads): 128256 x 2048 58.4 -> 56.4 alone, 58.5 -> 55.9
     *     in a traced step. With the heads there, Llama-3.2-1B's tg128 fell 1881 -> 1860 in one call
     *     (unexplained) and rose 1866 / 1869 -> 1871 / 1883 in a later one, Llama-3-8B's 447.6 / 447.4 ->
     *     448.0 / 447.8;
     *   - elsewhere 4 per SM, where the halved grid still fills its waves about as well as the one-tile
     *     grid (within 0.1): 16384 x 2048 10.7 / 9.2 / 10.1, 28672 x 4096 29.5 / 28.5 / 30.0 (1.7 waves
     *     at 4 per SM; 1.36 at 5 leave a third of the last wave's slots empty);
     *   - with few tiles half the blocks leave SMs short of loads (4096 x 14336 14.3 -> 19.6).
     * And two-tile blocks of 2 warps (8 per SM) where the grid picked above takes more than one wave and
     * theirs fits in one: a SM then holds 6-7 small blocks in one wave instead of a full wave of 4 and a
     * second one ~70% full. Measured on an H100 (docs/perf.md): with Llama-3-8B's gate/up (28672 x 4096,
     * 896 blocks: 1.7 waves of 4 per SM) on them, its tg128 rose 449.3 / 448.9 -> 455.7 / 455.9 tok/s in
     * one call (447.9 / 448.0 -> 453.9 / 453.9 in another), though alone, back to back, that product moved
     * only 28.6 -> 28.5-28.7 us (one by one 33.2-33.4 -> 31.8-32.6); 33792 x 4096 (2 waves) 31.7 -> 30.7
     * us. Where 4 per SM already fit one wave they lost: 16384 x 2048 (Llama-3.2-1B's gate/up, 512
     * blocks) 9.2 -> 11.5 us, the 1B's tg128 1880 -> 1574; 14336 x 4096 15.5 -> 19.8.
     * MLXN_CUDA_QMV_T2 = 0 forces one tile, 1 / 2 two at 4 / 5 per SM, 3 two-warp blocks (comparisons,
     * tests); MLXN_CUDA_QMV_W2 = 0 keeps the rule without two-warp blocks (comparisons). */
    const cu_stream *c = cu_ctx(s);
    const int64_t tiles = a.glu ? (a.N / 2 + QM_ROWS / 2 - 1) / (QM_ROWS / 2) : (a.N + QM_ROWS - 1) / QM_ROWS;
    const int64_t pairs = (tiles + 1) / 2;
    constexpr int MB5 = W == 4 ? 5 : QM_MIN_BLOCKS_T(W, 2); /* other widths: the one build */
    const int t2 = c->knobs.qmv_t2;
    bool two = t2 == 1 || t2 == 2, five = t2 == 2, warp2 = t2 == 3;
    if (t2 == 0 && W == 4 && tiles >= 6 * c->sms) {
        int b1 = 0, b2 = 0, b5 = 0, bw = 0;
        const char *op = "quantized_matmul";
        *st = cu_occupancy(s, op, qm_kernel_for<G, SDT, W, D, 1>(a), W * 32, 0, &b1);
        if (*st == MLXN_OK) *st = cu_occupancy(s, op, qm_kernel_for<G, SDT, W, 1, 2>(a), W * 32, 0, &b2);
        if (*st == MLXN_OK) *st = cu_occupancy(s, op, qm_kernel_for<G, SDT, W, 1, 2, MB5>(a), W * 32, 0, &b5);
        if (*st == MLXN_OK) *st = cu_occupancy(s, op, qm_kernel_for<G, SDT, 2, 1, 2>(a), 2 * 32, 0, &bw);
        if (*st != MLXN_OK) return true;
        five = b5 > 0 && (qm_wave_fill(pairs, b5, c->sms) >= 0.95 || pairs >= 4 * (int64_t)b5 * c->sms);
        two = five || qm_wave_fill(pairs, b2, c->sms) >= qm_wave_fill(tiles, b1, c->sms) - 0.1;
        const int64_t blocks = two ? pairs : tiles, per_sm = five ? b5 : two ? b2 : b1;
        warp2 = !c->knobs.qmv_w2_off && bw > 0 && blocks > per_sm * c->sms && pairs <= (int64_t)bw * c->sms;
    }
    if (warp2) cu_launch(s, qm_kernel_for<G, SDT, 2, 1, 2>(a), dim3((unsigned)pairs), dim3(2 * 32), 0, a);
    else if (two && five) cu_launch(s, qm_kernel_for<G, SDT, W, 1, 2, MB5>(a), dim3((unsigned)pairs), dim3(W * 32), 0, a);
    else if (two) cu_launch(s, qm_kernel_for<G, SDT, W, 1, 2>(a), dim3((unsigned)pairs), dim3(W * 32), 0, a);
    else cu_launch(s, qm_kernel_for<G, SDT, W, D, 1>(a), dim3((unsigned)tiles), dim3(W * 32), 0, a);
    *st = MLXN_OK;
    return true;
}

/* ---- 2..8 x rows ----
 * The same tile and mma layout, one B column set per x row (each exactly
 * the one-row kernel's columns), the codes dequantized once per chunk and
 * used for every row. Splitting x per warp would cost ~40 instructions per
 * row per chunk; here it is done once per call: qm_xprep_kernel writes
 * each chunk's "image" (x's three bf16 parts for NX rows in the order the
 * B registers are read, then the rows' group sums), and the warps copy a
 * chunk's image into their shared-memory ring with cp.async (no registers,
 * D chunks ahead, the copy waited on by cp.async.wait_group). */

/* Bytes of one chunk's image: [NX rows][3 parts][4 lanes t][4 slots] of 16
 * bytes (slot j of lane t at j ^ (t >> 1)), then [NX][G] f32 group sums in
 * 64 bytes. */
__host__ __device__ constexpr int qm_img_bytes(int nx) { return nx * QM_PARTS * 256 + 64; }

/* The body of both image-prep kernels (one block per chunk c, thread k =
 * code position k of the chunk): x rows 0..NX-1 (rows M.. as zeros) split
 * into three bf16 parts that sum to x exactly, part p of row m stored at
 * base + dst(m, p) (each layout's B-register order), then the rows' group
 * sums, [NX][G] f32 at base + sums. Every row's value is loaded first, one
 * round trip (the stores may alias x for the compiler, so loads inside the
 * loop waited on L2 one row at a time; ncu had the 8-row prep at 6.6 us,
 * mostly those waits). */
template <int G, int NX, class Dst>
__device__ __forceinline__ void qm_prep_chunk(const float *x, int64_t ldx, int M, unsigned char *base, int sums, Dst dst) {
    const int c = blockIdx.x, k = threadIdx.x;
    __shared__ float wsum[NX][4];
    cu_pdl_wait();
    cu_pdl_launch_dependents();
    float xv[NX];
#pragma unroll
    for (int m = 0; m < NX; m++) xv[m] = m < M ? x[m * ldx + (int64_t)c * QM_CHUNK + k] : 0.0f;
#pragma unroll
    for (int m = 0; m < NX; m++) {
        float rest = xv[m], sum = xv[m];
#pragma unroll
        for (int o = 16; o >= 1; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if ((k & 31) == 0) wsum[m][k >> 5] = sum;
#pragma unroll
        for (int p = 0; p < QM_PARTS; p++) {
            const __nv_bfloat16 h = __float2bfloat16_rn(rest);
            *(__nv_bfloat16 *)(base + dst(m, p)) = h;
            rest -= __bfloat162float(h);
        }
    }
    __syncthreads();
    if (k < NX * G) {
        const int m = k / G, gi = k % G;
        ((float *)(base + sums))[k] =
            G == 2 ? wsum[m][2 * gi] + wsum[m][2 * gi + 1] : (wsum[m][0] + wsum[m][1]) + (wsum[m][2] + wsum[m][3]);
    }
}

/* One block per chunk, one thread per code position k of it. Rows M..NX-1
 * are zeros. */
template <int G, int NX>
__global__ void __launch_bounds__(QM_CHUNK) qm_xprep_kernel(const float *x, int64_t ldx, int M, unsigned char *img) {
    const int k = threadIdx.x;
    const int t = k >> 5, j = (k >> 3) & 3, i = k & 7; /* lane t, word j, code i of the word */
    /* code i is pair i % 4, half i / 4 (codes m and m + 4 share a bf16x2) */
    const int off = t * 64 + ((j ^ (t >> 1)) * 16) + (i & 3) * 4 + (i >> 2) * 2;
    qm_prep_chunk<G, NX>(x, ldx, M, img + (size_t)blockIdx.x * qm_img_bytes(NX), NX * QM_PARTS * 256,
                         [=](int m, int p) { return (m * QM_PARTS + p) * 256 + off; });
}

/* G, SDT, W, D as in qmv_mma_kernel; NX: x rows (a.M <= NX). Shared
 * memory per warp: D image slots (parts padded to 288 bytes apart, as in
 * the one-row kernel) and 64 bytes of zeros. */
template <int G, int SDT, int NX, int W, int D>
__global__ void __launch_bounds__(W * 32, 512 / (W * 32)) qmv_mma_nx_kernel(qmv_args a, const unsigned char *img) {
    constexpr int SUMS = NX * QM_PARTS * QM_PART_BYTES;  /* a slot's group sums, after its parts */
    constexpr int SLOT = SUMS + 64, WBYTES = D * SLOT + 64;
    extern __shared__ uint4 qm_dsmem[];
    __shared__ float red[W][NX][QM_ROWS]; /* each warp's row sums */
    const int nch = a.K / QM_CHUNK;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t r0 = (int64_t)blockIdx.x * QM_ROWS;
    qm_rows<false> rows(a, r0, g, t, r0 + 8, warp, W); /* (offsets: it spills with either form; pointers not timed here) */
    unsigned char *wb = (unsigned char *)qm_dsmem + warp * WBYTES;
    const uint32_t wbs = (uint32_t)__cvta_generic_to_shared(wb);

    uint32_t cw[D][8]; /* ring: codes (qm_rows::load) */
    uint32_t sw[D][4]; /* ring: raw scales and biases */
    /* chunk c's image into slot d: 16-byte pieces q, part pieces placed
     * 288 bytes apart per (row, part); the caller commits one cp.async group
     * per slot refill, copy or not, so wait_group counts slots */
    auto copy = [&](int d, int c) {
        const unsigned char *src = img + (size_t)c * qm_img_bytes(NX);
        for (int q = lane; q < NX * 48 + 4; q += 32) {
            const uint32_t dst = wbs + d * SLOT + (q < NX * 48 ? (q >> 4) * QM_PART_BYTES + (q & 15) * 16 : SUMS + (q - NX * 48) * 16);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src + 16 * q));
        }
    };

#pragma unroll
    for (int d = 0; d < D; d++)
        if (warp + d * W < nch) rows.prefetch(a, d);
    cu_pdl_wait(); /* the images are the kernel before's output */
    cu_pdl_launch_dependents();
#pragma unroll
    for (int d = 0; d < D; d++) {
        if (warp + d * W < nch) rows.load<G>(a, cw[d], sw[d]), copy(d, warp + d * W);
        asm volatile("cp.async.commit_group;" ::);
    }
    if (lane < 4) ((uint4 *)(wb + D * SLOT))[lane] = make_uint4(0, 0, 0, 0);

    /* B registers as in the one-row kernel: the column's part of each row, or the zeros */
    const bool bvalid = qm_bvalid<G>(g, t);
    const unsigned char *bb = bvalid ? wb + (g % QM_PARTS) * QM_PART_BYTES + t * 64 : wb + D * SLOT;
    const int bslot = bvalid ? SLOT : 0, brow = bvalid ? QM_PARTS * QM_PART_BYTES : 0, swz = bvalid ? t >> 1 : 0;
    const qm_epi<G, SDT> epi(t);
    float accg[NX], acch[NX];
#pragma unroll
    for (int m = 0; m < NX; m++) accg[m] = acch[m] = 0.0f;
    for (int c0 = warp; c0 < nch; c0 += D * W) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int c = c0 + d * W;
            if (c >= nch) break;
            asm volatile("cp.async.wait_group %0;" ::"n"(D - 1)); /* this slot's copy (the oldest group) is done */
            __syncwarp();
            float sv[4], bv[4];
            epi.scales(sw[d], sv, bv);
            const float *sums = (const float *)(wb + d * SLOT + SUMS);
            /* two x rows at a time, each row's 8 mmas split over two accumulators: 4 independent chains of 4
             * (one chain of 8 per row, row after row, left the warp waiting on the mma latency). The codes
             * become operands again for every pair of rows: holding all 32 operand registers across the rows
             * cost 40 more registers per thread, which halved the warps per SM. */
#pragma unroll
            for (int m0 = 0; m0 < NX; m0 += 2) {
                float acc[2][2][4] = {}; /* [row of the pair][chain][accumulator] */
#pragma unroll
                for (int j = 0; j < 4; j++) { /* word j: mmas 2j, 2j + 1; B read just before (8 registers live) */
                    uint4 v[2];
#pragma unroll
                    for (int r = 0; r < 2; r++) v[r] = *(const uint4 *)(bb + d * bslot + (m0 + r) * brow + 16 * (j ^ swz));
#pragma unroll
                    for (int r = 0; r < 2; r++) {
                        qm_mma(acc[r][0], qm_pair(cw[d][j], 0), qm_pair(cw[d][4 + j], 0), qm_pair(cw[d][j], 1),
                               qm_pair(cw[d][4 + j], 1), v[r].x, v[r].y);
                        qm_mma(acc[r][1], qm_pair(cw[d][j], 2), qm_pair(cw[d][4 + j], 2), qm_pair(cw[d][j], 3),
                               qm_pair(cw[d][4 + j], 3), v[r].z, v[r].w);
                    }
                }
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const int m = m0 + r;
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        epi.add(e, sums[m * G + epi.egrp[e]], acc[r][0][e] + acc[r][1][e], acc[r][0][2 + e] + acc[r][1][2 + e],
                                sv, bv, accg[m], acch[m]);
                }
            }
            __syncwarp(); /* every lane is done with the slot before it is refilled */
            if (c + D * W < nch) rows.load<G>(a, cw[d], sw[d]), copy(d, c + D * W);
            asm volatile("cp.async.commit_group;" ::);
        }
    }
    asm volatile("cp.async.wait_all;" ::);
    qm_finish<W, NX>(a, r0, accg, acch, red);
}

/* ---- 3..8 x rows, the rows as B columns ----
 * Why a second layout: above, an mma's 8 B columns are one x row's (group,
 * part) sums, so 8 rows take 8 mmas per 16 codes and re-make the code
 * operands for every pair of rows (~450 instructions per chunk and warp at
 * 8 rows; 58 us at 4096 x 14336). Here B's 8 columns are the 8 x rows (rows
 * M..7 zero) and x's three parts are three mmas, each into its own f32
 * accumulator (the parts' sums are added in f32 after, as the one-row
 * layout adds its part columns), so 16 codes of 16 W rows against all rows
 * cost 3 mmas, and the codes become operands once per chunk. (Two rows stay
 * on the kernel above: this one costs the same for any row count.)
 *   - An mma must not mix two groups (each has its own scale): the 4 lanes
 *     t feeding one mma must hold codes of one group. With groups of 64,
 *     lane t loads 8 bytes of each group of each of its rows ([8t, 8t + 8)
 *     and [32 + 8t, 32 + 8t + 8) of the chunk's 64 bytes: 4 lanes read 32
 *     contiguous bytes, a whole sector); k-steps 0..3 take group 0's words,
 *     4..7 group 1's. With groups of 128, lane t loads bytes [16t, 16t + 16).
 *   - k-step s uses word s / 2 of each row and nibble pairs m0 = 2 (s % 2)
 *     (k = 2t, 2t + 1) and m0 + 1 (k = 2t + 8, 2t + 9), as qm_pair makes
 *     them; qm8_xprep_kernel puts each x value where that order needs it.
 *   - The accumulator of lane (g, t) holds W rows g, g + 8 times x rows 2t,
 *     2t + 1. Per group: acc += s * (C - 128 sum x) + b * sum x, with the
 *     group sums of x rows 2t, 2t + 1 from the image.
 *   - Accumulators per part and per chain, the chain being the group (64)
 *     or the k-step's parity (128): no accumulator waits on the mma
 *     latency more than 4 times per chunk.
 * The image of a chunk: [4 k-step pairs][3 parts][32 lanes] x 16 bytes (a
 * lane's B registers of k-steps 2i and 2i + 1: one conflict-free 16-byte
 * read), then [8 rows][G] f32 group sums. */
__host__ __device__ constexpr int qm8_img_bytes() { return 4 * QM_PARTS * 32 * 16 + 64; }

/* One block per chunk, one thread per code position k of it. */
template <int G>
__global__ void __launch_bounds__(QM_CHUNK) qm8_xprep_kernel(const float *x, int64_t ldx, int M, unsigned char *img) {
    const int k = threadIdx.x;
    /* lane t, word j (of the lane's 4 words of a row) and nibble of code k */
    int t, j;
    if (G == 2) t = (k & 63) >> 4, j = 2 * (k >> 6) + ((k >> 3) & 1);
    else t = k >> 5, j = (k >> 3) & 3;
    const int nib = k & 7, s = 2 * j + ((nib & 3) >> 1);         /* k-step: pair nib % 4 is m0 or m0 + 1 */
    const int reg = (s & 1) * 2 + (nib & 1), half = nib >> 2;    /* b0 / b1 of k-step s; low / high bf16 */
    /* part p of row m: B lane (g = m, t) of k-step pair s / 2 */
    qm_prep_chunk<G, 8>(x, ldx, M, img + (size_t)blockIdx.x * qm8_img_bytes(), 4 * QM_PARTS * 32 * 16,
                        [=](int m, int p) { return (((s >> 1) * QM_PARTS + p) * 32 + 4 * m + t) * 16 + reg * 4 + half * 2; });
}

/* G, SDT, W, D as in qmv_mma_kernel; T row tiles of 16 per block, each
 * warp computing all of them for its chunks. Why T > 1: a chunk's image
 * (6 KB) comes from L2 once per warp and chunk, against 1 KB of codes per
 * tile; with one tile the images were ~6x the weights' bytes. Shared
 * memory per warp: D image slots. */
template <int G, int SDT, int W, int D, int T>
__global__ void __launch_bounds__(W * 32, 1) qmv_mma8_kernel(qmv_args a, const unsigned char *img) {
    constexpr int SLOT = qm8_img_bytes(), SUMS = 4 * QM_PARTS * 32 * 16;
    extern __shared__ uint4 qm_dsmem[];
    __shared__ float red[W][T][4][32]; /* each warp's sums, [tile][value][lane] */
    const int nch = a.K / QM_CHUNK;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t r0 = (int64_t)blockIdx.x * QM_ROWS * T;
    unsigned char *wb = (unsigned char *)qm_dsmem + warp * D * SLOT;
    const uint32_t wbs = (uint32_t)__cvta_generic_to_shared(wb);

    /* this lane's rows g, g + 8 of each tile (clamped: rows past N compute and are not written) */
    uint32_t ow[T][2], os[T][2];
#pragma unroll
    for (int u = 0; u < T; u++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            int64_t r = r0 + 16 * u + g + 8 * hr;
            if (r >= a.N) r = a.N - 1;
            ow[u][hr] = (uint32_t)cu_qrow_words(a.w, r) + (G == 2 ? 2 * t : 4 * t);
            os[u][hr] = (uint32_t)cu_qrow_scales(a.w, r);
        }
    /* a chunk's step in words and scale elements (the layout's) */
    const uint32_t ccw = (uint32_t)cu_qchunk_words(a.w), ccs = (uint32_t)cu_qchunk_scales(a.w);
    uint32_t cw[D][T][8]; /* ring: words 0..3 of row g, then of row g + 8, per tile */
    uint32_t sw[D][T][4]; /* ring: raw scales of rows g, g + 8, then biases (a group pair as one word when G = 2) */
    auto load = [&](int d, uint32_t c) {
        const uint32_t *wq = a.w.wq;
        const unsigned short *sc = (const unsigned short *)a.w.sc, *bi = (const unsigned short *)a.w.bi;
#pragma unroll
        for (int u = 0; u < T; u++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                uint32_t *w = cw[d][u] + 4 * hr;
                if (G == 2) {
                    const uint2 v0 = __ldg((const uint2 *)(wq + ow[u][hr] + ccw * c));
                    const uint2 v1 = __ldg((const uint2 *)(wq + ow[u][hr] + ccw * c + 8));
                    w[0] = v0.x, w[1] = v0.y, w[2] = v1.x, w[3] = v1.y;
                    sw[d][u][hr] = __ldg((const unsigned int *)(sc + (os[u][hr] + ccs * c)));
                    sw[d][u][2 + hr] = __ldg((const unsigned int *)(bi + (os[u][hr] + ccs * c)));
                } else {
                    const uint4 v = __ldg((const uint4 *)(wq + ow[u][hr] + ccw * c));
                    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
                    sw[d][u][hr] = __ldg(sc + (os[u][hr] + ccs * c));
                    sw[d][u][2 + hr] = __ldg(bi + (os[u][hr] + ccs * c));
                }
            }
        /* the chunk's image into slot d: SLOT / 16 pieces over the lanes; one cp.async group per refill */
        const unsigned char *src = img + (size_t)c * SLOT;
        for (int q = lane; q < SLOT / 16; q += 32)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(wbs + d * SLOT + 16 * q), "l"(src + 16 * q));
    };

    /* before the wait, only L2 prefetches of the first chunks' codes (see qm_rows::prefetch) */
#pragma unroll
    for (int d = 0; d < D; d++)
#pragma unroll
        for (int u = 0; u < T; u++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++)
                if (warp + d * W < nch) asm volatile("prefetch.global.L2 [%0];" ::"l"(a.w.wq + (ow[u][hr] + ccw * (warp + d * W))));
    cu_pdl_wait(); /* the images are the kernel before's output */
    cu_pdl_launch_dependents();
#pragma unroll
    for (int d = 0; d < D; d++) {
        if (warp + d * W < nch) load(d, warp + d * W);
        asm volatile("cp.async.commit_group;" ::);
    }
    /* the scale of group e from a raw word */
    auto scale = [&](uint32_t raw, int e) { return qm_scale(raw, qm_scale_sel<SDT>(e), SDT); };
    /* per tile: (row g, x 2t), (row g, x 2t + 1), (row g + 8, x 2t), (row g + 8, x 2t + 1) */
    float out[T][4];
#pragma unroll
    for (int u = 0; u < T; u++) out[u][0] = out[u][1] = out[u][2] = out[u][3] = 0.0f;
    for (int c0 = warp; c0 < nch; c0 += D * W) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int c = c0 + d * W;
            if (c >= nch) break;
            asm volatile("cp.async.wait_group %0;" ::"n"(D - 1)); /* this slot's image (the oldest group) is here */
            __syncwarp();
            const uint4 *bimg = (const uint4 *)(wb + d * SLOT) + lane;
            /* [tile][chain][part]: chain = group (G = 2) or k-step parity (G = 1); each part its own
             * accumulator, added in f32 after (one accumulator for all three parts lost precision: NMSE
             * 1-2e-10 against the CPU, where the one-row layout stays under 1e-10) */
            float acc[T][2][QM_PARTS][4] = {};
#pragma unroll
            for (int i = 0; i < 4; i++) { /* k-steps 2i, 2i + 1: word i */
                const int ch = G == 2 ? (i >> 1) : 0;
                uint32_t A[T][2][4];
#pragma unroll
                for (int u = 0; u < T; u++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        A[u][h][0] = qm_pair(cw[d][u][i], 2 * h), A[u][h][1] = qm_pair(cw[d][u][4 + i], 2 * h);
                        A[u][h][2] = qm_pair(cw[d][u][i], 2 * h + 1), A[u][h][3] = qm_pair(cw[d][u][4 + i], 2 * h + 1);
                    }
#pragma unroll
                for (int p = 0; p < QM_PARTS; p++) {
                    const uint4 b = bimg[(i * QM_PARTS + p) * 32];
#pragma unroll
                    for (int u = 0; u < T; u++) {
                        qm_mma(acc[u][G == 2 ? ch : 0][p], A[u][0][0], A[u][0][1], A[u][0][2], A[u][0][3], b.x, b.y);
                        qm_mma(acc[u][G == 2 ? ch : 1][p], A[u][1][0], A[u][1][1], A[u][1][2], A[u][1][3], b.z, b.w);
                    }
                }
            }
            const float *sums = (const float *)(wb + d * SLOT + SUMS); /* [8 x rows][G] */
#pragma unroll
            for (int e = 0; e < G; e++) {
                const float x0 = sums[(2 * t) * G + e], x1 = sums[(2 * t + 1) * G + e];
#pragma unroll
                for (int u = 0; u < T; u++) {
                    const float s0 = scale(sw[d][u][0], e), s1 = scale(sw[d][u][1], e);
                    const float b0 = scale(sw[d][u][2], e), b1 = scale(sw[d][u][3], e);
                    float cv[4];
#pragma unroll
                    for (int r = 0; r < 4; r++) {
                        const int cc = G == 2 ? e : 0;
                        cv[r] = (acc[u][cc][2][r] + acc[u][cc][1][r]) + acc[u][cc][0][r];
                        if (G == 1) cv[r] += (acc[u][1][2][r] + acc[u][1][1][r]) + acc[u][1][0][r];
                    }
                    out[u][0] = fmaf(s0, fmaf(-128.0f, x0, cv[0]), fmaf(b0, x0, out[u][0]));
                    out[u][1] = fmaf(s0, fmaf(-128.0f, x1, cv[1]), fmaf(b0, x1, out[u][1]));
                    out[u][2] = fmaf(s1, fmaf(-128.0f, x0, cv[2]), fmaf(b1, x0, out[u][2]));
                    out[u][3] = fmaf(s1, fmaf(-128.0f, x1, cv[3]), fmaf(b1, x1, out[u][3]));
                }
            }
            __syncwarp(); /* every lane is done with the slot before it is refilled */
            if (c + D * W < nch) load(d, c + D * W);
            asm volatile("cp.async.commit_group;" ::);
        }
    }
    asm volatile("cp.async.wait_all;" ::);
    /* the warps' sums, added in warp order (deterministic) */
#pragma unroll
    for (int u = 0; u < T; u++)
#pragma unroll
        for (int v = 0; v < 4; v++) red[warp][u][v][lane] = out[u][v];
    __syncthreads();
    for (int i = threadIdx.x; i < T * 4 * 32; i += W * 32) {
        const int u = i >> 7, v = (i >> 5) & 3, ln = i & 31, gg = ln >> 2, tt = ln & 3;
        const int m = 2 * tt + (v & 1);
        const int64_t r = r0 + 16 * u + gg + 8 * (v >> 1);
        if (m < a.M && r < a.N) {
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < W; w++) sum += red[w][u][v][ln];
            a.out[m * a.ldo + r] = sum;
        }
    }
}

/* The several-row launches: the x image of every chunk (img_bytes each)
 * into stream scratch by `prep`, then `k` over row tiles of `rows` rows
 * with `smem` bytes of dynamic shared memory. false when that does not fit
 * (the caller then runs the f32 kernels); *st says whether the launches
 * went. */
template <class Prep, class Main>
static bool qm_launch_imaged(const qmv_args &a, mlxn_stream *s, mlxn_status *st, Prep prep, Main k, size_t img_bytes,
                             int rows, int threads, size_t smem) {
    const char *op = "quantized_matmul";
    const int nch = a.K / QM_CHUNK;
    if (!cu_smem_fits(s, k, smem)) return false; /* e.g. 5..8 x rows on a 99 KB card (sm_86 / sm_89) */
    if (smem > 48 * 1024) {
        *st = cu_smem_allow(s, op, k, smem);
        if (*st != MLXN_OK) return true;
    }
    unsigned char *img = NULL;
    *st = cu_scratch(s, op, (size_t)nch * img_bytes, (void **)&img);
    if (*st != MLXN_OK) return true;
    cu_launch(s, prep, dim3((unsigned)nch), dim3(QM_CHUNK), 0, a.x, a.ldx, a.M, img);
    cu_launch(s, k, dim3((unsigned)((a.N + rows - 1) / rows)), dim3(threads), smem, a, (const unsigned char *)img);
    cu_scratch_free(s, img); /* stream-ordered: freed after the kernel */
    return true;
}

template <int G, int SDT>
static bool qm8_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    constexpr int W = 8, D = 2, T = 2;
    return qm_launch_imaged(a, s, st, qm8_xprep_kernel<G>, qmv_mma8_kernel<G, SDT, W, D, T>, qm8_img_bytes(), QM_ROWS * T,
                            W * 32, (size_t)W * D * qm8_img_bytes());
}

template <int G, int SDT, int NX, int W>
static bool qmx_launch1(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    constexpr int D = 2;
    return qm_launch_imaged(a, s, st, qm_xprep_kernel<G, NX>, qmv_mma_nx_kernel<G, SDT, NX, W, D>, qm_img_bytes(NX),
                            QM_ROWS, W * 32, (size_t)W * (D * (NX * QM_PARTS * QM_PART_BYTES + 64) + 64));
}

/* 8 warps per block where K is long or the row tiles do not fill the SMs (as for one row), else 4; 4
 * also where 8 do not fit the card's shared memory (8 x rows on 99 KB: sm_86 / sm_89) */
template <int G, int SDT, int NX>
static bool qmx_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int v = cu_ctx(s)->knobs.qmv_mma;
    if (v == 2 || (v != 3 && (a.K / QM_CHUNK >= 64 || (a.N + QM_ROWS - 1) / QM_ROWS <= cu_ctx(s)->sms)))
        if (qmx_launch1<G, SDT, NX, 8>(a, s, st)) return true;
    return qmx_launch1<G, SDT, NX, 4>(a, s, st);
}

bool cu_qmv_mma_takes(const cu_qmat &w, int64_t N, int64_t K, mlxn_stream *s) {
    if (cu_ctx(s)->knobs.qmv_mma == 0 || w.mode != MLXN_QUANT_AFFINE || w.bits != 4 || !w.bi ||
        (w.group != 64 && w.group != 128) || (w.sdt != MLXN_DTYPE_BF16 && w.sdt != MLXN_DTYPE_F16) || K % QM_CHUNK ||
        K > INT32_MAX / 2 || ((uintptr_t)w.wq & 15) || (w.wq_st * 4) % 16)
        return false;
    /* the G = 2 path reads a group pair as one 32-bit word */
    if (w.group == 64 && (((uintptr_t)w.sc | (uintptr_t)w.bi) & 3 || (w.sc_st | w.bi_st) & 1)) return false;
    /* one offset per row serves scales and biases; element offsets are 32-bit */
    return w.sc_st == w.bi_st && N * w.wq_st < ((int64_t)1 << 31) && N * w.sc_st < ((int64_t)1 << 31);
}

/* The one-row launch: 8 warps with 3 chunks in flight each when K has 64
 * chunks or more, or when there are no more row tiles than SMs (more warps
 * per block are then the only way to more loads in flight); 6 warps with 2
 * where 3 blocks per SM take every tile in one wave; else 4 warps with 2 (a
 * block's warps split K, and fewer warps keep each one's run of chunks
 * long enough to fill its ring). MLXN_CUDA_QMV_MMA = 2 / 3 / 7 force one
 * shape (timing runs compare them, tests cover them). Measured on an H100:
 * docs/perf.md, v8 and later sections. */
static bool qm_launch_one(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int variant = cu_ctx(s)->knobs.qmv_mma;
#define QM_PICK(W, D)                                                                                    \
    if (a.w.group == 64)                                                                                 \
        return a.w.sdt == MLXN_DTYPE_BF16 ? qm_launch<2, MLXN_DTYPE_BF16, W, D>(a, s, st)                \
                                          : qm_launch<2, MLXN_DTYPE_F16, W, D>(a, s, st);                \
    return a.w.sdt == MLXN_DTYPE_BF16 ? qm_launch<1, MLXN_DTYPE_BF16, W, D>(a, s, st)                    \
                                      : qm_launch<1, MLXN_DTYPE_F16, W, D>(a, s, st);
    const int64_t tiles = (a.N + QM_ROWS - 1) / QM_ROWS;
    /* 16 warps where K is long and the row tiles are at most one per SM (Llama-3.2-1B's down projection,
     * 2048 x 8192: 128 tiles): each SM then has one block, and 16 warps keep twice the chunks in flight.
     * MLXN_CUDA_QMV_MMA = 6 leaves this shape out (comparisons) */
    if ((variant == 1 || variant == 8) && a.K / QM_CHUNK >= 64 && tiles <= cu_ctx(s)->sms) { QM_PICK(16, 3) }
    if (variant == 7) { QM_PICK(6, 2) } /* every shape on the 6-warp launch (tests) */
    /* 8 warps x 3 chunks in flight where K is long, or where the row tiles need at most two 8-warp blocks
     * per SM (one wave): a warp then owns few enough chunks for one or two round trips. Up to 2 tiles per
     * SM (not 1) measured on an H100: Llama-3.2-1B's q/k/v (192 tiles at K = 2048) joins, tg128 1503-1515
     * -> 1565-1601 tok/s; the 8B's o (256 tiles) joins without moving its tg128; up to 3 per SM (the 8B's
     * 384-tile q/k/v too) cost the 8B 1%. 4 warps x 2 elsewhere (many tiles: more blocks per SM) */
    const bool wide = variant == 2 || (variant != 3 && (a.K / QM_CHUNK >= 64 || tiles <= 2 * cu_ctx(s)->sms));
    if (wide) { QM_PICK(8, 3) }
    /* 6 warps x 2 where the row tiles need more than 2 and at most 3 blocks per SM (Llama-3-8B's q/k/v,
     * 6144 x 4096: 384 tiles): 3 blocks of 6 warps fit a SM at 96 registers, so the grid is one wave of
     * ~18 warps per SM where 4-warp blocks left ~12 (2.9 blocks per SM of the 5 that fit) and 8-warp
     * ones needed 1.5 waves. Measured on an H100: 6144 x 4096 10.7 -> 8.6 us back to back, 8B tg128
     * 421.5 -> 437.0 tok/s; on shapes with fewer tiles it gained nothing (4096 x 4096 6.37 / 6.35 us)
     * or lost (2048 x 8192 7.1 -> 7.5). MLXN_CUDA_QMV_MMA = 8 leaves this shape out (comparisons) */
    if (variant != 3 && variant != 8 && tiles <= 3 * cu_ctx(s)->sms) { QM_PICK(6, 2) }
    QM_PICK(4, 2)
#undef QM_PICK
}

bool cu_qmv_mma_fused(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    if (a.M != 1 || ((uintptr_t)a.x & 15) || !cu_qmv_mma_takes(a.w, a.N, a.K, s)) return false;
    if (a.glu && (a.res || a.N % 2)) return false;
    /* rope_kv: whole tiles of a head (qm_tile), no other epilogue */
    if (a.rk && (a.glu || a.res || a.rk_d % QM_ROWS || a.rk_qk % QM_ROWS || a.N % QM_ROWS)) return false;
    /* the norm weight: 16-bit (read as pairs: 4-byte aligned) */
    if (a.nw && ((a.nw_dt != MLXN_DTYPE_BF16 && a.nw_dt != MLXN_DTYPE_F16) || ((uintptr_t)a.nw & 3))) return false;
    return qm_launch_one(a, s, st);
}

bool cu_qmv_mma(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int variant = cu_ctx(s)->knobs.qmv_mma;
    if (a.M < 1 || a.M > 8 || (a.M == 1 && ((uintptr_t)a.x & 15)) || !cu_qmv_mma_takes(a.w, a.N, a.K, s))
        return false;
    /* 3..8 rows: x rows as B columns (qmv_mma8_kernel; 4096 x 14336 at 8 rows 58 -> 32 us on an H100). 2 rows
     * stay on the one-row layout's kernel (24 against 30 us there), as do 3..8 rows with MLXN_CUDA_QMV_MMA = 4
     * (comparisons) */
    if (a.M > 2 && variant != 4) {
        const bool bf = a.w.sdt == MLXN_DTYPE_BF16;
        const bool went = a.w.group == 64 ? (bf ? qm8_launch<2, MLXN_DTYPE_BF16>(a, s, st) : qm8_launch<2, MLXN_DTYPE_F16>(a, s, st))
                                          : (bf ? qm8_launch<1, MLXN_DTYPE_BF16>(a, s, st) : qm8_launch<1, MLXN_DTYPE_F16>(a, s, st));
        /* its blocks (97 KB of images, 8 KB of sums) do not fit a 99 KB card (sm_86 / sm_89): the one-row
         * layout's kernel below */
        if (went) return true;
    }
    if (a.M > 1) {
        /* 5..8 rows over a short K: the f32 kernel (cu_qmv_fast.cu) measured faster (62 against 68-72 us at
         * 14336 x 4096, n = 8); the mma kernel wins from K = 8192 (58 against 74 us at 4096 x 14336) */
        if (a.M > 4 && a.K / QM_CHUNK < 64 && !a.w.tiled) return false; /* (a tiled matrix has no f32 kernel) */
#define QMX_PICK(NX)                                                                                     \
    if (a.w.group == 64)                                                                                 \
        return a.w.sdt == MLXN_DTYPE_BF16 ? qmx_launch<2, MLXN_DTYPE_BF16, NX>(a, s, st)                 \
                                          : qmx_launch<2, MLXN_DTYPE_F16, NX>(a, s, st);                 \
    return a.w.sdt == MLXN_DTYPE_BF16 ? qmx_launch<1, MLXN_DTYPE_BF16, NX>(a, s, st)                     \
                                      : qmx_launch<1, MLXN_DTYPE_F16, NX>(a, s, st);
        if (a.M == 2) { QMX_PICK(2) }
        if (a.M <= 4) { QMX_PICK(4) }
        QMX_PICK(8)
#undef QMX_PICK
    }
    return qm_launch_one(a, s, st);
}
