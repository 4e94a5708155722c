//! Host selection for one attempt: priority load, weights, previously tried hosts. Pure.
