"""Reads answers of non-OpenAI providers (translated by Switchyard) with the official `openai` Python client.

Usage: python openai_client_providers.py BASE_URL MODEL LABEL. One chat request and one stream
(with include_usage); prints `LABEL chat: …` and `LABEL stream: …`; exits non-zero on any failure.
"""
import sys

import openai

base_url, model, label = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key="client-key-not-forwarded", max_retries=0, timeout=30)
messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]

chat = client.chat.completions.create(model=model, messages=messages, max_tokens=64)
assert chat.object == "chat.completion", chat
assert chat.choices[0].message.role == "assistant", chat
assert chat.choices[0].finish_reason == "stop", chat
assert chat.usage is not None and chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens > 0, chat
print(label, "chat:", chat.choices[0].message.content)

parts, finish, usage = [], None, None
stream = client.chat.completions.create(
    model=model, messages=messages, stream=True, stream_options={"include_usage": True}
)
for chunk in stream:
    assert chunk.object == "chat.completion.chunk", chunk
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
assert finish == "stop", finish
assert usage is not None and usage.total_tokens > 0, usage
print(label, "stream:", "".join(parts))
