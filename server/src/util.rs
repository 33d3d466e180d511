//! Small helpers every module may use; this module depends on nothing of ours.

use std::sync::{Mutex, MutexGuard};

/// Lock a mutex, ignoring poisoning: our critical sections only move handles
/// in and out of maps, so a panic elsewhere cannot leave them half-updated.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds since the epoch, as token expiry and provenance are stored.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
