use http::HeaderValue;

/// A per-request id, 128 random bits as 32 lowercase hex digits. Shown on
/// error pages and returned as `X-Request-Id` so a user's report can be
/// matched to the access log.
#[derive(Clone)]
pub struct RequestId {
    /// Built once: the id goes upstream and back to the client, and cloning
    /// a `HeaderValue` only bumps a reference count.
    value: HeaderValue,
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
        RequestId {
            value: HeaderValue::from_bytes(&hex).unwrap_or_else(|_| HeaderValue::from_static("-")),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        self.value.to_str().unwrap_or_default()
    }

    pub fn header_value(&self) -> HeaderValue {
        self.value.clone()
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
