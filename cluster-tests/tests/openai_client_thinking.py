"""An agent with reasoning on, through Switchyard, with the official `openai` Python client.

Usage: python openai_client_thinking.py BASE_URL MODEL LABEL. For a plain and a streamed conversation with
`reasoning_effort`: the first turn offers two tools and must come back as tool calls with the provider's
reasoning (`reasoning_content`) and its signatures (Claude's `thinking_blocks`, Gemini's
`extra_content.google.thought_signature` on the call); the agent appends the answer's message
object itself (`messages.append(choice.message)`, so every field the client kept — thinking_blocks,
reasoning_content, a tool call's extra_content — goes back as it came) and the tool results; the second
turn must be the final answer quoting them. Streams are read with the client's own stream helper, which
accumulates the deltas as agents do. Prints `LABEL stream=… answer: …` and `LABEL stream=… thinking_blocks: N
signed calls: M`; exits non-zero on any failure.
"""
import json
import sys

import openai

base_url, model, label = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key="client-key-not-forwarded", max_retries=0, timeout=30)
tools = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time in a timezone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}},
]


def complete(messages, stream):
    args = dict(model=model, messages=messages, tools=tools, max_tokens=4096, reasoning_effort="low")
    if not stream:
        return client.chat.completions.create(**args)
    with client.chat.completions.stream(**args) as s:
        return s.get_final_completion()


for stream in (False, True):
    messages = [
        {"role": "system", "content": "use the tools"},
        {"role": "user", "content": "weather and time in Paris?"},
    ]
    first = complete(messages, stream)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", first
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 2, first
    extra = choice.message.model_extra or {}
    assert extra.get("reasoning_content"), first
    # Claude's reasoning comes signed in thinking_blocks; Gemini's signature on its first call, where
    # Google's OpenAI layer puts it.
    blocks = extra.get("thinking_blocks") or []
    signed_calls = [c for c in calls
                    if ((c.model_extra or {}).get("extra_content") or {}).get("google", {}).get("thought_signature")]
    assert (blocks and all(b.get("signature") for b in blocks if b.get("type") == "thinking")) or signed_calls, first
    messages.append(choice.message)
    for c in calls:
        messages.append({"role": "tool", "tool_call_id": c.id, "content": f"{c.function.name} ok"})
    final = complete(messages, stream)
    assert final.choices[0].finish_reason == "stop", final
    answer = final.choices[0].message.content
    assert answer and "get_weather ok" in answer and "get_time ok" in answer, final
    print(label, f"stream={stream}", "thinking_blocks:", len(blocks), "signed calls:", len(signed_calls))
    print(label, f"stream={stream}", "answer:", answer)
