/* mlx-native: one include for the whole public API. */
#ifndef MLXN_MLXN_H
#define MLXN_MLXN_H

#include "mlxn/status.h"
#include "mlxn/dtype.h"
#include "mlxn/device.h"
#include "mlxn/tensor.h"
#include "mlxn/quant.h"
#include "mlxn/ops.h"
#include "mlxn/turboquant.h"
#include "mlxn/safetensors.h"
#include "mlxn/model.h"
#include "mlxn/gguf.h"
#include "mlxn/convert.h"
#include "mlxn/text.h"

#define MLXN_VERSION_MAJOR 0
#define MLXN_VERSION_MINOR 1
#define MLXN_VERSION_PATCH 0
#define MLXN_VERSION_STRING "0.1.0"

#endif
