//! The window table's slots in Envoy shared data: the host side of
//! `gw_core::rate_limit::admission`, which decides (all-or-nothing, CAS
//! loops) over any [`SlotStore`]. This store only moves bytes and counts.

use gw_core::rate_limit::admission::{self, SlotStore, StoreEvent, SweepCursor, WriteError};
use gw_core::rate_limit::config::LocalStore;
use gw_host::clock::now_ms;
use gw_host::metrics::Counter;
use gw_host::port::Host;
use proxy_wasm::types::Status;

/// The rate-limit filter's counters this store adds to
/// (`wasmcustom.gw.rate_limit.{cas_retries,store_errors}`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotCounters {
    /// Compare-and-swap retries (another worker wrote the slot first).
    pub cas_retries: Counter,
    /// Undecodable slots (reset).
    pub store_errors: Counter,
}

/// Shared data as the window table's slots.
pub struct SharedSlots<'a> {
    pub host: &'a mut dyn Host,
    pub counters: SlotCounters,
}

impl SlotStore for SharedSlots<'_> {
    fn read(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), String> {
        self.host.shared_data(key).map_err(|s| format!("{s:?}"))
    }

    fn write(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        match self.host.set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(WriteError::CasMismatch),
            Err(s) => Err(WriteError::Failed(format!("{s:?}"))),
        }
    }

    fn note(&mut self, event: StoreEvent) {
        match event {
            StoreEvent::CasRetry => self.counters.cas_retries.inc(self.host),
            StoreEvent::SlotReset { key, problem } => {
                log::warn!("rate_limit: slot {key} reset: {problem}");
                self.counters.store_errors.inc(self.host);
            }
            StoreEvent::MissingSlot { key } => {
                log::warn!("rate_limit: creating missing slot {key}");
            }
        }
    }
}

impl SharedSlots<'_> {
    /// Create the table's missing slots (another VM of this Envoy may have
    /// made them) and start this VM's share of the sweep.
    pub fn open(
        h: &mut dyn Host,
        store: &LocalStore,
        counters: SlotCounters,
    ) -> Result<SweepCursor, String> {
        let mut slots = SharedSlots {
            host: &mut *h,
            counters,
        };
        let created = admission::ensure_slots(&mut slots, store)?;
        if created > 0 {
            log::info!("rate_limit: created {created} shared-data slots");
        }
        Ok(SweepCursor::start(store, now_ms(h)))
    }

    /// One tick of this VM's sweep: the expired windows it dropped.
    pub fn sweep(
        h: &mut dyn Host,
        cursor: &mut SweepCursor,
        store: &LocalStore,
        counters: SlotCounters,
    ) -> u64 {
        let now = now_ms(h);
        let mut slots = SharedSlots { host: h, counters };
        cursor.tick(&mut slots, store, now)
    }
}
