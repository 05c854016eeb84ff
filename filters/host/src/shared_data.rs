//! Process-wide shared data (per `vm_id`), without panics on the statuses
//! Envoy documents.
//!
//! Shared data has no TTL and no delete: callers store expiry inside values
//! and keep their key space bounded. Updates go through [`update`], a CAS
//! retry loop that is lossless across workers.

use crate::port::Host;
use proxy_wasm::types::Status;

/// The value under `key` and its CAS token (`None`, `None` when absent).
pub fn get(h: &mut dyn Host, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    match h.shared_data(key) {
        Ok(found) => found,
        Err(status) => {
            log::warn!("cannot read shared data {key}: {status:?}");
            (None, None)
        }
    }
}

/// Read-modify-write with compare-and-swap, retried up to `attempts` times.
/// `modify` gets the current value and returns the new one, or `None` to
/// leave it unchanged. Returns whether a value was written.
pub fn update(
    h: &mut dyn Host,
    key: &str,
    attempts: usize,
    mut modify: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
) -> bool {
    for _ in 0..attempts {
        let (current, cas) = get(h, key);
        let Some(next) = modify(current.as_deref()) else {
            return false;
        };
        match h.set_shared_data(key, Some(&next), cas) {
            Ok(()) => return true,
            Err(Status::CasMismatch) => continue,
            Err(status) => {
                log::warn!("cannot write shared data {key}: {status:?}");
                return false;
            }
        }
    }
    log::warn!("shared data {key}: gave up after {attempts} CAS conflicts");
    false
}
