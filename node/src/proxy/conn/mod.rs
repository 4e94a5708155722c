//! The connection substrate under the request path: upstream byte streams and how they are opened
//! (`stream`), the idle-connection pool (`pool`), the wake-up absorber that keeps a body poll from waking
//! a connection task for nothing (`wake`), and the client listener's graceful drain (`drain`). Nothing here
//! knows about routes, retries or providers; a change of behaviour never needs to open this folder, and a
//! change of performance usually starts here.

pub mod drain;
pub mod pool;
pub mod stream;
pub mod wake;
