//! Request flow and root-level host calls that mean something different
//! when the filters run composed in one module (`filters/gateway`).
//!
//! Standalone, each filter is its own Envoy HTTP filter: resuming a paused
//! request is `proxy_continue_stream`, and a root context sets its own tick.
//! Composed, the filters are stages of one chain context: a stage that
//! resumes only lets the chain go on to the next stage (the chain resumes
//! Envoy when every stage has), and the chain's root runs each stage root's
//! tick at the period that root asked for. The chain installs itself with
//! [`Composed`] around every call into a stage; filters call
//! [`resume_request`], [`set_tick_period`] and never the raw host calls.

use crate::abi;
use proxy_wasm::types::Status;
use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static COMPOSED: Cell<bool> = const { Cell::new(false) };
    static RESUMED: Cell<bool> = const { Cell::new(false) };
    static REPLIED: Cell<bool> = const { Cell::new(false) };
    static BODY_CHANGED: Cell<bool> = const { Cell::new(false) };
    static TICK: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Let a request paused by this filter go on.
pub fn resume_request() -> Result<(), Status> {
    if COMPOSED.with(Cell::get) {
        RESUMED.with(|r| r.set(true));
        Ok(())
    } else {
        abi::resume_http_request()
    }
}

/// Ask for `on_tick` every `period`.
pub fn set_tick_period(period: Duration) -> Result<(), Status> {
    if COMPOSED.with(Cell::get) {
        TICK.with(|t| t.set(Some(period)));
        Ok(())
    } else {
        abi::set_tick_period(period)
    }
}

/// Called by [`crate::reply`] whenever a local reply is sent.
pub(crate) fn note_reply() {
    REPLIED.with(|r| r.set(true));
}

/// Called by [`crate::response::replace_body`] and
/// [`crate::body::replace_request_body`] when a body was rewritten.
pub(crate) fn note_body_changed() {
    BODY_CHANGED.with(|c| c.set(true));
}

/// What one call into a stage did, as far as the chain must know.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// The stage resumed the request it had paused.
    pub resumed: bool,
    /// The stage answered the request itself.
    pub replied: bool,
    /// The tick period the stage's root asked for.
    pub tick: Option<Duration>,
    /// The stage rewrote the body it was given: its size may have changed,
    /// and the next stage must be told the new one.
    pub body_changed: bool,
}

/// Run `f` as a composed stage and report what it did.
pub struct Composed;

impl Composed {
    pub fn run<T>(f: impl FnOnce() -> T) -> (T, Effects) {
        COMPOSED.with(|c| c.set(true));
        RESUMED.with(|r| r.set(false));
        REPLIED.with(|r| r.set(false));
        BODY_CHANGED.with(|c| c.set(false));
        TICK.with(|t| t.set(None));
        let out = f();
        let effects = Effects {
            resumed: RESUMED.with(|r| r.replace(false)),
            replied: REPLIED.with(|r| r.replace(false)),
            tick: TICK.with(|t| t.take()),
            body_changed: BODY_CHANGED.with(|c| c.replace(false)),
        };
        COMPOSED.with(|c| c.set(false));
        (out, effects)
    }
}
