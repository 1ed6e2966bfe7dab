//! The proxy-wasm calls the filter makes, without the SDK's panics.
//!
//! The SDK's trait methods (`Context::get_http_call_response_header_bytes`, `HttpContext::get_http_request_body`,
//! `RootContext::get_plugin_configuration`, `send_http_response`, ...) `unwrap` the host's status. After a bundle
//! fetch that failed mid-body, or on a stream Envoy has already reset, the host answers with an error status, the
//! unwrap panics, the VM dies, and Envoy answers 503 for every request on that worker. Every call here turns a host
//! error into `None` or `false`; `clippy.toml` disallows the SDK's panicking methods, so this module is the only way
//! the filter reaches the host for them.
//!
//! The SDK's free functions in `proxy_wasm::hostcalls` are no better: each one `panic!`s on any status it did not
//! expect, before a `Result` reaches us (after a failed call Envoy answers the call-response header getter with
//! `BadArgument`), and each declares the host's status as a Rust enum, so a status value it does not know would be
//! undefined behaviour. So every call here goes to the host's ABI directly, with the status as a plain `u32`, the
//! way `host::request_headers` reads the request headers; `clippy.toml` disallows the SDK's hostcalls too.

use std::time::Duration;

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

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
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

/// The host's `CasMismatch` status: a shared-data write lost a race.
const STATUS_CAS_MISMATCH: u32 = 8;

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
    let path = property_path(path);
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: `path` is valid for its length; the host writes only the two out-parameters.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    host_bytes(status, data, size).filter(|_| !data.is_null())
}

/// Writes filter state `name` (read by the access log as `%FILTER_STATE(...)%`); false if the host refused.
pub fn set_property(name: &str, value: &[u8]) -> bool {
    // SAFETY: both slices are valid for their lengths; the host only reads them.
    unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) == STATUS_OK }
}

/// The shared-data value at `key` and its compare-and-swap version; `(None, None)` when absent or unreadable.
pub fn shared_data(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: `key` is valid for its length; the host writes only the three out-parameters.
    let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match host_bytes(status, data, size) {
        Some(value) => ((!data.is_null()).then_some(value), (cas != 0).then_some(cas)),
        None => (None, None),
    }
}

/// Why a shared-data write did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedWriteError {
    /// Another writer changed the value since `cas` was read.
    CasMismatch,
    /// Any other refusal by the host.
    Failed,
}

/// Writes `value` at `key` if its version is still `cas` (0: unconditionally).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), SharedWriteError> {
    // SAFETY: both slices are valid for their lengths; the host only reads them.
    match unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) } {
        STATUS_OK => Ok(()),
        STATUS_CAS_MISMATCH => Err(SharedWriteError::CasMismatch),
        _ => Err(SharedWriteError::Failed),
    }
}

/// The host's clock; the epoch if the host will not say.
pub fn current_time() -> std::time::SystemTime {
    let mut nanos: u64 = 0;
    // SAFETY: the host writes only the out-parameter.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    let since_epoch = if status == STATUS_OK { Duration::from_nanos(nanos) } else { Duration::ZERO };
    std::time::UNIX_EPOCH + since_epoch
}

/// Writes `message` to Envoy's log at `level` (a refusal by the host is ignored: there is nowhere else to say it).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: `message` is valid for its length; the host only reads it.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// Sends an HTTP request to `cluster` and returns the call's token; `None` if the host refused (unknown cluster,
/// bad headers). The answer comes to `on_http_call_response` with that token.
///
/// The one call that goes through the SDK: its dispatcher must register the token, or it panics (`invalid
/// token_id`) when the answer arrives, and registering is private to it. Its hostcall panics only on a status other
/// than Ok, BadArgument and InternalFailure, which are all Envoy's `httpCall` returns for valid memory.
#[allow(clippy::disallowed_methods)]
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Option<u32> {
    proxy_wasm::hostcalls::dispatch_http_call(cluster, headers.to_vec(), body, Vec::new(), timeout).ok()
}

/// Defines a metric and returns its id; `None` if the host refused.
pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    let mut id: u32 = 0;
    // SAFETY: `name` is valid for its length; the host writes only the id.
    let status = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

/// Adds `offset` to counter `id` (a refusal loses one update of a statistic, nothing more).
pub fn increment_metric(id: u32, offset: i64) {
    // SAFETY: no memory is shared with the host.
    let _ = unsafe { proxy_increment_metric(id, offset) };
}

/// Sets gauge `id` to `value` (a refusal loses one update of a statistic, nothing more).
pub fn record_metric(id: u32, value: u64) {
    // SAFETY: no memory is shared with the host.
    let _ = unsafe { proxy_record_metric(id, value) };
}

/// A property path as the ABI takes it: the segments separated by NUL bytes.
fn property_path(path: &[&str]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            bytes.push(0);
        }
        bytes.extend_from_slice(part.as_bytes());
    }
    bytes
}

/// A header map as the ABI takes it: the pair count, each pair's two lengths, then each name and value
/// NUL-terminated (all integers little-endian `u32`).
fn serialize_map(map: &[(&str, &str)]) -> Vec<u8> {
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut bytes = Vec::with_capacity(4 + map.iter().map(|(n, v)| n.len() + v.len() + 10).sum::<usize>());
    bytes.extend_from_slice(&len32(map.len()));
    for (name, value) in map {
        bytes.extend_from_slice(&len32(name.len()));
        bytes.extend_from_slice(&len32(value.len()));
    }
    for (name, value) in map {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    }
    bytes
}

/// The plugin configuration Envoy passed to this root context (empty when there is none).
pub fn plugin_configuration() -> Vec<u8> {
    buffer_bytes(BufferType::PluginConfiguration, 0, usize::MAX).unwrap_or_default()
}

/// Answers the current request locally; false if the stream is already gone (nothing more to do then).
pub fn send_response(status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let headers = serialize_map(headers);
    // SAFETY: every slice is valid for its length; the host only reads them. -1: not a gRPC response.
    let result = unsafe {
        proxy_send_local_response(
            status,
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    };
    result == STATUS_OK
}

/// Asks for `on_tick` every `period`; false if the host refused.
pub fn set_tick_period(period: Duration) -> bool {
    let millis = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: no memory is shared with the host.
    unsafe { proxy_set_tick_period_milliseconds(millis) == STATUS_OK }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_forms_match_the_abi() {
        assert_eq!(property_path(&["node", "id"]), b"node\0id");
        assert_eq!(property_path(&["wasm.portcullis.verdict"]), b"wasm.portcullis.verdict");
        let map = serialize_map(&[(":method", "GET"), ("a", "")]);
        let mut expected = vec![2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b":method\0GET\0a\0\0");
        assert_eq!(map, expected);
        assert_eq!(serialize_map(&[]), vec![0, 0, 0, 0]);
    }
}
