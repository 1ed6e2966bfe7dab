//! Proof that the SQL injection detector allocates nothing per value: a counting global allocator wraps the system
//! one, and every call of `sqli::detect` on attacks, prose and long values is checked to allocate nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use portcullis_policies::attacks::{sqli, Place, Sensitivity, Subject};

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

#[test]
fn detecting_allocates_nothing_per_value() {
    let mut values: Vec<Vec<u8>> = [
        "7 union all select a,b from t--",
        "x' or 'k'='k",
        "n\" and sleep(2)#",
        "1; waitfor delay '0:0:3'--",
        "z' and extractvalue(1,concat(0x7e,(select @@version)))-- ",
        "1/*!50000and*/2>1",
        "O'Brien's select a plan",
        "union was a great select",
        "plain text with no quotes at all",
        "'",
        "",
    ]
    .iter()
    .map(|v| v.as_bytes().to_vec())
    .collect();
    values.push("a'b\"c".repeat(2000).into_bytes());
    values.push("((((((((".repeat(1000).into_bytes());
    values.push("word ".repeat(1600).into_bytes());
    // The counter counts: a test that cannot fail proves nothing.
    let before = allocations();
    drop(std::hint::black_box(vec![0u8; 64]));
    assert!(allocations() > before);
    let lowers: Vec<Vec<u8>> = values.iter().map(|v| v.to_ascii_lowercase()).collect();
    for (value, lower) in values.iter().zip(&lowers) {
        for sensitivity in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
            let subject = Subject::plain(value, lower, Place::Query);
            let before = allocations();
            let _ = sqli::detect(&subject, sensitivity);
            assert_eq!(allocations() - before, 0, "{:?}", String::from_utf8_lossy(&value[..value.len().min(40)]));
        }
    }
}
