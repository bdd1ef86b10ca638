"""Real chat templates of the model families users train with, and transformers' renderings of
them, for tests/tokenizer.rs. The templates come from llama.cpp's collection of the models' own
templates (models/templates/, vendored in the llama-cpp-python 0.3.36 sdist on PyPI, sha256
pinned below). Run with the reference virtualenv:

    target/pyref/bin/python scripts/make_real_template_fixtures.py

Writes tests/fixtures/chat_templates/*.jinja and tests/fixtures/real_template_cases.json.
"""

import hashlib
import io
import json
import os
import tarfile
import urllib.request

from transformers import AutoTokenizer

# The fixed clock (2026-11-29 19:36:05) and its patch of transformers' strftime_now.
from make_template_fixtures import NOW_EPOCH

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT_DIR = os.path.join(FIX, "chat_templates")
SDIST = (
    "https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/"
    "llama_cpp_python-0.3.36.tar.gz"
)
SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
PREFIX = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates/"
TEMPLATES = {
    "qwen2.5-instruct": "Qwen-Qwen2.5-7B-Instruct.jinja",
    "qwen3": "Qwen-Qwen3-0.6B.jinja",
    "llama-3.1": "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "llama-3.2": "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "mistral-nemo": "mistralai-Mistral-Nemo-Instruct-2407.jinja",
    "mistral-small-3.2": "Mistral-Small-3.2-24B-Instruct-2506.jinja",
    "gemma-2": "google-gemma-2-2b-it.jinja",
    "deepseek-r1-distill-qwen": "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    "deepseek-r1-distill-llama": "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
    "smollm3": "HuggingFaceTB-SmolLM3-3B.jinja",
    "phi-3.5": "microsoft-Phi-3.5-mini-instruct.jinja",
}
CONVERSATIONS = {
    "system_user": [
        {"role": "system", "content": "Reply with only the final number."},
        {"role": "user", "content": "What is 2+3?"},
    ],
    "multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Name a prime \\boxed{7}?"},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "The answer is"},
    ],
    "non_ascii": [
        {"role": "user", "content": "Café <b> & 'x' 😀 — 数学 \"q\""},
    ],
}


def fetch_templates():
    with urllib.request.urlopen(SDIST) as r:
        data = r.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"sha256 {digest} != {SHA256}")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name, file in TEMPLATES.items():
            out[name] = tar.extractfile(PREFIX + file).read().decode("utf-8")
    return out


def main():
    tok = AutoTokenizer.from_pretrained(os.path.join(FIX, "tiny-qwen2"))
    os.makedirs(OUT_DIR, exist_ok=True)
    cases = []
    for name, source in fetch_templates().items():
        with open(os.path.join(OUT_DIR, f"{name}.jinja"), "w") as f:
            f.write(source)
        variants = [({}, "")]
        if name == "qwen3":
            variants.append(({"enable_thinking": False}, "/no_thinking"))
        for kwargs, suffix in variants:
            for cname, msgs in CONVERSATIONS.items():
                cont = cname == "ends_with_assistant"
                call = dict(
                    tokenize=False,
                    chat_template=source,
                    bos_token="<s>",
                    eos_token="</s>",
                    **kwargs,
                )
                if cont:
                    call.update(continue_final_message=True, add_generation_prompt=False)
                else:
                    call.update(add_generation_prompt=True)
                case = {
                    "template": name,
                    "variant": suffix,
                    "conversation": cname,
                    "messages": msgs,
                    "kwargs": kwargs,
                    "continue_final_message": cont,
                }
                try:
                    case["rendered"] = tok.apply_chat_template(msgs, **call)
                except Exception as e:  # noqa: BLE001 - the error itself is the expected value
                    case["error"] = str(e).splitlines()[0]
                cases.append(case)
    with open(os.path.join(FIX, "real_template_cases.json"), "w") as f:
        json.dump({"now_epoch": NOW_EPOCH, "cases": cases}, f, indent=1, ensure_ascii=False)
    print(f"{len(cases)} cases, {sum('error' in c for c in cases)} expected errors")


if __name__ == "__main__":
    main()
