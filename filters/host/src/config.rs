//! Loading plugin configuration with errors Envoy's log shows verbatim.

use crate::abi;
use gw_core::config::{self, ConfigError};
use proxy_wasm::types::BufferType;
use serde::de::DeserializeOwned;

/// Read the plugin `configuration` and load it. On error the message is
/// logged at `error` level with the filter's name, and the caller returns
/// `false` from `on_configure` so that Envoy refuses the configuration.
pub fn load_plugin_config<Spec, Runtime>(filter: &str) -> Option<Runtime>
where
    Spec: DeserializeOwned,
    Runtime: TryFrom<Spec, Error = ConfigError>,
{
    let bytes = match abi::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
        Ok(bytes) => bytes.unwrap_or_default(),
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
