/* Status codes and error messages shared by every mlx-native call.
 *
 * Every call that can fail returns an mlxn_status (0 = OK). On failure the
 * human-readable reason is kept per thread and read with mlxn_last_error();
 * it names the file, tensor, op or argument at fault. The library never
 * calls exit() or abort() on bad input. */
#ifndef MLXN_STATUS_H
#define MLXN_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mlxn_status {
    MLXN_OK = 0,
    MLXN_ERR_INVALID_ARGUMENT, /* a NULL handle, a bad flag, an out-of-range value */
    MLXN_ERR_SHAPE,            /* shapes do not agree with each other or with the op */
    MLXN_ERR_DTYPE,            /* a dtype the op does not accept */
    MLXN_ERR_OUT_OF_MEMORY,
    MLXN_ERR_IO,               /* open/read/write/mmap failed */
    MLXN_ERR_FORMAT,           /* a file's bytes are malformed (truncated, bad JSON, overlap, ...) */
    MLXN_ERR_UNSUPPORTED,      /* well-formed but not something we handle */
    MLXN_ERR_NOT_IMPLEMENTED,  /* the op exists but this backend lacks it */
    MLXN_ERR_DEVICE,           /* the device failed (driver error, no such device) */
} mlxn_status;

/* Short name of a status ("OK", "shape mismatch", ...). Never NULL. */
const char *mlxn_status_str(mlxn_status st);

/* The message of the most recent failure on the calling thread ("" if none).
 * Valid until the next failing call on this thread. */
const char *mlxn_last_error(void);

/* Forget the calling thread's last message. */
void mlxn_clear_error(void);

#ifdef __cplusplus
}
#endif
#endif
