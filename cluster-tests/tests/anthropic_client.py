"""Drives Switchyard's Anthropic Messages endpoint with the official `anthropic` Python client.

Usage: python anthropic_client.py BASE_URL MODEL CASE, BASE_URL being the gateway's `/anthropic` prefix.
CASE `basic`: a plain message, a streamed one (the client's own stream helper) and count_tokens.
CASE `claude-code`: a request shaped like Claude Code's (system blocks with cache_control, tools with
input_schema, extended thinking with a budget, tool_use/tool_result history, betas through the beta client),
streamed; every event the client receives is checked, so a stream that is cut, errs or repeats itself
fails the script. CASE `tools`: one turn that must come back as tool_use blocks, streamed.
Prints one `CASE ...` line per result; exits non-zero on any failure.
"""
import base64
import hashlib
import hmac
import sys

import anthropic

base_url, model, case = sys.argv[1], sys.argv[2], sys.argv[3]
client = anthropic.Anthropic(base_url=base_url, api_key="client-key-not-forwarded", max_retries=0, timeout=30)

if case == "basic":
    msg = client.messages.create(
        model=model, max_tokens=64, system="be brief",
        messages=[{"role": "user", "content": "say hello"}])
    assert msg.type == "message" and msg.role == "assistant", msg
    assert msg.stop_reason == "end_turn", msg
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert text, msg
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0, msg.usage
    print(f"basic plain model={msg.model} text={text!r} usage={msg.usage.input_tokens}/{msg.usage.output_tokens}")

    with client.messages.stream(
            model=model, max_tokens=64,
            messages=[{"role": "user", "content": "say hello, streamed"}]) as s:
        deltas = [t for t in s.text_stream]
        final = s.get_final_message()
    assert len(deltas) >= 2, deltas
    streamed = "".join(b.text for b in final.content if b.type == "text")
    assert streamed == "".join(deltas), (streamed, deltas)
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0, final
    print(f"basic stream model={final.model} text={streamed!r} deltas={len(deltas)}")

    counted = client.messages.count_tokens(
        model=model, system="be brief",
        messages=[{"role": "user", "content": "how many tokens is this?"}])
    assert counted.input_tokens > 0, counted
    print(f"basic count_tokens input_tokens={counted.input_tokens}")

elif case == "claude-code":
    tools = [
        {"name": "Read", "description": "Read a file from the local filesystem.",
         "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                          "required": ["file_path"], "additionalProperties": False}},
        {"name": "Bash", "description": "Run a shell command.",
         "input_schema": {"type": "object", "properties": {"command": {"type": "string"},
                                                           "timeout": {"type": "number"}},
                          "required": ["command"]},
         "cache_control": {"type": "ephemeral"}},
    ]
    system = [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"type": "text", "text": "Use the tools to answer questions about the repository.",
         "cache_control": {"type": "ephemeral"}},
    ]
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "What does README.md say?", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            # Signed as the mock signs its own thinking (an HMAC of the text under its test key), standing in
            # for the signature Claude gave this block in the earlier turn: the mock refuses any other.
            {"type": "thinking", "thinking": "I should read the file.", "signature": base64.b64encode(
                hmac.new(b"switchyard-mock-thinking", b"I should read the file.", hashlib.sha256).digest()
            ).decode()},
            {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "README.md"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01",
             "content": [{"type": "text", "text": "Switchyard is a gateway"}]}]},
    ]
    kinds = []
    # Claude Code uses the beta client: `POST /v1/messages?beta=true` with the betas in `anthropic-beta`.
    with client.beta.messages.stream(
            model=model, max_tokens=4096, system=system, tools=tools, messages=messages,
            thinking={"type": "enabled", "budget_tokens": 2048},
            metadata={"user_id": "user_abc_session_1"},
            betas=["interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"],
    ) as s:
        for event in s:
            kinds.append(event.type)
        final = s.get_final_message()
    assert kinds.count("message_start") == 1, kinds
    assert kinds[-1] == "message_stop", kinds
    assert "error" not in kinds, kinds
    blocks = [b.type for b in final.content]
    assert blocks[0] == "thinking" and "text" in blocks, blocks
    text = "".join(b.text for b in final.content if b.type == "text")
    assert text == "tool said: Switchyard is a gateway", text
    assert final.stop_reason == "end_turn", final
    print(f"claude-code stream model={final.model} blocks={','.join(blocks)} text={text!r} "
          f"cache_read={final.usage.cache_read_input_tokens}")

elif case == "tools":
    tools = [{"name": "get_weather", "description": "weather",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    with client.messages.stream(
            model=model, max_tokens=256, tools=tools,
            messages=[{"role": "user", "content": "weather in Paris?"}]) as s:
        final = s.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use" and len(uses) == 1, final
    assert uses[0].input == {"city": "Paris"}, uses
    print(f"tools stream tool_use={uses[0].name} input={uses[0].input}")

else:
    sys.exit(f"unknown case {case}")
