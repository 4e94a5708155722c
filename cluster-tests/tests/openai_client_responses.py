"""Drives the Responses API with the official `openai` Python client through Switchyard.

Usage: python openai_client_responses.py BASE_URL MODEL EXPECTED_PROVIDER. Creates a response plainly and
streamed (reading the client's typed events), retrieves both, lists the input items of one, deletes it and
checks that it is gone (NotFoundError). Every answer must come from EXPECTED_PROVIDER ("hello from NAME").
Prints `plain id: …`, `stream id: …` and `done`; exits non-zero on any failure.
"""
import sys

import openai

base_url, model, provider = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key="client-key-not-forwarded", max_retries=0, timeout=30)
want = f"hello from {provider}"

plain = client.responses.create(model=model, input="Say hello.")
assert plain.object == "response" and plain.status == "completed", plain
assert plain.output_text == want, plain.output_text
assert plain.usage is not None and plain.usage.input_tokens > 0 and plain.usage.output_tokens > 0, plain.usage
print("plain id:", plain.id)

events = []
with client.responses.create(model=model, input=[{"role": "user", "content": "Say hello, streamed."}], stream=True) as stream:
    for event in stream:
        events.append(event)
types = [e.type for e in events]
assert types[0] == "response.created", types
assert types[-1] == "response.completed", types
assert [e.sequence_number for e in events] == list(range(len(events))), types
text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert text == want, text
streamed = events[-1].response
assert streamed.output_text == want and streamed.usage.output_tokens > 0, streamed
print("stream id:", streamed.id)

for rid in (plain.id, streamed.id):
    got = client.responses.retrieve(rid)
    assert got.id == rid and got.output_text == want, got

items = client.responses.input_items.list(streamed.id)
assert [i.content[0].text for i in items.data] == ["Say hello, streamed."], items

client.responses.delete(plain.id)
try:
    client.responses.retrieve(plain.id)
except openai.NotFoundError:
    pass
else:
    raise AssertionError("a deleted response was still retrievable")
print("done")
