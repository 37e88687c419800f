use http::HeaderValue;

/// A per-request id, 128 random bits as 32 lowercase hex digits. Shown on
/// error pages and returned as `X-Request-Id` so a user's report can be
/// matched to the access log.
#[derive(Clone)]
pub struct RequestId {
    hex: [u8; 32],
}

impl RequestId {
    pub fn new() -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let value: u128 = rand::random();
        let mut hex = [0u8; 32];
        for (i, slot) in hex.iter_mut().enumerate() {
            let shift = 124 - 4 * i;
            *slot = DIGITS[((value >> shift) & 0xf) as usize];
        }
        RequestId { hex }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.hex).unwrap_or_default()
    }

    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.hex).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn ids_are_hex_and_distinct() {
        let a = RequestId::new();
        let b = RequestId::new();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.as_str(), b.as_str());
    }
}
