//! Retry decisions and backoff (Envoy semantics). Pure.
