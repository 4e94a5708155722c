//! Priority load with overprovisioning and panic (Envoy semantics). Pure.
