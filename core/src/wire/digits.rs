//! Integers as decimal ASCII without the formatting machinery: the hash encoding's lengths
//! and numbers, and `device:version` references, built for every change.

/// `n` in decimal ASCII, written into `buf`.
pub(super) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// `n` in decimal ASCII (a leading `-` when negative), written into `buf`.
pub(super) fn integer(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    if n >= 0 {
        return decimal(n as u64, buf);
    }
    let len = decimal(n.unsigned_abs(), buf).len();
    let start = buf.len() - len - 1;
    buf[start] = b'-';
    &buf[start..]
}
