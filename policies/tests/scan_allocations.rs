//! Proof that inspecting a body allocates only when the inspector is made, never per chunk: a counting global
//! allocator wraps the system one, and every `feed` and `finish` is checked to allocate nothing.

#![cfg(feature = "compiler")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use portcullis_policies::compiler::{compile_to_bytes, CompileOptions};
use portcullis_policies::scan::builtin::detections_yaml;
use portcullis_policies::scan::BodyInspector;
use portcullis_policies::{Bundle, Location};

/// Counts allocations made by the current thread (tests run on several threads at once).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches no allocated memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn bundle() -> Bundle {
    let mut yaml = format!("version: 1\n{}", detections_yaml("response.body"));
    yaml.push_str("rules:\n  - id: r\n    when: request.method == \"X\"\n    action: monitor\n");
    let options = CompileOptions { policy_name: "alloc".into(), revision: 1, file_name: "alloc.yaml".into() };
    Bundle::from_bytes(&compile_to_bytes(&yaml, &options).unwrap()).unwrap()
}

/// A JSON response with every kind of finding in it, about 16 KiB.
fn body() -> Vec<u8> {
    let mut out = String::from("{\"users\":[");
    let mut i = 0;
    while out.len() < 16 * 1024 {
        out.push_str(&format!(
            "{{\"id\":{i},\"email\":\"user{i}@example.com\",\"card\":\"4111 1111 1111 1111\",\"exp\":\"12/27\",\
             \"ssn\":\"123-45-6789\",\"iban\":\"GB82 WEST 1234 5698 7654 32\",\"phone\":\"+44 20 7946 0958\",\
             \"ip\":\"10.0.{}.1\",\"key\":\"AKIAIOSFODNN7EXAMPLE\",\"token\":\"sk_live_4eC39HqLyjWDarjtT1zdp7dc\"}},",
            i % 256
        ));
        i += 1;
    }
    out.push_str("{}]}");
    out.into_bytes()
}

#[test]
fn feed_and_finish_never_allocate() {
    let bundle = bundle();
    let body = body();
    let multipart = {
        let mut m = b"--b\r\nContent-Type: application/json\r\n\r\n".to_vec();
        m.extend_from_slice(&body);
        m.extend_from_slice(b"\r\n--b--\r\n");
        m
    };
    // A multipart part labelled binary: held while it is sniffed, in a fixed buffer.
    let sniffed_part = {
        let mut m = b"--b\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        m.extend_from_slice(&body);
        m.extend_from_slice(b"\r\n--b--\r\n");
        m
    };
    let form: Vec<u8> = body.iter().map(|b| if *b == b'@' { b'+' } else { *b }).collect();
    // JSON string escapes are decoded in place, and gzip inflates into the inspector's own buffer.
    let escaped = String::from_utf8(body.clone()).unwrap().replace("4111", "\\u0034111").replace('@', "\\u0040");
    let gzipped = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    // (content type, content encoding, body)
    type Case<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);
    let cases: [Case<'_>; 7] = [
        (b"application/json", None, &body),
        (b"multipart/form-data; boundary=b", None, &multipart),
        (b"application/x-www-form-urlencoded", None, &form),
        (b"application/json", None, escaped.as_bytes()),
        (b"application/json", Some(b"gzip"), &gzipped),
        // Labelled binary, sniffed as text.
        (b"application/octet-stream", None, &body),
        (b"multipart/form-data; boundary=b", None, &sniffed_part),
    ];
    for (content_type, encoding, body) in cases {
        for chunk_size in [1, 7, 1024, 16 * 1024] {
            let made = allocations();
            let mut inspector =
                BodyInspector::new(&bundle, Location::ResponseBody, Some(content_type), encoding).unwrap();
            // The counter works: the per-body state is allocated here, once.
            assert!(allocations() > made);
            let before = allocations();
            for chunk in body.chunks(chunk_size) {
                inspector.feed(&bundle, chunk);
            }
            inspector.finish(&bundle);
            let during = allocations() - before;
            assert_eq!(during, 0, "{} {encoding:?} in {chunk_size}-byte chunks", String::from_utf8_lossy(content_type));
            assert!(!inspector.uninspectable());
            assert!(inspector.classifier_counts().iter().sum::<u32>() > 0);
        }
    }
    // A binary body whose first bytes turn out to be binary is dropped without allocating either.
    let png = [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], &body].concat();
    for chunk_size in [1, 7, 1024] {
        let mut inspector = BodyInspector::new(&bundle, Location::ResponseBody, Some(b"image/png"), None).unwrap();
        let before = allocations();
        for chunk in png.chunks(chunk_size) {
            inspector.feed(&bundle, chunk);
        }
        inspector.finish(&bundle);
        assert_eq!(allocations() - before, 0, "image/png in {chunk_size}-byte chunks");
        assert_eq!(inspector.classifier_counts().iter().sum::<u32>(), 0);
    }
}
