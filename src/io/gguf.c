/* GGUF parsing and validation (the format is described in mlxn/gguf.h).
 *
 * The parser works on a memory block (mlxn_gguf_open_memory), which both
 * mlxn_gguf_open (on an mmap of the file) and the fuzzer use. It trusts
 * nothing: every read is bounds-checked, and every count read from the
 * file is checked against the bytes left before anything is allocated
 * from it (an array of n strings needs at least 8n more bytes, so a
 * count of 2^60 fails at once instead of asking malloc for exabytes).
 * Nested arrays are limited in depth so recursion cannot overflow the
 * stack. All allocations come from one bump arena owned by the handle,
 * so every error path frees everything with mlxn_gguf_free. Messages
 * read "<file>: <where>: <what>", e.g.
 * "m.gguf: tensor 'blk.0.attn_q.weight': offset 100 is not a multiple of
 * the alignment 32". */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "io/gguf_internal.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_ARRAY_DEPTH 8
/* Fewest bytes an entry can occupy: a key/value pair is an 8-byte key
 * length + 4-byte type + at least a 1-byte value; a tensor info an 8-byte
 * name length + n_dims + type + offset; an array element that is a string
 * its 8-byte length, one that is an array its type and count. */
#define GGUF_MIN_KV_BYTES 13u
#define GGUF_MIN_TENSOR_BYTES 24u
#define GGUF_MIN_STRING_BYTES 8u
#define GGUF_MIN_ARRAY_BYTES 12u

/* ---- arena ---- */

struct gguf_chunk {
    gguf_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define GGUF_CHUNK_BYTES ((size_t)64 << 10)

static void *arena_alloc(mlxn_gguf *g, size_t n) {
    if (n > SIZE_MAX - 64) return NULL;
    n = (n + 15) & ~(size_t)15;
    gguf_chunk *c = g->chunks;
    if (c && c->cap - c->used >= n) {
        void *p = c->data + c->used;
        c->used += n;
        return p;
    }
    /* A large request gets a chunk of its own, linked behind the current
     * one so the current chunk's free space stays in use. */
    size_t cap = n > GGUF_CHUNK_BYTES / 4 ? n : GGUF_CHUNK_BYTES;
    gguf_chunk *nc = malloc(sizeof *nc + cap);
    if (!nc) return NULL;
    nc->cap = cap;
    nc->used = n;
    if (c && cap == n) {
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        g->chunks = nc;
    }
    return nc->data;
}

static mlxn_status oom(size_t n, const char *what) {
    return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "out of memory allocating %zu bytes for %s", n, what);
}

/* ---- bounds-checked reads ---- */

typedef struct cursor {
    const uint8_t *p;  /* [size] */
    size_t size;
    size_t pos;
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

static mlxn_status need(const cursor *c, uint64_t n, const char *what) {
    if (n > left(c))
        return mlxn_fail(MLXN_ERR_FORMAT, "truncated: %s needs %llu bytes at offset %zu but only %zu remain",
                         what, (unsigned long long)n, c->pos, left(c));
    return MLXN_OK;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static mlxn_status rd_u32(cursor *c, uint32_t *out, const char *what) {
    MLXN_TRY(need(c, 4, what));
    *out = (uint32_t)le(c->p + c->pos, 4);
    c->pos += 4;
    return MLXN_OK;
}

static mlxn_status rd_u64(cursor *c, uint64_t *out, const char *what) {
    MLXN_TRY(need(c, 8, what));
    *out = le(c->p + c->pos, 8);
    c->pos += 8;
    return MLXN_OK;
}

/* A length-prefixed string, copied into the arena with a NUL after it. */
static mlxn_status rd_string(mlxn_gguf *g, cursor *c, const char **out, uint64_t *len_out, const char *what) {
    uint64_t len = 0;
    MLXN_TRY(rd_u64(c, &len, what));
    if (len > left(c))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: length %llu at offset %zu runs past the end (%zu bytes remain)", what,
                         (unsigned long long)len, c->pos - 8, left(c));
    char *s = arena_alloc(g, (size_t)len + 1);
    if (!s) return oom((size_t)len + 1, what);
    memcpy(s, c->p + c->pos, (size_t)len);
    s[len] = '\0';
    c->pos += (size_t)len;
    *out = s;
    if (len_out) *len_out = len;
    return MLXN_OK;
}

/* A name used for lookups (key or tensor name): non-empty, no NUL byte. */
static mlxn_status rd_name(mlxn_gguf *g, cursor *c, const char **out, const char *what) {
    uint64_t len = 0;
    MLXN_TRY(rd_string(g, c, out, &len, what));
    if (len == 0) return mlxn_fail(MLXN_ERR_FORMAT, "%s is empty", what);
    if (strlen(*out) != len) return mlxn_fail(MLXN_ERR_FORMAT, "%s contains a NUL byte", what);
    return MLXN_OK;
}

/* ---- metadata values ---- */

size_t mlxn_gguf_scalar_size(uint32_t type) {
    switch (type) {
    case MLXN_GGUF_U8: case MLXN_GGUF_I8: case MLXN_GGUF_BOOL: return 1;
    case MLXN_GGUF_U16: case MLXN_GGUF_I16: return 2;
    case MLXN_GGUF_U32: case MLXN_GGUF_I32: case MLXN_GGUF_F32: return 4;
    case MLXN_GGUF_U64: case MLXN_GGUF_I64: case MLXN_GGUF_F64: return 8;
    default: return 0;
    }
}

static int valid_type(uint32_t t) { return t <= MLXN_GGUF_F64; }

/* Decode a fixed-size scalar of `type` at p into v. */
static mlxn_status decode_scalar(uint32_t type, const uint8_t *p, struct mlxn_gguf_value *v) {
    uint64_t bits = le(p, (int)mlxn_gguf_scalar_size(type));
    switch (type) {
    case MLXN_GGUF_U8: case MLXN_GGUF_U16: case MLXN_GGUF_U32: case MLXN_GGUF_U64:
        v->num.u = bits;
        break;
    case MLXN_GGUF_I8: v->num.i = (int8_t)bits; break;
    case MLXN_GGUF_I16: v->num.i = (int16_t)bits; break;
    case MLXN_GGUF_I32: v->num.i = (int32_t)bits; break;
    case MLXN_GGUF_I64: v->num.i = (int64_t)bits; break;
    case MLXN_GGUF_F32: {
        uint32_t b = (uint32_t)bits;
        float f;
        memcpy(&f, &b, 4);
        v->num.f = f;
        break;
    }
    case MLXN_GGUF_F64: memcpy(&v->num.f, &bits, 8); break;
    case MLXN_GGUF_BOOL:
        if (bits > 1) return mlxn_fail(MLXN_ERR_FORMAT, "bool value is %llu (not 0 or 1)", (unsigned long long)bits);
        v->num.u = bits;
        break;
    }
    return MLXN_OK;
}

static mlxn_status parse_value(mlxn_gguf *g, cursor *c, uint32_t type, struct mlxn_gguf_value *v, int depth);

static mlxn_status parse_array(mlxn_gguf *g, cursor *c, struct mlxn_gguf_value *v, int depth) {
    uint32_t et;
    uint64_t n;
    MLXN_TRY(rd_u32(c, &et, "array element type"));
    if (!valid_type(et)) return mlxn_fail(MLXN_ERR_FORMAT, "array element type id %u is not a GGUF value type", et);
    MLXN_TRY(rd_u64(c, &n, "array length"));
    v->elem_type = et;
    v->n = n;
    size_t es = mlxn_gguf_scalar_size(et);
    if (es) { /* fixed-size elements stay in the mapping */
        if (n > left(c) / es)
            return mlxn_fail(MLXN_ERR_FORMAT, "array of %llu %s values needs more bytes than the %zu that remain",
                             (unsigned long long)n, mlxn_gguf_type_name(et), left(c));
        v->raw = c->p + c->pos;
        if (et == MLXN_GGUF_BOOL) {
            for (uint64_t i = 0; i < n; i++)
                if (v->raw[i] > 1)
                    return mlxn_fail(MLXN_ERR_FORMAT, "bool array element %llu is %u (not 0 or 1)",
                                     (unsigned long long)i, v->raw[i]);
        }
        c->pos += (size_t)(n * es);
        return MLXN_OK;
    }
    if (et == MLXN_GGUF_ARRAY && depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
        return mlxn_fail(MLXN_ERR_FORMAT, "arrays nested more than %d deep", GGUF_MAX_ARRAY_DEPTH);
    size_t min = et == MLXN_GGUF_STRING ? GGUF_MIN_STRING_BYTES : GGUF_MIN_ARRAY_BYTES;
    if (n > left(c) / min)
        return mlxn_fail(MLXN_ERR_FORMAT, "array of %llu %ss needs more bytes than the %zu that remain",
                         (unsigned long long)n, mlxn_gguf_type_name(et), left(c));
    struct mlxn_gguf_value *el = NULL;
    if (n) {
        el = arena_alloc(g, (size_t)n * sizeof *el);
        if (!el) return oom((size_t)n * sizeof *el, "array elements");
        memset(el, 0, (size_t)n * sizeof *el);
    }
    v->elems = el;
    for (uint64_t i = 0; i < n; i++) {
        mlxn_status st = parse_value(g, c, et, &el[i], depth + 1);
        if (st != MLXN_OK) return mlxn_fail_context(st, "element %llu: ", (unsigned long long)i);
    }
    return MLXN_OK;
}

static mlxn_status parse_value(mlxn_gguf *g, cursor *c, uint32_t type, struct mlxn_gguf_value *v, int depth) {
    v->type = type;
    size_t sz = mlxn_gguf_scalar_size(type);
    if (sz) {
        MLXN_TRY(need(c, sz, mlxn_gguf_type_name(type)));
        MLXN_TRY(decode_scalar(type, c->p + c->pos, v));
        c->pos += sz;
        return MLXN_OK;
    }
    if (type == MLXN_GGUF_STRING) return rd_string(g, c, &v->str, &v->n, "string");
    if (type == MLXN_GGUF_ARRAY) return parse_array(g, c, v, depth);
    return mlxn_fail(MLXN_ERR_FORMAT, "value type id %u is not a GGUF value type", type);
}

static int cmp_kv(const void *a, const void *b) {
    return strcmp((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}

static mlxn_status parse_kvs(mlxn_gguf *g, cursor *c) {
    for (size_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        mlxn_status st = rd_name(g, c, &kv->key, "key");
        if (st != MLXN_OK) return mlxn_fail_context(st, "metadata entry #%zu: ", i);
        uint32_t type;
        st = rd_u32(c, &type, "value type");
        if (st == MLXN_OK && !valid_type(type))
            st = mlxn_fail(MLXN_ERR_FORMAT, "value type id %u is not a GGUF value type", type);
        if (st == MLXN_OK) st = parse_value(g, c, type, &kv->val, 0);
        if (st != MLXN_OK) return mlxn_fail_context(st, "metadata key '%s': ", kv->key);
    }
    if (g->n_kv) {
        g->kv_sorted = arena_alloc(g, g->n_kv * sizeof *g->kv_sorted);
        if (!g->kv_sorted) return oom(g->n_kv * sizeof *g->kv_sorted, "the key index");
        for (size_t i = 0; i < g->n_kv; i++) g->kv_sorted[i] = &g->kv[i];
        qsort(g->kv_sorted, g->n_kv, sizeof *g->kv_sorted, cmp_kv);
        for (size_t i = 1; i < g->n_kv; i++)
            if (strcmp(g->kv_sorted[i - 1]->key, g->kv_sorted[i]->key) == 0)
                return mlxn_fail(MLXN_ERR_FORMAT, "metadata key '%s' appears twice", g->kv_sorted[i]->key);
    }
    return MLXN_OK;
}

/* general.alignment: a u32 power of two when present, else 32. */
static mlxn_status read_alignment(mlxn_gguf *g) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const mlxn_gguf_value *v = mlxn_gguf_find(g, "general.alignment");
    if (!v) return MLXN_OK;
    if (v->type != MLXN_GGUF_U32)
        return mlxn_fail(MLXN_ERR_FORMAT, "metadata key 'general.alignment' is %s, expected u32",
                         mlxn_gguf_type_name(v->type));
    uint64_t a = v->num.u;
    if (a == 0 || (a & (a - 1)) != 0)
        return mlxn_fail(MLXN_ERR_FORMAT, "metadata key 'general.alignment' is %llu, not a power of two",
                         (unsigned long long)a);
    g->alignment = (uint32_t)a;
    return MLXN_OK;
}

/* ---- tensor infos ---- */

static mlxn_status parse_tensor(cursor *c, mlxn_gguf_tensor_info *t) {
    uint32_t nd, type;
    MLXN_TRY(rd_u32(c, &nd, "n_dims"));
    if (nd > MLXN_GGUF_MAX_DIMS)
        return mlxn_fail(MLXN_ERR_FORMAT, "n_dims is %u (at most %d)", nd, MLXN_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    int64_t numel = 1;
    int has_zero = 0;
    for (int i = 0; i < MLXN_GGUF_MAX_DIMS; i++) {
        t->ne[i] = 1;
        t->shape[i] = 0;
    }
    for (int i = 0; i < (int)nd; i++) {
        uint64_t d;
        MLXN_TRY(rd_u64(c, &d, "a dim"));
        if (d > (uint64_t)INT64_MAX)
            return mlxn_fail(MLXN_ERR_FORMAT, "dim %d is %llu (too large)", i, (unsigned long long)d);
        t->ne[i] = (int64_t)d;
        t->shape[nd - 1 - (uint32_t)i] = (int64_t)d;
        if (d == 0) has_zero = 1;
        else if (!has_zero && numel > INT64_MAX / (int64_t)d)
            return mlxn_fail(MLXN_ERR_FORMAT, "dims overflow: the element count does not fit in 64 bits");
        else if (!has_zero) numel *= (int64_t)d;
    }
    if (has_zero) numel = 0;
    MLXN_TRY(rd_u32(c, &type, "ggml type"));
    size_t bb = mlxn_ggml_type_block_bytes((mlxn_ggml_type)type);
    if (!bb) return mlxn_fail(MLXN_ERR_FORMAT, "ggml type id %u is not a known type", type);
    t->type = (mlxn_ggml_type)type;
    int64_t be = mlxn_ggml_type_block_elems(t->type);
    if (t->ne[0] % be != 0)
        return mlxn_fail(MLXN_ERR_FORMAT, "row length ne[0] = %lld is not a multiple of the %s block size %lld",
                         (long long)t->ne[0], mlxn_ggml_type_name(t->type), (long long)be);
    uint64_t blocks = (uint64_t)numel / (uint64_t)be;
    uint64_t row_blocks = (uint64_t)t->ne[0] / (uint64_t)be; /* > blocks only when another dim is 0 */
    if (row_blocks > blocks) blocks = row_blocks;
    if (blocks > (uint64_t)INT64_MAX / bb || blocks > (uint64_t)(SIZE_MAX / bb))
        return mlxn_fail(MLXN_ERR_FORMAT, "byte size of %llu %s blocks overflows", (unsigned long long)blocks,
                         mlxn_ggml_type_name(t->type));
    t->numel = numel;
    t->nbytes = (size_t)((uint64_t)numel / (uint64_t)be * bb);
    t->row_bytes = (size_t)(row_blocks * bb);
    t->n_rows = t->ne[0] > 0 ? numel / t->ne[0] : 0;
    MLXN_TRY(rd_u64(c, &t->offset, "offset"));
    return MLXN_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const mlxn_gguf_tensor_info *const *)a)->name,
                  (*(const mlxn_gguf_tensor_info *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    uint64_t x = (*(const mlxn_gguf_tensor_info *const *)a)->offset;
    uint64_t y = (*(const mlxn_gguf_tensor_info *const *)b)->offset;
    return x < y ? -1 : x > y;
}

/* Alignment, bounds, overlaps and duplicate names; called once the data
 * section's start is known. */
static mlxn_status check_tensors(mlxn_gguf *g) {
    size_t n = g->n_tensors;
    if (n == 0) return MLXN_OK;
    if (g->data_offset > g->size)
        return mlxn_fail(MLXN_ERR_FORMAT, "the data section would start at byte %zu, past the end of the file (%zu bytes)",
                         g->data_offset, g->size);
    uint64_t data_size = g->size - g->data_offset;
    for (size_t i = 0; i < n; i++) {
        const mlxn_gguf_tensor_info *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return mlxn_fail(MLXN_ERR_FORMAT, "tensor '%s': offset %llu is not a multiple of the alignment %u", t->name,
                             (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return mlxn_fail(MLXN_ERR_FORMAT,
                             "tensor '%s': bytes [%llu, %llu + %zu) of the data section run past its end (%llu bytes)",
                             t->name, (unsigned long long)t->offset, (unsigned long long)t->offset, t->nbytes,
                             (unsigned long long)data_size);
    }
    const mlxn_gguf_tensor_info **idx = arena_alloc(g, n * sizeof *idx);
    if (!idx) return oom(n * sizeof *idx, "the tensor index");
    for (size_t i = 0; i < n; i++) idx[i] = &g->tensors[i];
    qsort(idx, n, sizeof *idx, cmp_tensor_offset);
    /* In offset order, each non-empty tensor must start at or after the
     * furthest end seen so far (empty tensors occupy nothing). */
    const mlxn_gguf_tensor_info *far = NULL;
    for (size_t i = 0; i < n; i++) {
        const mlxn_gguf_tensor_info *b = idx[i];
        if (!b->nbytes) continue;
        if (far && far->offset + far->nbytes > b->offset)
            return mlxn_fail(MLXN_ERR_FORMAT, "tensors '%s' (bytes %llu..%llu) and '%s' (from byte %llu) overlap",
                             far->name, (unsigned long long)far->offset,
                             (unsigned long long)(far->offset + far->nbytes), b->name, (unsigned long long)b->offset);
        if (!far || b->offset + b->nbytes > far->offset + far->nbytes) far = b;
    }
    /* Reuse the index, now sorted by name, for duplicates and lookups. */
    qsort(idx, n, sizeof *idx, cmp_tensor_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(idx[i - 1]->name, idx[i]->name) == 0)
            return mlxn_fail(MLXN_ERR_FORMAT, "tensor name '%s' appears twice", idx[i]->name);
    g->t_sorted = idx;
    return MLXN_OK;
}

/* ---- header ---- */

static mlxn_status parse(mlxn_gguf *g) {
    cursor c = {g->base, g->size, 0};
    MLXN_TRY(need(&c, 4, "the magic"));
    if (memcmp(c.p, "GGUF", 4) != 0)
        return mlxn_fail(MLXN_ERR_FORMAT, "not a GGUF file (the first bytes are not \"GGUF\")");
    c.pos = 4;
    MLXN_TRY(rd_u32(&c, &g->version, "the version"));
    if (g->version == 1)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "GGUF version 1 (32-bit counts) is not supported; convert to version 3");
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "big-endian GGUF is not supported");
    if (g->version != 2 && g->version != 3)
        return mlxn_fail(MLXN_ERR_FORMAT, "unknown GGUF version %u (expected 3)", g->version);
    uint64_t nt, nkv;
    MLXN_TRY(rd_u64(&c, &nt, "the tensor count"));
    MLXN_TRY(rd_u64(&c, &nkv, "the metadata count"));
    /* Bound the counts by the bytes left before allocating anything. */
    if (nkv > left(&c) / GGUF_MIN_KV_BYTES)
        return mlxn_fail(MLXN_ERR_FORMAT, "metadata count %llu is more than the remaining %zu bytes can hold",
                         (unsigned long long)nkv, left(&c));
    if (nt > (left(&c) - nkv * GGUF_MIN_KV_BYTES) / GGUF_MIN_TENSOR_BYTES)
        return mlxn_fail(MLXN_ERR_FORMAT, "tensor count %llu is more than the remaining %zu bytes can hold",
                         (unsigned long long)nt, left(&c));
    g->n_kv = (size_t)nkv;
    g->n_tensors = (size_t)nt;
    if (nkv) {
        g->kv = arena_alloc(g, g->n_kv * sizeof *g->kv);
        if (!g->kv) return oom(g->n_kv * sizeof *g->kv, "metadata");
        memset(g->kv, 0, g->n_kv * sizeof *g->kv);
    }
    if (nt) {
        g->tensors = arena_alloc(g, g->n_tensors * sizeof *g->tensors);
        if (!g->tensors) return oom(g->n_tensors * sizeof *g->tensors, "tensor infos");
        memset(g->tensors, 0, g->n_tensors * sizeof *g->tensors);
    }
    MLXN_TRY(parse_kvs(g, &c));
    MLXN_TRY(read_alignment(g));
    for (size_t i = 0; i < g->n_tensors; i++) {
        mlxn_gguf_tensor_info *t = &g->tensors[i];
        mlxn_status st = rd_name(g, &c, &t->name, "name");
        if (st != MLXN_OK) return mlxn_fail_context(st, "tensor info #%zu: ", i);
        st = parse_tensor(&c, t);
        if (st != MLXN_OK) return mlxn_fail_context(st, "tensor '%s': ", t->name);
    }
    /* c.pos <= size and alignment <= 2^31, so this cannot wrap */
    g->data_offset = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    return check_tensors(g);
}

mlxn_status mlxn_gguf_open_memory(const char *name, const void *data, size_t size, mlxn_gguf **out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_gguf_open: out is NULL");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: data is NULL", name);
    mlxn_gguf *g = calloc(1, sizeof *g);
    size_t nl = strlen(name);
    if (g) g->name = malloc(nl + 1);
    if (!g || !g->name) {
        free(g);
        return oom(sizeof *g + nl + 1, name);
    }
    memcpy(g->name, name, nl + 1);
    g->base = data;
    g->size = size;
    mlxn_status st = parse(g);
    if (st != MLXN_OK) {
        mlxn_fail_context(st, "%s: ", name);
        mlxn_gguf_free(g);
        return st;
    }
    *out = g;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_open(const char *path, mlxn_gguf **out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_gguf_open: out is NULL");
    *out = NULL;
    if (!path) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_gguf_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mlxn_fail(MLXN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return mlxn_fail(MLXN_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            mlxn_status st = mlxn_fail(MLXN_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, size, strerror(errno));
            close(fd);
            return st;
        }
    }
    close(fd);
    static const uint8_t empty[1];
    mlxn_status st = mlxn_gguf_open_memory(path, map ? map : empty, size, out);
    if (st != MLXN_OK) {
        if (map) munmap(map, size);
        return st;
    }
    (*out)->map = map;
    (*out)->map_size = size;
    return MLXN_OK;
}

void mlxn_gguf_free(mlxn_gguf *g) {
    if (!g) return;
    gguf_chunk *c = g->chunks;
    while (c) {
        gguf_chunk *next = c->next;
        free(c);
        c = next;
    }
    if (g->map) munmap(g->map, g->map_size);
    free(g->name);
    free(g);
}

uint32_t mlxn_gguf_version(const mlxn_gguf *g) { return g ? g->version : 0; }
uint32_t mlxn_gguf_alignment(const mlxn_gguf *g) { return g ? g->alignment : 0; }
size_t mlxn_gguf_data_offset(const mlxn_gguf *g) { return g ? g->data_offset : 0; }
