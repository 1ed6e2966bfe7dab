//! The proxy-wasm calls the filter makes, without the SDK's panics.
//!
//! The SDK's trait methods (`Context::get_http_call_response_header_bytes`, `HttpContext::get_http_request_body`,
//! `RootContext::get_plugin_configuration`, `send_http_response`, ...) `unwrap` the host's status. After a bundle
//! fetch that failed mid-body, or on a stream Envoy has already reset, the host answers with an error status, the
//! unwrap panics, the VM dies, and Envoy answers 503 for every request on that worker. Every call here turns a host
//! error into `None` or `false`; `clippy.toml` disallows the SDK's panicking methods, so this module is the only way
//! the filter reaches the host for them.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

/// Header `name` of the control plane's response to our last HTTP call; `None` when absent or the call failed.
pub fn call_response_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name).ok().flatten()
}

/// Up to `max` bytes of the HTTP call's response body; `None` when the host has none to give (a failed call).
pub fn call_response_body(max: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, max).ok().flatten()
}

/// Header `name` of the current request; `None` when absent or the stream is gone.
pub fn request_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).ok().flatten()
}

/// Header `name` of the current response; `None` when absent or the stream is gone.
pub fn response_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name).ok().flatten()
}

/// `len` bytes of the buffered request body from `start`.
pub fn request_body(start: usize, len: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpRequestBody, start, len).ok().flatten()
}

/// `len` bytes of the buffered response body from `start`.
pub fn response_body(start: usize, len: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpResponseBody, start, len).ok().flatten()
}

/// An Envoy attribute (`["node", "id"]`); `None` when unknown or unreadable.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

/// Writes filter state `name` (read by the access log as `%FILTER_STATE(...)%`); false if the host refused.
pub fn set_property(name: &str, value: &[u8]) -> bool {
    hostcalls::set_property(vec![name], Some(value)).is_ok()
}

/// The plugin configuration Envoy passed to this root context (empty when there is none).
pub fn plugin_configuration() -> Vec<u8> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default()
}

/// Answers the current request locally; false if the stream is already gone (nothing more to do then).
pub fn send_response(status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
    hostcalls::send_http_response(status, headers.to_vec(), Some(body)).is_ok()
}

/// Asks for `on_tick` every `period`; false if the host refused.
pub fn set_tick_period(period: Duration) -> bool {
    hostcalls::set_tick_period(period).is_ok()
}
