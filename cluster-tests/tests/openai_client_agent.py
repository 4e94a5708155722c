"""Runs an agent loop with the official `openai` Python client through Switchyard.

Usage: python openai_client_agent.py BASE_URL MODEL LABEL. For a plain and a streamed conversation: the
first turn offers two tools and must come back as two tool calls (parallel) that the client assembles; the
tool results go back in the history; the second turn must be the final text answer quoting them. Streams
are read with the client's own stream helper, which assembles tool-call deltas the way agents do.
Prints `LABEL stream=… answer: …` and `LABEL stream=… model: …`; exits non-zero on any failure.
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
    if not stream:
        return client.chat.completions.create(model=model, messages=messages, tools=tools, max_tokens=256)
    with client.chat.completions.stream(model=model, messages=messages, tools=tools, max_tokens=256) as s:
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
    assert sorted(c.function.name for c in calls) == ["get_time", "get_weather"], calls
    for c in calls:
        assert c.id and c.type == "function", c
        args = json.loads(c.function.arguments)
        assert isinstance(args, dict) and list(args.values()) == ["Paris"], args
    messages.append({
        "role": "assistant",
        "content": choice.message.content,
        "tool_calls": [{"id": c.id, "type": "function",
                        "function": {"name": c.function.name, "arguments": c.function.arguments}} for c in calls],
    })
    for c in calls:
        messages.append({"role": "tool", "tool_call_id": c.id, "content": f"{c.function.name} ok"})
    final = complete(messages, stream)
    assert final.choices[0].finish_reason == "stop", final
    answer = final.choices[0].message.content
    assert answer and "get_weather ok" in answer and "get_time ok" in answer, final
    assert not final.choices[0].message.tool_calls, final
    print(label, f"stream={stream}", "answer:", answer)
    print(label, f"stream={stream}", "model:", final.model)
