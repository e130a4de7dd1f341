//! The node's current view of the replicated trust state: written by the state machine after
//! every trust change it applies (and at start-up and snapshot install), read by every check
//! the transport and the node make on a request.
//!
//! Invariant: readers see a complete [`Registry`] as of some applied index, never a partial
//! update (a new `Arc` is swapped in whole). Reads are one lock and one `Arc` clone, cheap
//! enough for every request.

use std::sync::{Arc, PoisonError, RwLock};

use super::registry::Registry;

/// A shared, swappable handle on the latest applied [`Registry`]. Cheap to clone.
#[derive(Clone, Default)]
pub struct TrustView {
    current: Arc<RwLock<Arc<Registry>>>,
}

impl TrustView {
    /// Replaces the view with a copy of `registry`.
    pub fn publish(&self, registry: &Registry) {
        let next = Arc::new(registry.clone());
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// The latest published registry.
    pub fn get(&self) -> Arc<Registry> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl std::fmt::Debug for TrustView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrustView(..)")
    }
}
