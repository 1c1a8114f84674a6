/* AVX-512 decoding of TurboQuant code rows (filled in by the fast path). */
#include "backend/cpu/tq_kernels.h"

tq_decode_fn tq_decode_avx512(void) { return 0; }
tq_decode_fn tq_decode_avx2(void) { return 0; }
