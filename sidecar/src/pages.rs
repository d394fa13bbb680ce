//! How many changes go in one page (one request, one write transaction): pages grow while they are quick and shrink when they are slow or refused as too large; and how many bytes, by the receiver's body limit.
use crate::error::Error;
use peersync_core::Entry;
use std::time::Duration;

/// The byte budget of a page (core's `changes_within`) for a body limit of `max_body` bytes of
/// JSON: half of it, room for what escaping adds; a single change may take the whole limit.
pub fn byte_budget(max_body: usize) -> u64 {
    (max_body / 2).max(1) as u64
}

/// The error for a change whose JSON (`json_len` bytes) is over `limit`, the most `whose`
/// takes in one body: it names the change and what to do.
pub fn change_too_large(e: &Entry, json_len: usize, limit: usize, whose: &str) -> Error {
    Error::ChangeTooLarge(format!(
        "change {}:{} (table {}, {} bytes as JSON) is larger than {} accepts in one body ({} bytes): raise --max-body on {}; the later changes of {} wait behind it",
        e.device_id,
        e.version,
        peersync_core::shown(&e.table_name),
        json_len,
        whose,
        limit,
        whose,
        e.device_id
    ))
}

/// Pages start this size (or the maximum, if smaller).
const START: i64 = 500;
/// A page answered within this doubles the next one...
const QUICK: Duration = Duration::from_millis(250);
/// ...and one slower than this halves it: each write transaction stays short, so the app's
/// writes wait little, while a long transfer needs few pages.
const SLOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct PageSize {
    now: i64,
    max: i64,
    /// Whether the last page was quick (or none has been sent yet): pages are growing.
    growing: bool,
}

impl PageSize {
    /// Pages of at most `max` changes.
    pub fn new(max: i64) -> PageSize {
        let max = max.max(1);
        PageSize { now: START.min(max), max, growing: true }
    }

    pub fn get(&self) -> i64 {
        self.now
    }

    /// The size of the page after the one about to be sent, made before that one is answered:
    /// twice the size while pages are growing (it is expected to be quick too).
    pub fn ahead(&self) -> i64 {
        if self.growing {
            (self.now * 2).min(self.max)
        } else {
            self.now
        }
    }

    /// A page of `n` changes, asked for with limit `asked`, took `took` from request to reply
    /// (its apply included). Only a full page (`n` = `asked`) says the next may be larger.
    pub fn took(&mut self, n: usize, asked: i64, took: Duration) {
        self.growing = took < QUICK;
        if took > SLOW {
            self.now = (self.now / 2).max(1);
        } else if took < QUICK && n as i64 >= asked {
            self.now = (asked * 2).max(self.now).min(self.max);
        }
    }

    /// The peer refused a page as too large: halve, and never grow past that again. False
    /// when pages are a single change already.
    pub fn too_large(&mut self) -> bool {
        if self.now <= 1 {
            return false;
        }
        self.now = (self.now / 2).max(1);
        self.max = self.now;
        self.growing = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_quick_up_to_the_maximum() {
        let mut p = PageSize::new(3000);
        assert_eq!(p.get(), 500);
        p.took(500, 500, Duration::from_millis(10));
        assert_eq!(p.get(), 1000);
        // A page made before that, with the old size, also counts as full.
        p.took(500, 500, Duration::from_millis(10));
        assert_eq!(p.get(), 1000);
        p.took(1000, 1000, Duration::from_millis(10));
        p.took(2000, 2000, Duration::from_millis(10));
        assert_eq!(p.get(), 3000);
    }

    #[test]
    fn the_page_made_ahead_is_larger_while_pages_grow() {
        let mut p = PageSize::new(3000);
        assert_eq!((p.get(), p.ahead()), (500, 1000));
        p.took(500, 500, Duration::from_millis(10));
        assert_eq!((p.get(), p.ahead()), (1000, 2000));
        p.took(1000, 1000, Duration::from_millis(10));
        assert_eq!((p.get(), p.ahead()), (2000, 3000));
        p.took(2000, 2000, Duration::from_millis(400));
        assert_eq!((p.get(), p.ahead()), (2000, 2000));
        p.took(2000, 2000, Duration::from_secs(2));
        assert_eq!((p.get(), p.ahead()), (1000, 1000));
        assert!(p.too_large());
        assert_eq!((p.get(), p.ahead()), (500, 500));
    }

    #[test]
    fn a_short_last_page_does_not_grow_it() {
        let mut p = PageSize::new(10_000);
        p.took(20, 500, Duration::from_millis(1));
        assert_eq!(p.get(), 500);
    }

    #[test]
    fn shrinks_when_slow_and_stays_below_a_refused_size() {
        let mut p = PageSize::new(10_000);
        p.took(500, 500, Duration::from_secs(2));
        assert_eq!(p.get(), 250);
        assert!(p.too_large());
        assert_eq!(p.get(), 125);
        p.took(125, 125, Duration::from_millis(1));
        assert_eq!(p.get(), 125);
        let mut one = PageSize::new(1);
        assert!(!one.too_large());
    }
}
