//! Loading plugin configuration with errors Envoy's log shows verbatim.

use crate::port::Host;
use gw_core::config::{self, ConfigError};
use proxy_wasm::types::BufferType;
use serde::de::DeserializeOwned;

/// The plugin configuration Envoy gave this root.
pub fn plugin_configuration(h: &mut dyn Host) -> Result<Vec<u8>, proxy_wasm::types::Status> {
    Ok(h.buffer(BufferType::PluginConfiguration, 0, usize::MAX)?
        .unwrap_or_default())
}

/// Load a filter's configuration. On error the message is logged at
/// `error` level with the filter's name, and the caller refuses the
/// configuration (Envoy then refuses the plugin).
pub fn load<Spec, Runtime>(filter: &str, bytes: &[u8]) -> Option<Runtime>
where
    Spec: DeserializeOwned,
    Runtime: TryFrom<Spec, Error = ConfigError>,
{
    match config::load::<Spec, Runtime>(bytes) {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            log::error!("{filter}: {err}");
            None
        }
    }
}
