"""Renders a tokenizer_config.json's chat_template as Hugging Face transformers' apply_chat_template does
(a sandboxed Jinja2 environment with trim_blocks and lstrip_blocks, raise_exception, the config's special
tokens as variables, add_generation_prompt=True), for the messages [system, user] read from a JSON file
{"system": ..., "user": ...}; writes the rendered text to stdout. Debian's python3-jinja2.
  hf_chat_template.py TOKENIZER_CONFIG MESSAGES_JSON"""
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError


def raise_exception(message):
    raise TemplateError(message)


def token(v):
    return v["content"] if isinstance(v, dict) else v


cfg = json.load(open(sys.argv[1], encoding="utf-8"))
msg = json.load(open(sys.argv[2], encoding="utf-8"))
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
env.globals["raise_exception"] = raise_exception
special = {k: token(v) for k, v in cfg.items() if k.endswith("_token") and v is not None}
messages = [{"role": "system", "content": msg["system"]}, {"role": "user", "content": msg["user"]}]
out = env.from_string(cfg["chat_template"]).render(messages=messages, add_generation_prompt=True, **special)
sys.stdout.write(out)
