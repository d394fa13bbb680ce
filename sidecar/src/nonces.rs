//! The nonces of signed requests seen within the `created` window: a replayed request is
//! refused, also after a restart (a journal file keeps them), with a quota per device so one
//! device cannot lock the others out, and memory that returns once entries expire.
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most nonces remembered at once, all devices together.
const MAX_NONCES: usize = 1_000_000;
/// Most nonces one device may have remembered at once (its signed requests within the window).
pub const MAX_PER_DEVICE: usize = 50_000;
/// Longest nonce accepted, in bytes.
pub const MAX_NONCE_LEN: usize = 128;

type Key = (Arc<str>, String);

#[derive(Default)]
pub struct NonceCache {
    seen: HashSet<Key>,
    /// (expiry, key), in the order they were seen (expiries grow with time).
    order: VecDeque<(i64, Key)>,
    per_device: HashMap<Arc<str>, usize>,
    journal: Option<Journal>,
}

/// An append-only file of `<expiry> <device> <nonce as hex>` lines, rewritten with only the live
/// entries when it has grown to several times their number.
struct Journal {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl NonceCache {
    /// A cache that keeps its nonces in `path` (created owner-only if missing), loading those
    /// still live at `now`.
    pub fn open(path: &Path, now: i64) -> Result<NonceCache> {
        let mut c = NonceCache::default();
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                let mut parts = line.split(' ');
                let (Some(exp), Some(dev), Some(n)) = (parts.next(), parts.next(), parts.next()) else { continue };
                let (Ok(exp), Ok(n)) = (exp.parse::<i64>(), hex::decode(n)) else { continue };
                if exp >= now {
                    c.remember(dev.into(), String::from_utf8_lossy(&n).into_owned(), exp);
                }
            }
        }
        c.journal = Some(Journal::rewrite(path, &c.order)?);
        Ok(c)
    }

    /// Records `nonce` for `device` (a request created within the window, seen at `now`);
    /// false if it was already used.
    pub fn insert(&mut self, device: &str, nonce: &str, now: i64, window: i64) -> Result<bool> {
        self.expire(now);
        if nonce.len() > MAX_NONCE_LEN {
            return Err(Error::Unauthenticated(format!("the signature's nonce is longer than {MAX_NONCE_LEN} bytes")));
        }
        let dev: Arc<str> = match self.per_device.get_key_value(device) {
            Some((d, _)) => d.clone(),
            None => device.into(),
        };
        let k = (dev.clone(), nonce.to_string());
        if self.seen.contains(&k) {
            return Ok(false);
        }
        if self.per_device.get(&dev).copied().unwrap_or(0) >= MAX_PER_DEVICE {
            return Err(Error::TooMany(format!(
                "device {device} sent more than {MAX_PER_DEVICE} signed requests in the last {} s; slow down",
                2 * window
            )));
        }
        if self.seen.len() >= MAX_NONCES {
            return Err(Error::Busy("too many signed requests in the last minutes; try again later".into()));
        }
        // A request created at now+window stays acceptable until now+2*window.
        let exp = now + 2 * window;
        if let Some(j) = &mut self.journal {
            j.append(exp, device, nonce)?;
        }
        self.remember(dev, nonce.to_string(), exp);
        if let Some(j) = &mut self.journal {
            if j.lines > 2 * self.order.len() + 10_000 {
                *j = Journal::rewrite(&j.path, &self.order)?;
            }
        }
        Ok(true)
    }

    fn remember(&mut self, dev: Arc<str>, nonce: String, exp: i64) {
        let k = (dev.clone(), nonce);
        if self.seen.insert(k.clone()) {
            *self.per_device.entry(dev).or_default() += 1;
            self.order.push_back((exp, k));
        }
    }

    /// Forgets the nonces no request could still be inside the window with, and gives the
    /// memory they took back.
    fn expire(&mut self, now: i64) {
        let before = self.order.len();
        while self.order.front().is_some_and(|(exp, _)| *exp < now) {
            let (_, k) = self.order.pop_front().unwrap();
            self.seen.remove(&k);
            if let Some(n) = self.per_device.get_mut(&k.0) {
                *n -= 1;
                if *n == 0 {
                    self.per_device.remove(&k.0);
                }
            }
        }
        if self.order.len() < before && self.seen.capacity() > 4 * self.seen.len() + 1024 {
            self.seen.shrink_to_fit();
            self.order.shrink_to_fit();
            self.per_device.shrink_to_fit();
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

impl Journal {
    /// Writes the live entries to a fresh file at `path` (atomically) and opens it to append.
    fn rewrite(path: &Path, entries: &VecDeque<(i64, Key)>) -> Result<Journal> {
        let tmp = path.with_extension("tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::Key(format!("cannot write the nonce journal {}: {e}", tmp.display())))?;
        for (exp, (dev, n)) in entries {
            writeln!(f, "{exp} {dev} {}", hex::encode(n))?;
        }
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Journal { path: path.to_path_buf(), file, lines: entries.len() })
    }

    fn append(&mut self, exp: i64, device: &str, nonce: &str) -> Result<()> {
        writeln!(self.file, "{exp} {device} {}", hex::encode(nonce))?;
        self.lines += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const W: i64 = 300;

    #[test]
    fn nonces_are_single_use_and_expire() {
        let mut c = NonceCache::default();
        assert!(c.insert("d", "n", 1000, W).unwrap());
        assert!(!c.insert("d", "n", 1001, W).unwrap());
        assert!(c.insert("e", "n", 1001, W).unwrap(), "per device");
        assert!(c.insert("d", "m", 1002 + 2 * W, W).unwrap());
        assert_eq!(c.len(), 1, "old entries pruned");
        assert_eq!(c.per_device.get("e"), None);
    }

    #[test]
    fn long_nonces_and_busy_devices_are_refused_alone() {
        let mut c = NonceCache::default();
        let e = c.insert("d", &"x".repeat(MAX_NONCE_LEN + 1), 1, W).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        for i in 0..MAX_PER_DEVICE {
            assert!(c.insert("d", &i.to_string(), 1, W).unwrap());
        }
        let e = c.insert("d", "one more", 1, W).unwrap_err();
        assert!(matches!(e, Error::TooMany(_)), "{e}");
        assert!(c.insert("other", "x", 1, W).unwrap(), "another device is not locked out");
        // Once the window has passed, the device may send again and the memory is given back.
        assert!(c.insert("d", "later", 2 + 2 * W, W).unwrap());
        assert_eq!(c.len(), 1);
        assert!(c.seen.capacity() < 4096, "capacity {}", c.seen.capacity());
    }

    #[test]
    fn nonces_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("peersync-nonces-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.journal");
        {
            let mut c = NonceCache::open(&path, 1000).unwrap();
            assert!(c.insert("d", "a b\"c", 1000, W).unwrap());
            assert!(c.insert("d", "old", 100, W).unwrap());
        }
        let mut c = NonceCache::open(&path, 1000).unwrap();
        assert!(!c.insert("d", "a b\"c", 1001, W).unwrap(), "a replay after a restart is refused");
        assert!(c.insert("d", "old", 1001, W).unwrap(), "expired entries are not kept");
        fs::remove_dir_all(&dir).unwrap();
    }
}
