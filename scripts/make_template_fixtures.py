"""Chat-template renderings by transformers' apply_chat_template, for tests/tokenizer.rs:
`{% generation %}` blocks, `tojson` with its arguments, `strftime_now` on a fixed clock, and
`continue_final_message`. Run with the reference virtualenv (scripts/make_fixtures.sh builds it):

    target/pyref/bin/python scripts/make_template_fixtures.py

Writes tests/fixtures/template_cases.json.
"""

import datetime as real_datetime
import json
import os

import transformers
from transformers import AutoTokenizer
from transformers.utils import chat_template_utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
TEMPLATES = os.path.join(ROOT, "..", "shared", "data", "chat_templates")
# 2026-11-29 19:36:05 (a Sunday), as seconds since 1970 in UTC: the Rust side fixes its clock here.
NOW = real_datetime.datetime(2026, 11, 29, 19, 36, 5)
NOW_EPOCH = int(NOW.replace(tzinfo=real_datetime.timezone.utc).timestamp())


class FixedDatetime(real_datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


# strftime_now calls `datetime.now()` from this module's namespace.
chat_template_utils.datetime = FixedDatetime


def read(name):
    with open(os.path.join(TEMPLATES, name)) as f:
        return f.read()


def main():
    tok = AutoTokenizer.from_pretrained(os.path.join(FIX, "tiny-qwen2"))
    qwen = read("qwen2.5-instruct.chat_template.jinja")
    smol = read("smollm2-135m-instruct.chat_template.jinja")
    hostile = "Café <b> & 'x' 😀 \"q\" \\ \u2028"
    each = "{% for m in messages %}"
    cases = [
        # transformers renders a generation block's body unchanged (TRL marks assistant turns so).
        ("generation", qwen.replace("{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}",
                                    "{%- generation %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endgeneration %}"), None),
        ("generation_inline", each + "{% if m.role == 'assistant' %}{% generation %}A:{{ m.content }}{% endgeneration %}\n{% else %}{{ m.role }}:{{ m.content }}\n{% endif %}{% endfor %}", None),
        ("tojson", each + "{{ m.content | tojson }}|{{ m | tojson }}\n{% endfor %}", None),
        ("tojson_args", "{% set d = {'b': [1, 2.5, 1e-05, none, true], 'a': {'é': 'x'}} %}"
                        "{{ d | tojson(indent=2) }}|{{ d | tojson(separators=(',', ':')) }}|"
                        "{{ d | tojson(sort_keys=true) }}|{{ d | tojson(ensure_ascii=true) }}|{{ d | tojson(indent='\\t', sort_keys=true) }}", None),
        ("strftime", "{{ strftime_now('%Y-%m-%d %H:%M') }} ({{ strftime_now('%A') }}) {{ strftime_now('%d %b %Y') }} {{ strftime_now('%I:%M:%S %p, %j') }}", None),
        ("continue_qwen", qwen, "continue"),
        ("continue_smollm2", smol, "continue"),
    ]
    conversations = {
        "multi_turn": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": hostile},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Name a prime \\boxed{7}?"},
        ],
        "ends_with_assistant": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "The answer is"},
        ],
        "ends_with_assistant_space": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "The answer is "},
        ],
    }
    out = []
    for name, template, mode in cases:
        for cname, msgs in conversations.items():
            if mode == "continue" and cname == "multi_turn":
                continue
            kwargs = dict(tokenize=False, chat_template=template)
            if mode == "continue":
                kwargs.update(continue_final_message=True, add_generation_prompt=False)
            else:
                kwargs.update(add_generation_prompt=True)
            out.append(
                {
                    "case": name,
                    "conversation": cname,
                    "template_source": template,
                    "messages": msgs,
                    "continue_final_message": mode == "continue",
                    "rendered": tok.apply_chat_template(msgs, **kwargs),
                }
            )
    meta = {"transformers": transformers.__version__, "now_epoch": NOW_EPOCH, "cases": out}
    with open(os.path.join(FIX, "template_cases.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
    print(f"{len(out)} cases")


if __name__ == "__main__":
    main()
