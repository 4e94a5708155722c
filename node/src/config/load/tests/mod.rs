//! Black-box tests of loading (through [`load`]), one file per part of the loader, sharing the helpers
//! and the small valid config below.

mod backend;
mod documents;
mod route;
mod security;
mod traffic;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::load;
use crate::config::error::ConfigError;
use crate::config::model::*;

/// Writes `yaml` to `test.yaml` in a fresh directory and loads it.
fn load_yaml(yaml: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.yaml");
    fs::write(&path, yaml).expect("write");
    load(&path)
}

fn load_ok(yaml: &str) -> Config {
    match load_yaml(yaml) {
        Ok(c) => c,
        Err(e) => panic!("expected the config to load, got: {e}"),
    }
}

fn load_err(yaml: &str) -> String {
    match load_yaml(yaml) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name)
}

/// A small valid config; tests splice variations into it.
const ROUTE: &str = "
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: r
spec:
  schema:
    name: OpenAI
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: m
      backendRefs:
        - name: b
";
const BACKEND: &str = "
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: b
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: 9001
";

fn render_routing_table_for_test(cfg: &Config) -> String {
    crate::config::render_routing_table(cfg)
}
