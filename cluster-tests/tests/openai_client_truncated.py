"""Reads a stream the upstream ended early (no `data: [DONE]`, no finish reason) through a Switchyard node
with the official `openai` Python client: the client must raise, never return the partial text as an answer.

Usage: python openai_client_truncated.py BASE_URL MODEL. Prints what was raised; exits non-zero if nothing was.
"""
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="client-key", max_retries=0, timeout=30)

parts = []
try:
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], stream=True
    )
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
except Exception as e:  # the SDK's APIError for the error event, or the transport's error for the abort
    print("raised:", type(e).__name__, "after", repr("".join(parts)))
    sys.exit(0)
raise SystemExit("a truncated stream was returned as a complete answer: " + repr("".join(parts)))
