//! A global allocator that counts live bytes in the whole process, and the
//! allocations and the largest allocation made by threads that opt in with
//! [`track_this_thread`], for the memory scenario.
//!
//! A binary opts in with
//! `#[global_allocator] static GLOBAL: CountingAllocator = CountingAllocator;`.
//! Without that, [`live_bytes`] stays at zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED_BYTES: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Sizes of the allocations a tracked thread made while recording; a fixed
/// array, because the allocator must not allocate.
static RECORDED: [AtomicUsize; RECORD_CAPACITY] = [const { AtomicUsize::new(0) }; RECORD_CAPACITY];
static RECORDED_LEN: AtomicUsize = AtomicUsize::new(0);
const RECORD_CAPACITY: usize = 256;

thread_local! {
    // A const initializer and a type without a destructor, so reading them
    // from inside the allocator needs no lazy set-up. `try_with` covers a
    // thread that is being torn down.
    static TRACKED: Cell<bool> = const { Cell::new(false) };
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

fn count_allocation(size: usize) {
    LIVE_BYTES.fetch_add(size as isize, Ordering::Relaxed);
    if TRACKED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(size, Ordering::Relaxed);
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
    if RECORDING.try_with(Cell::get).unwrap_or(false) {
        let index = RECORDED_LEN.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = RECORDED.get(index) {
            slot.store(size, Ordering::Relaxed);
        }
    }
}

/// Records the size of each allocation the calling thread makes until
/// [`stop_recording`], forgetting any earlier record.
pub fn start_recording() {
    RECORDED_LEN.store(0, Ordering::Relaxed);
    RECORDING.with(|recording| recording.set(true));
}

/// Stops recording and returns the sizes, in order; at most the first 256.
pub fn stop_recording() -> Vec<usize> {
    RECORDING.with(|recording| recording.set(false));
    let len = RECORDED_LEN.load(Ordering::Relaxed).min(RECORD_CAPACITY);
    RECORDED[..len]
        .iter()
        .map(|slot| slot.load(Ordering::Relaxed))
        .collect()
}

/// Counts the allocations of the calling thread in [`totals`] and
/// [`take_largest_allocation`] from now on.
pub fn track_this_thread() {
    TRACKED.with(|tracked| tracked.set(true));
}

/// The system allocator, plus a count of live bytes.
#[derive(Debug)]
pub struct CountingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over. The counter has no effect
// on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; see the impl's comment.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count_allocation(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; see the impl's comment.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count_allocation(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; see the impl's comment.
        unsafe { System.dealloc(pointer, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; see the impl's comment.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            // Counted as a free of the old size and an allocation of the new
            // one, which is what a reallocation costs at worst.
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            count_allocation(new_size);
        }
        moved
    }
}

/// Returns the bytes allocated and not yet freed, across all threads, or 0
/// when [`CountingAllocator`] is not the global allocator.
pub fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Totals of the tracked threads: allocations, reallocations included, and
/// the bytes they requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub allocations: usize,
    pub bytes: usize,
}

/// Returns the totals so far; the difference of two readings counts one
/// stretch of work.
pub fn totals() -> Totals {
    Totals {
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
        bytes: ALLOCATED_BYTES.load(Ordering::Relaxed),
    }
}

/// Returns the largest single allocation since the last call, and starts
/// the next stretch at zero.
pub fn take_largest_allocation() -> usize {
    LARGEST.swap(0, Ordering::Relaxed)
}
