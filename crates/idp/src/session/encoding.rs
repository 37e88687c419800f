//! Text encodings for random values and digests. Each is a few lines, so a
//! crate dependency isn't worth it.

use std::fmt::Write as _;

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url (RFC 4648 §5): safe in cookies, URLs and JSON as is.
pub(super) fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        // n input bytes carry 8n bits, which need n + 1 six-bit digits.
        for digit in 0..=chunk.len() {
            let index = (group >> (18 - 6 * digit)) & 0x3f;
            out.push(char::from(BASE64URL[index as usize]));
        }
    }
    out
}

/// Whether every character is in the base64url alphabet.
pub(super) fn is_base64url(text: &str) -> bool {
    text.bytes().all(|b| BASE64URL.contains(&b))
}

/// Lower-case hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Parses exactly 64 hex digits (either case) into 32 bytes.
///
/// Decoded by hand: `u8::from_str_radix` would also accept a `+` sign.
pub(super) fn hex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        // RFC 4648 §10 vectors, unpadded and with the URL-safe alphabet.
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64url(input), expected);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert!(is_base64url("-_8Zm9v"));
        assert!(!is_base64url("a+b/"));
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let text = hex(&bytes);
        assert_eq!(text.len(), 64);
        assert_eq!(hex32(&text), Some(bytes));
        assert_eq!(hex32(&text.to_uppercase()), Some(bytes));
        assert_eq!(hex32(&text[..62]), None);
        assert_eq!(hex32(&format!("+{}", &text[1..])), None);
        assert_eq!(hex32(&format!("g{}", &text[1..])), None);
    }
}
