//! Bodies on the wire: zstd Content-Encoding (RFC 8878) when the other side accepts it, JSON
//! serialized straight into the encoder, and decoding bounded by the decoded size (no zip bombs).
use crate::error::{Error, Result};
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING};
use serde::Serialize;
use std::io::{Read, Write};

/// The one content coding spoken besides identity.
pub const ZSTD: &str = "zstd";
/// Bodies shorter than this go as they are (compressing them saves nothing worth the time).
pub const MIN_COMPRESSED: usize = 1024;
/// zstd level 1: about 300 MB/s here, and the hex of random bytes comes out at its byte size
/// (level 3 compresses hex no better, at a fifth of the speed).
const LEVEL: i32 = 1;
/// The largest zstd window a body may need, as a power of two (16 MiB): decoding memory stays
/// bounded whatever the sender asks for. The encoder at [`LEVEL`] uses far less.
const WINDOW_LOG_MAX: u32 = 24;

/// A body to send: its bytes as they go on the wire, whether they are zstd, and the size of
/// the JSON they hold (what the receiver's limit counts).
pub struct Body {
    pub bytes: Vec<u8>,
    pub zstd: bool,
    pub json_len: usize,
}

/// Where a JSON body is written as it is made: straight into a zstd encoder, or kept plain;
/// counts the JSON's bytes either way.
pub struct BodyWriter {
    json_len: usize,
    out: Sink,
}

enum Sink {
    Plain(Vec<u8>),
    Zstd(std::io::BufWriter<zstd::stream::write::Encoder<'static, Vec<u8>>>),
}

impl BodyWriter {
    /// A writer that compresses when `compress`.
    pub fn new(compress: bool) -> Result<BodyWriter> {
        let out = match compress {
            true => Sink::Zstd(std::io::BufWriter::with_capacity(
                1 << 16,
                zstd::stream::write::Encoder::new(Vec::new(), LEVEL)?,
            )),
            false => Sink::Plain(Vec::new()),
        };
        Ok(BodyWriter { json_len: 0, out })
    }

    /// The body written. One whose JSON is shorter than [`MIN_COMPRESSED`] goes plain
    /// (compressing it saves nothing): it is small, so it is decompressed again.
    pub fn finish(self) -> Result<Body> {
        let json_len = self.json_len;
        match self.out {
            Sink::Plain(bytes) => Ok(Body { bytes, zstd: false, json_len }),
            Sink::Zstd(w) => {
                let packed = w.into_inner().map_err(|e| Error::Io(e.into_error()))?.finish()?;
                if json_len < MIN_COMPRESSED {
                    return Ok(Body { bytes: zstd::stream::decode_all(&packed[..])?, zstd: false, json_len });
                }
                Ok(Body { bytes: packed, zstd: true, json_len })
            }
        }
    }
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.out {
            Sink::Plain(v) => v.write(buf)?,
            Sink::Zstd(w) => w.write(buf)?,
        };
        self.json_len += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Sink::Plain(_) => Ok(()),
            Sink::Zstd(w) => w.flush(),
        }
    }
}

/// `v` as a JSON body, zstd-compressed as it is serialized when `compress` (and it is not tiny).
pub fn json_body<T: Serialize>(v: &T, compress: bool) -> Result<Body> {
    let mut w = BodyWriter::new(compress)?;
    serde_json::to_writer(&mut w, v)?;
    w.finish()
}

/// `bytes` zstd-compressed (for replies already serialized).
pub fn compress(bytes: &[u8]) -> Result<Vec<u8>> {
    Ok(zstd::bulk::compress(bytes, LEVEL)?)
}

/// Whether `headers` (a request's or, RFC 7694, a reply's) say zstd is accepted.
pub fn accepts_zstd(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let refused = parts.any(|p| p.replace(' ', "").eq_ignore_ascii_case("q=0") || p.eq_ignore_ascii_case("q=0.0"));
        coding.eq_ignore_ascii_case(ZSTD) && !refused
    })
}

/// The `Accept-Encoding` value this side sends (and, on replies, says it takes in requests).
pub fn accept_value() -> HeaderValue {
    HeaderValue::from_static(ZSTD)
}

/// The body as its sender wrote it: `body` decoded by the Content-Encoding in `headers`,
/// refused past `max` decoded bytes (read at most `max` + 1 of them, whatever the body claims):
/// [`Error::DecodedTooLarge`] (413); a coding not spoken here is [`Error::Unsupported`] (415).
pub fn decode(headers: &HeaderMap, body: Bytes, max: usize) -> Result<Bytes> {
    let coding = match headers.get(CONTENT_ENCODING) {
        None => return Ok(body),
        Some(v) => v.to_str().unwrap_or("").trim().to_ascii_lowercase(),
    };
    match coding.as_str() {
        "" | "identity" => Ok(body),
        ZSTD => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(&body[..]).map_err(corrupt)?;
            dec.window_log_max(WINDOW_LOG_MAX).map_err(corrupt)?;
            // A large body is mostly a blob's hex, which comes out at twice the compressed size:
            // room for that and a little more, so the buffer does not double past it.
            let guess = body.len().saturating_mul(2).saturating_add(body.len() / 8).saturating_add(4096);
            let mut out = Vec::with_capacity(guess.min(max) + 1);
            dec.take(max as u64 + 1).read_to_end(&mut out).map_err(corrupt)?;
            if out.len() > max {
                return Err(Error::DecodedTooLarge(max));
            }
            Ok(Bytes::from(out))
        }
        other => Err(Error::Unsupported(format!(
            "Content-Encoding \"{}\" is not supported: send zstd or no Content-Encoding",
            peersync_core::shown(other)
        ))),
    }
}

fn corrupt(e: std::io::Error) -> Error {
    Error::BadRequest(format!("the zstd body cannot be decoded: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: hyper::header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, v.parse().unwrap());
        h
    }

    #[test]
    fn hex_of_random_bytes_comes_out_near_its_byte_size() {
        let raw: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let json = serde_json::json!({ "change_data": format!("{{\"$blob\":\"{}\"}}", hex::encode(&raw)) });
        let body = json_body(&json, true).unwrap();
        assert!(body.zstd);
        assert!(body.json_len > 2_000_000);
        assert!(body.bytes.len() < raw.len() * 11 / 10, "{} bytes for {} random bytes", body.bytes.len(), raw.len());
        let back = decode(&with(CONTENT_ENCODING, "zstd"), Bytes::from(body.bytes), 3_000_000).unwrap();
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&back).unwrap(), json);
    }

    #[test]
    fn decoding_stops_at_the_limit() {
        let bomb = zstd::bulk::compress(&vec![b'a'; 10_000_000], 3).unwrap();
        assert!(bomb.len() < 10_000);
        let h = with(CONTENT_ENCODING, "zstd");
        assert!(matches!(decode(&h, Bytes::from(bomb.clone()), 1_000_000), Err(Error::DecodedTooLarge(_))));
        assert!(decode(&h, Bytes::from(bomb), 10_000_000).is_ok());
        assert!(matches!(decode(&with(CONTENT_ENCODING, "br"), Bytes::new(), 10), Err(Error::Unsupported(_))));
        assert!(matches!(decode(&h, Bytes::from_static(b"not zstd"), 10), Err(Error::BadRequest(_))));
        assert_eq!(&decode(&HeaderMap::new(), Bytes::from_static(b"{}"), 10).unwrap()[..], b"{}");
    }

    #[test]
    fn small_bodies_go_plain_and_accept_encoding_is_parsed() {
        let b = json_body(&serde_json::json!({"a": 1}), true).unwrap();
        assert!(!b.zstd);
        assert_eq!(b.bytes, br#"{"a":1}"#);
        assert!(accepts_zstd(&with(ACCEPT_ENCODING, "gzip, zstd")));
        assert!(accepts_zstd(&with(ACCEPT_ENCODING, "ZSTD;q=0.5")));
        assert!(!accepts_zstd(&with(ACCEPT_ENCODING, "zstd;q=0")));
        assert!(!accepts_zstd(&with(ACCEPT_ENCODING, "gzip")));
        assert!(!accepts_zstd(&HeaderMap::new()));
    }
}
