//! Loading plugin configuration with errors Envoy's log shows verbatim.

use crate::abi;
use gw_core::config::{self, ConfigError};
use proxy_wasm::types::BufferType;
use serde::de::DeserializeOwned;
use std::cell::RefCell;

thread_local! {
    /// The configuration a composing root hands to a filter's root
    /// (`filters/gateway`: one section of its own plugin configuration).
    static GIVEN: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Run `f` (a root's `on_configure`) with `bytes` as its plugin configuration.
pub fn with_configuration<T>(bytes: Vec<u8>, f: impl FnOnce() -> T) -> T {
    GIVEN.with(|g| *g.borrow_mut() = Some(bytes));
    let out = f();
    GIVEN.with(|g| *g.borrow_mut() = None);
    out
}

/// The plugin configuration: the one given by a composing root, else Envoy's.
pub fn plugin_configuration() -> Result<Vec<u8>, proxy_wasm::types::Status> {
    if let Some(bytes) = GIVEN.with(|g| g.borrow().clone()) {
        return Ok(bytes);
    }
    Ok(abi::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)?.unwrap_or_default())
}

/// Read the plugin `configuration` and load it. On error the message is
/// logged at `error` level with the filter's name, and the caller returns
/// `false` from `on_configure` so that Envoy refuses the configuration.
pub fn load_plugin_config<Spec, Runtime>(filter: &str) -> Option<Runtime>
where
    Spec: DeserializeOwned,
    Runtime: TryFrom<Spec, Error = ConfigError>,
{
    let bytes = match plugin_configuration() {
        Ok(bytes) => bytes,
        Err(status) => {
            log::error!("{filter}: cannot read plugin configuration: {status:?}");
            return None;
        }
    };
    match config::load::<Spec, Runtime>(&bytes) {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            log::error!("{filter}: {err}");
            None
        }
    }
}
