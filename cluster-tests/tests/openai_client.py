"""Drives a Switchyard node with the official `openai` Python client: one chat request, one stream.

Usage: python openai_client.py BASE_URL MODEL. Prints one line per check; exits non-zero on any failure.
"""
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="client-key-not-forwarded", max_retries=0, timeout=30)

chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
assert chat.choices[0].message.role == "assistant", chat
assert chat.choices[0].finish_reason == "stop", chat
assert chat.usage is not None and chat.usage.total_tokens > 0, chat
print("chat:", chat.choices[0].message.content)

parts = []
finish = None
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "hello"}],
    stream=True,
    stream_options={"include_usage": True},
)
usage = None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
assert finish == "stop", finish
assert usage is not None and usage.total_tokens > 0, usage
print("stream:", "".join(parts))

models = client.models.list()
assert any(m.id == model for m in models.data), models
print("models: ok")

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("unknown model did not raise")
except openai.NotFoundError as e:
    print("not found:", e.status_code)
