//! The request path: the client listener, per-request handling, the attempt loop and upstream clients.

pub mod body;
pub mod conn;
pub mod error;
pub mod forward;
pub mod handler;
pub mod hop;
pub mod json_members;
pub mod limits;
pub mod mutation;
pub mod responses;
pub mod server;
pub mod stream_end;
pub mod upstream;
pub mod usage;
