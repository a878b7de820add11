//! Runtimes kept for the life of the process, for work that must not share the caller's
//! threads (a peer engine's connections, an emulated network).

use std::sync::Mutex;

use tokio::runtime::Runtime;

/// A slot for one such runtime: `static SLOT: RuntimeSlot = RuntimeSlot::new();`.
pub struct RuntimeSlot(Mutex<Option<&'static Runtime>>);

impl RuntimeSlot {
    /// An empty slot.
    pub const fn new() -> Self {
        RuntimeSlot(Mutex::new(None))
    }

    /// The runtime in the slot, built by `build` on first use. It is never dropped: a
    /// runtime cannot be dropped from async code, and every later caller uses it.
    pub fn get_or_build(
        &self,
        build: impl FnOnce() -> std::io::Result<Runtime>,
    ) -> std::io::Result<&'static Runtime> {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(runtime) = *slot {
            return Ok(runtime);
        }
        let runtime: &'static Runtime = Box::leak(Box::new(build()?));
        *slot = Some(runtime);
        Ok(runtime)
    }
}

impl Default for RuntimeSlot {
    fn default() -> Self {
        Self::new()
    }
}
