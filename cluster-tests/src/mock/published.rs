//! Checks against the providers' published definitions that need the test venv: the Gemini and Cohere
//! mocks' own answers and stream events must be what the real APIs' definitions allow (else a client of
//! the real API could break where the mock passed), the definitions must refuse what the providers refuse
//! (else the request checks prove nothing), and every request the node's translators produce must be
//! accepted by them.

use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};

use super::discovery::{Discovery, GENERATE_CONTENT_REQUEST, GENERATE_CONTENT_RESPONSE};
use super::json_schema::CohereSchema;
use super::openai::{Ctx, Reply};
use crate::harness::{cohere_schema, venv_python, vertex_discovery};

/// The discovery document, loaded once for all tests here (also what the mock checks against).
fn vertex() -> &'static Discovery {
    super::discovery::VERTEX.get_or_init(|| {
        Discovery::load(&vertex_discovery(&venv_python()), GENERATE_CONTENT_REQUEST)
            .expect("discovery")
    })
}

/// The Cohere definition, derived once for all tests here (also what the mock checks against).
fn cohere() -> &'static CohereSchema {
    super::json_schema::COHERE
        .get_or_init(|| CohereSchema::load(&cohere_schema(&venv_python())).expect("cohere schema"))
}

fn ctx() -> Ctx<'static> {
    Ctx {
        name: "p",
        seq: 7,
        content_chunks: 3,
    }
}

/// The JSON of a whole answer, or of each `data:` line of a streamed one.
fn answers(reply: Reply) -> (StatusCode, Vec<Value>) {
    match reply {
        Reply::Full { status, body, .. } => (
            status,
            vec![serde_json::from_slice(&body).expect("JSON answer")],
        ),
        Reply::Stream { chunks, .. } => {
            let mut out = Vec::new();
            for c in chunks {
                for line in String::from_utf8_lossy(&c).lines() {
                    if let Some(d) = line.strip_prefix("data: ") {
                        out.push(serde_json::from_str(d).expect("JSON event"));
                    }
                }
            }
            (StatusCode::OK, out)
        }
    }
}

const TOOLS_OPENAI: &str = r#"[
    {"type": "function", "function": {"name": "get_weather", "description": "weather", "strict": true,
     "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
                    "required": ["city"], "additionalProperties": false}}},
    {"type": "function", "function": {"name": "get_time"}}
]"#;

/// OpenAI chat bodies covering what the translators map: plain, system, sampling settings, tools with
/// each tool_choice, a tool-call round trip, images, structured output, reasoning effort.
fn openai_bodies() -> Vec<Value> {
    let tools: Value = serde_json::from_str(TOOLS_OPENAI).expect("tools");
    let history = json!([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "t2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "noon"}]},
    ]);
    let mut bodies = vec![
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "m", "messages": [{"role": "developer", "content": "d"}, {"role": "user", "content": "hi"}],
            "max_tokens": 10, "temperature": 0.3, "top_p": 0.9, "stop": ["x", "y"], "seed": 4,
            "frequency_penalty": 0.1, "presence_penalty": 0.2}),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 12,
            "stop": "z", "stream": true, "stream_options": {"include_usage": true}}),
        json!({"model": "m", "messages": history, "tools": tools, "parallel_tool_calls": true}),
        json!({"model": "m", "messages": [{"role": "user", "content": "json"}],
            "response_format": {"type": "json_object"}}),
        json!({"model": "m", "messages": [{"role": "user", "content": "json"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "strict": true,
                "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}}),
        json!({"model": "m", "messages": [{"role": "user", "content": "think"}], "reasoning_effort": "low"}),
        json!({"model": "m", "messages": [{"role": "user", "content": "think"}], "reasoning_effort": "high"}),
        json!({"model": "m", "messages": [{"role": "user", "content": "think"}], "reasoning_effort": "minimal"}),
        json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}}]}]}),
        json!({"model": "m", "messages": [
            {"role": "user", "content": "w?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 20, \"sky\": [\"clear\"]}"},
            {"role": "assistant", "content": "It is 20."},
            {"role": "user", "content": "thanks"}],
            "tools": tools}),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 1, "logprobs": false,
            "user": "u1", "temperature": null, "max_tokens": null, "stop": null, "top_p": 1}),
    ];
    for choice in [
        json!("auto"),
        json!("none"),
        json!("required"),
        json!({"type": "function", "function": {"name": "get_time"}}),
    ] {
        bodies.push(
            json!({"model": "m", "messages": [{"role": "user", "content": "t?"}],
            "tools": tools, "tool_choice": choice}),
        );
    }
    bodies
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

/// Every request the Gemini translator produces is a valid `GenerateContentRequest`, field for field.
/// (A body a translator refuses with a clear error is not sent, so it is not checked here.)
#[test]
fn gemini_translations_follow_the_vertex_discovery_document() {
    let d = vertex();
    let mut checked = 0;
    for body in openai_bodies() {
        let Ok(out) = switchyard::schema::gemini::request_body(&object(&body)) else {
            continue;
        };
        checked += 1;
        if let Err(e) = d.check(GENERATE_CONTENT_REQUEST, &out) {
            panic!("Vertex refuses the translation of {body}:\n{e}\n{out}");
        }
    }
    assert!(checked >= 10, "only {checked} bodies translated");
}

/// Every request the Cohere translator produces is valid by the SDK's definition of v2 Chat.
#[test]
fn cohere_translations_follow_the_sdk_definition() {
    let c = cohere();
    let mut checked = 0;
    for body in openai_bodies() {
        for stream in [false, true] {
            let Ok(out) =
                switchyard::schema::cohere::request_body(&object(&body), "command-a", stream)
            else {
                continue;
            };
            checked += 1;
            if let Err(e) = c.request.check(&out) {
                panic!(
                    "Cohere (SDK {}) refuses the translation of {body}:\n{e}\n{out}",
                    c.version
                );
            }
        }
    }
    assert!(checked >= 20, "only {checked} bodies translated");
}

/// The real definitions refuse what the providers refuse, in their words.
#[test]
fn the_published_definitions_refuse_what_the_providers_refuse() {
    let d = vertex();
    for (body, needle) in [
        (
            json!({"contents": [{"role": "user", "parts": [{"text": "a", "x": 1}]}]}),
            "Unknown name \"x\" at 'contents[0].parts[0]': Cannot find field.",
        ),
        (
            json!({"model": "m", "contents": []}),
            "Unknown name \"model\": Cannot find field.",
        ),
        (
            json!({"contents": [], "generationConfig": {"maxTokens": 1}}),
            "Unknown name \"maxTokens\" at 'generation_config'",
        ),
        (
            json!({"contents": [], "toolConfig": {"functionCallingConfig": {"mode": "REQUIRED"}}}),
            "tool_config.function_calling_config.mode",
        ),
        (
            json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%"}}]}]}),
            "Base64 decoding failed",
        ),
    ] {
        let err = d.check(GENERATE_CONTENT_REQUEST, &body).expect_err(needle);
        assert!(err.contains(needle), "{body}: {err}");
    }
    // proto3 JSON spellings Vertex accepts.
    let ok = json!({"contents": [{"role": "user", "parts": [{"text": "a"}]}],
        "generation_config": {"max_output_tokens": "5", "thinking_config": {"thinking_budget": 0}},
        "system_instruction": {"parts": [{"text": "s"}]}});
    assert_eq!(d.check(GENERATE_CONTENT_REQUEST, &ok), Ok(()));

    let c = cohere();
    for (body, needle) in [
        (
            json!({"model": "m", "messages": [], "n": 1}),
            "parameter n is not a valid field",
        ),
        (json!({"messages": []}), "missing required field: model"),
        (
            json!({"model": "m", "messages": [], "tool_choice": "AUTO"}),
            "tool_choice: \"AUTO\" is not one of",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x", "name": "bob"}]}),
            "parameter name of messages[0]",
        ),
        (
            json!({"model": "m", "messages": [], "max_tokens": "10"}),
            "max_tokens",
        ),
    ] {
        let err = c.request.check(&body).expect_err(needle);
        assert!(err.contains(needle), "{body}: {err}");
    }
}

fn gemini_call(body: &Value, stream: bool) -> (StatusCode, Vec<Value>) {
    vertex();
    let op = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    let mut headers = HeaderMap::new();
    let token = format!("Bearer {}", super::credentials::test_bearer("google"));
    headers.insert(
        "authorization",
        HeaderValue::from_str(&token).expect("header"),
    );
    let path = format!(
        "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:{op}"
    );
    let reply = super::vertex::handle(
        &Method::POST,
        &path,
        &headers,
        body.to_string().as_bytes(),
        &ctx(),
    );
    answers(reply)
}

/// The Gemini mock's answers, whole and streamed, text and function calls, are valid
/// `GenerateContentResponse`s; and the mock refuses a request the discovery document refuses.
#[test]
fn the_gemini_mock_answers_what_the_vertex_discovery_document_defines() {
    let d = vertex();
    let text = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let tools = json!({"contents": [{"role": "user", "parts": [{"text": "weather?"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}]}]});
    for body in [&text, &tools] {
        for stream in [false, true] {
            let (status, answers) = gemini_call(body, stream);
            assert_eq!(status, StatusCode::OK, "{answers:?}");
            assert!(!answers.is_empty());
            for a in answers {
                if let Err(e) = d.check(GENERATE_CONTENT_RESPONSE, &a) {
                    panic!("not a GenerateContentResponse: {e}\n{a}");
                }
            }
        }
    }
    let (status, answers) = gemini_call(
        &json!({"contents": [{"role": "user", "parts": [{"text": "a"}]}], "foo": 1}),
        false,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answers[0]["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        answers[0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Unknown name \"foo\": Cannot find field.")),
        "{answers:?}"
    );
}

fn cohere_call(body: &Value) -> (StatusCode, Vec<Value>) {
    cohere();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer k"));
    answers(super::cohere::handle(
        &Method::POST,
        &headers,
        body.to_string().as_bytes(),
        &ctx(),
    ))
}

/// The Cohere mock's answers are valid `V2ChatResponse`s and its stream events valid
/// `V2ChatStreamResponse` events; and the mock refuses a request the SDK's definition refuses.
#[test]
fn the_cohere_mock_answers_what_the_sdk_defines() {
    let c = cohere();
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let text = json!({"model": "command-a", "messages": [{"role": "user", "content": "hi"}]});
    let calls = json!({"model": "command-a", "messages": [{"role": "user", "content": "weather?"}], "tools": tools});
    for body in [&text, &calls] {
        for stream in [false, true] {
            let mut body = body.clone();
            body["stream"] = stream.into();
            let (status, answers) = cohere_call(&body);
            assert_eq!(status, StatusCode::OK, "{answers:?}");
            for a in answers {
                let schema = if stream { &c.stream_event } else { &c.response };
                if let Err(e) = schema.check(&a) {
                    panic!(
                        "not what the cohere SDK {} defines (stream={stream}): {e}\n{a}",
                        c.version
                    );
                }
            }
        }
    }
    let (status, answers) =
        cohere_call(&json!({"model": "m", "messages": [{"role": "user", "content": "a"}], "n": 2}));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answers[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("parameter n is not a valid field")),
        "{answers:?}"
    );
    // A failed generation's last event too.
    let end: Value = {
        let b = super::cohere::stream_error_event("boom");
        let text = String::from_utf8_lossy(&b).into_owned();
        let data = text
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("data");
        serde_json::from_str(data).expect("json")
    };
    assert_eq!(c.stream_event.check(&end), Ok(()), "{end}");
}
