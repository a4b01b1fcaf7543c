//! Content-Encoding decoding (C31): gzip, deflate and br, bounded so that a
//! small compressed body cannot expand without limit.

use std::io::Read;

use crate::error::BrowserError;

/// The most a decoded body may grow to.
pub const MAX_DECODED: u64 = 64 << 20;

/// Decodes `body` as `encoding` (`gzip`, `x-gzip`, `deflate`, `br`,
/// `identity`).
pub fn decode(encoding: &str, body: &[u8]) -> Result<Vec<u8>, BrowserError> {
    let mut out = Vec::new();
    let reader: Box<dyn Read + '_> = match encoding.trim().to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => Box::new(flate2::read::GzDecoder::new(body)),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(body)),
        "br" => Box::new(brotli::Decompressor::new(body, 4096)),
        "identity" | "" => return Ok(body.to_vec()),
        other => {
            return Err(BrowserError::decode(format!(
                "unknown content-encoding {other:?}"
            )));
        }
    };
    reader
        .take(MAX_DECODED + 1)
        .read_to_end(&mut out)
        .map_err(|e| BrowserError::decode(format!("{encoding}: {e}")))?;
    if out.len() as u64 > MAX_DECODED {
        return Err(BrowserError::decode(format!(
            "{encoding}: expands beyond {MAX_DECODED} bytes"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_and_brotli_round_trip() {
        let text = b"hello hello hello hello hello".repeat(20);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        assert_eq!(decode("gzip", &gz.finish().unwrap()).unwrap(), text);
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(&text).unwrap();
        }
        assert_eq!(decode("br", &br).unwrap(), text);
    }

    #[test]
    fn corrupt_or_unknown_encodings_are_errors() {
        assert!(decode("gzip", b"definitely not gzip").is_err());
        assert!(
            decode("zstd", b"x")
                .unwrap_err()
                .to_string()
                .contains("zstd")
        );
    }
}
