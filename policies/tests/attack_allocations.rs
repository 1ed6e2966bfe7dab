//! Proof that inspecting a request for attacks allocates only when the inspector is made, never per value: a
//! counting global allocator wraps the system one, and every `inspect` is checked to allocate nothing. The checks
//! are the real detectors of every class, so this holds for them too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use portcullis_policies::attacks::values::{Check, Findings, Inspector, Limits, Part};
use portcullis_policies::attacks::{AttackClass, Sensitivity};

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

/// A query of 50 parameters, benign and hostile, plain and encoded.
fn query() -> String {
    let values = [
        "alice",
        "%27%20OR%201%3D1--",
        "%253Cscript%253Ealert(1)%253C%252Fscript%253E",
        "..%2f..%2fetc%2fpasswd",
        "%24%7Bjndi%3Aldap%3A%2F%2Fx%2Fa%7D",
        "http%3A%2F%2F169.254.169.254%2Flatest",
        "select+a+plan",
        "%EF%BC%9Cimg%EF%BC%9E",
        "%26lt%3Bsvg%26gt%3B",
        "%5Cx3cscript",
    ];
    (0..50).map(|i| format!("p{i}={}", values[i % values.len()])).collect::<Vec<_>>().join("&")
}

/// A JSON document with nesting, arrays, escapes, numbers and attacks, about 4 KiB.
fn json() -> String {
    let mut out = String::from("{\"user\":{\"name\":\"O'Brien\",\"bio\":\"\\u003cscript\\u003ealert(1)\"},\"items\":[");
    for i in 0..40 {
        out.push_str(&format!(
            "{{\"sku\":\"A-{i}\",\"qty\":{i},\"price\":19.99,\"note\":\"1' OR '1'='1\",\"$where\":\"sleep(1)\"}},"
        ));
    }
    out.push_str("{}],\"__proto__\":{\"admin\":true}}");
    out
}

#[test]
fn inspecting_never_allocates() {
    let query = query();
    let json = json();
    let form = query.replace("p1", "field");
    let xml = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
               <order id=\"7\"><item sku=\"a\">&x;</item><![CDATA[<b>x</b>]]></order>";
    let multipart = "--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\n<script>x</script>\r\n--b\r\n\
                     Content-Disposition: form-data; name=\"f\"; filename=\"../../x.php\"\r\n\r\nbytes\r\n--b\r\n\
                     Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n\
                     {\"user\":{\"$ne\":\"x\"}}\r\n--b--\r\n";
    let headers: [(&[u8], &[u8]); 4] = [
        (b"user-agent", b"${jndi:ldap://x/a}"),
        (b"referer", b"https://example.com/?q=%27"),
        (b"cookie", b"session=abc; pref=%27%20or%201%3D1"),
        (b"accept", b"*/*"),
    ];
    let parts = [
        Part::Path(b"/api/v1/users/..%2f..%2fadmin/%3Cscript%3E"),
        Part::Query(query.as_bytes()),
        Part::Headers(&headers),
        Part::Body { content_type: b"application/json", body: json.as_bytes() },
        Part::Body { content_type: b"application/x-www-form-urlencoded", body: form.as_bytes() },
        Part::Body { content_type: b"application/xml", body: xml.as_bytes() },
        Part::Body { content_type: b"multipart/form-data; boundary=b", body: multipart.as_bytes() },
        Part::Body { content_type: b"text/plain", body: b"free text with O'Brien and a price of $5" },
    ];
    let checks: Vec<Check<'_>> = AttackClass::ALL
        .iter()
        .flat_map(|class| {
            [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].map(|sensitivity| Check {
                class: *class,
                sensitivity,
                places: 0xff,
                skip: &[b"p3", b"json.user.name"],
            })
        })
        .collect();
    let made = allocations();
    let mut inspector = Inspector::new(Limits::default());
    // The counter works: the scratch space is allocated here, once.
    assert!(allocations() > made);
    for part in parts {
        let mut findings = Findings::default();
        let before = allocations();
        inspector.inspect(part, &checks, &mut findings);
        assert_eq!(allocations() - before, 0, "{part:?}");
        assert!(findings.values > 0, "{part:?} was inspected");
        assert!(!findings.uninspectable, "{part:?}");
    }
    // Every part of one request, one after the other.
    let mut findings = Findings::default();
    let before = allocations();
    for part in parts {
        inspector.inspect(part, &checks, &mut findings);
    }
    assert_eq!(allocations() - before, 0);
    assert!(findings.values > 300, "{}", findings.values);
}
