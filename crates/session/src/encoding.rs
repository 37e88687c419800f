//! Text encodings for random values and digests. Each is a few lines, so a
//! crate dependency isn't worth it.

use std::fmt::Write as _;

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url (RFC 4648 §5): safe in cookies, URLs and JSON as is.
pub(crate) fn base64url(bytes: &[u8]) -> String {
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

/// Decodes unpadded base64url; `None` for anything else (a final group of
/// one character, a character outside the alphabet, stray bits).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| BASE64URL.iter().position(|&d| d == c).map(|p| p as u32);
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut group = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            group |= digit(c)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        let kept = 8 * produced;
        // Bits past the last whole byte must be zero: one spelling per value.
        if group & ((1 << (24 - kept)) - 1) != 0 {
            return None;
        }
        for i in 0..produced {
            out.push((group >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// Whether every character is in the base64url alphabet.
pub(crate) fn is_base64url(text: &str) -> bool {
    // By class, not by searching the alphabet: every authenticated request
    // parses its session cookie with this.
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
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
    fn base64url_decodes_what_it_encodes_and_nothing_else() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64url_decode(&base64url(&bytes)), Some(bytes));
        }
        // A lone final digit, outside the alphabet, and stray low bits
        // ("Zm8" is the one spelling of "fo").
        for bad in ["A", "Zm9vY", "Zm+v", "Zm9", "Zm-"] {
            assert_eq!(base64url_decode(bad), None, "{bad}");
        }
        assert_eq!(base64url_decode("Zm8"), Some(b"fo".to_vec()));
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }
}
