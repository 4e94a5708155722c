//! Graceful shutdown as one small type passed to every task (after mini-redis): readiness drops first, the
//! listener keeps serving for the drain delay so the load balancer notices, then stops accepting and waits
//! for in-flight requests and streams up to the drain timeout (DESIGN §7).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Shared shutdown state.
#[derive(Clone)]
pub struct Shutdown {
    draining: Arc<AtomicBool>,
    stop_accepting: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// Not draining.
    pub fn new() -> Self {
        Shutdown {
            draining: Arc::new(AtomicBool::new(false)),
            stop_accepting: watch::channel(false).0,
        }
    }

    /// True once shutdown began: `/readyz` answers 503.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts draining (readiness drops).
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Tells listeners to stop accepting.
    pub fn stop_accepting(&self) {
        self.stop_accepting.send_replace(true);
    }

    /// Resolves once listeners must stop accepting.
    pub async fn accepting_stopped(&self) {
        let mut rx = self.stop_accepting.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Drain timing.
#[derive(Debug, Clone, Copy)]
pub struct DrainTiming {
    /// How long the listener keeps serving after readiness drops.
    pub delay: Duration,
    /// How long in-flight requests get after accepting stops.
    pub timeout: Duration,
}
