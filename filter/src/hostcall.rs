//! The proxy-wasm calls the filter makes, without the SDK's panics.
//!
//! The SDK's trait methods (`Context::get_http_call_response_header_bytes`, `HttpContext::get_http_request_body`,
//! `RootContext::get_plugin_configuration`, `send_http_response`, ...) `unwrap` the host's status. After a bundle
//! fetch that failed mid-body, or on a stream Envoy has already reset, the host answers with an error status, the
//! unwrap panics, the VM dies, and Envoy answers 503 for every request on that worker. Every call here turns a host
//! error into `None` or `false`; `clippy.toml` disallows the SDK's panicking methods, so this module is the only way
//! the filter reaches the host for them.
//!
//! The SDK's free functions (`hostcalls::get_map_value_bytes`, `hostcalls::get_buffer`) panic on an unexpected
//! status themselves, before any `Result` reaches us: after a failed call Envoy answers the call-response header
//! getter with `BadArgument`. So header and buffer reads go to the host's ABI directly ([`header_map_value`],
//! [`buffer_bytes`]), the way `host::request_headers` already does.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
}

/// The host's `Ok` status.
const STATUS_OK: u32 = 0;

/// Takes ownership of what the host wrote: `size` bytes at `data`, allocated through this module's
/// `proxy_on_memory_allocate`; `None` for any status but `Ok` (`NotFound`, `BadArgument` after a failed call, ...).
fn host_bytes(status: u32, data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if status != STATUS_OK {
        return None;
    }
    if data.is_null() {
        return Some(Vec::new());
    }
    // SAFETY: on `Ok` the host hands over a buffer it allocated with the SDK's `proxy_on_memory_allocate` (a
    // `Vec<u8>` of capacity `size`), exactly as the SDK's own getters take it.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Value `key` of header map `map`; `None` when absent or when the host refuses (the map is gone).
pub fn header_map_value(map: MapType, key: &str) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: `key` is valid for `key.len()` bytes; the host writes only the two out-parameters.
    let status = unsafe { proxy_get_header_map_value(map as u32, key.as_ptr(), key.len(), &mut data, &mut size) };
    host_bytes(status, data, size)
}

/// Up to `max` bytes of buffer `buffer` from `start`; `None` when empty or when the host refuses.
pub fn buffer_bytes(buffer: BufferType, start: usize, max: usize) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes only the two out-parameters.
    let status = unsafe { proxy_get_buffer_bytes(buffer as u32, start, max, &mut data, &mut size) };
    // The SDK's `get_buffer` reads a null buffer as none, not as empty.
    host_bytes(status, data, size).filter(|_| !data.is_null())
}

/// Header `name` of the control plane's response to our last HTTP call; `None` when absent or the call failed.
pub fn call_response_header(name: &str) -> Option<Vec<u8>> {
    header_map_value(MapType::HttpCallResponseHeaders, name)
}

/// Up to `max` bytes of the HTTP call's response body; `None` when the host has none to give (a failed call).
pub fn call_response_body(max: usize) -> Option<Vec<u8>> {
    buffer_bytes(BufferType::HttpCallResponseBody, 0, max)
}

/// Header `name` of the current request; `None` when absent or the stream is gone.
pub fn request_header(name: &str) -> Option<Vec<u8>> {
    header_map_value(MapType::HttpRequestHeaders, name)
}

/// Header `name` of the current response; `None` when absent or the stream is gone.
pub fn response_header(name: &str) -> Option<Vec<u8>> {
    header_map_value(MapType::HttpResponseHeaders, name)
}

/// `len` bytes of the buffered request body from `start`.
pub fn request_body(start: usize, len: usize) -> Option<Vec<u8>> {
    buffer_bytes(BufferType::HttpRequestBody, start, len)
}

/// `len` bytes of the buffered response body from `start`.
pub fn response_body(start: usize, len: usize) -> Option<Vec<u8>> {
    buffer_bytes(BufferType::HttpResponseBody, start, len)
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
    buffer_bytes(BufferType::PluginConfiguration, 0, usize::MAX).unwrap_or_default()
}

/// Answers the current request locally; false if the stream is already gone (nothing more to do then).
pub fn send_response(status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
    hostcalls::send_http_response(status, headers.to_vec(), Some(body)).is_ok()
}

/// Asks for `on_tick` every `period`; false if the host refused.
pub fn set_tick_period(period: Duration) -> bool {
    hostcalls::set_tick_period(period).is_ok()
}
