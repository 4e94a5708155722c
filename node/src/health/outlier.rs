//! The Envoy outlier detector for one backend host. Pure: time is passed in.
