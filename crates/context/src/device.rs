//! The coarse device a session records: browser family and operating
//! system, never versions or the full user-agent text (a version bump is
//! not a new device, and the header is a fingerprint worth not keeping).
//!
//! The rules are the usual order-sensitive token tests: every Chromium
//! browser also says "Chrome" and "Safari", Edge and Opera add their own
//! token, iOS browsers say "like Mac OS X". A full user-agent parser would
//! answer far more than the two questions asked here.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Browser {
    Edge,
    Opera,
    Samsung,
    Chrome,
    Firefox,
    Safari,
    /// A command-line or library client (curl, python-requests, Go, …).
    Tool,
    Other,
    /// No user-agent header.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Windows,
    #[serde(rename = "macos")]
    MacOs,
    #[serde(rename = "ios")]
    IOs,
    Android,
    #[serde(rename = "chromeos")]
    ChromeOs,
    Linux,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Device {
    pub browser: Browser,
    pub os: Os,
}

/// Headers longer than this are classified from their start only: real
/// user agents are a few hundred bytes, and the tokens come early.
const CLASSIFIED_BYTES: usize = 512;

impl Device {
    pub fn from_user_agent(user_agent: Option<&[u8]>) -> Device {
        let Some(bytes) = user_agent else {
            return Device {
                browser: Browser::None,
                os: Os::Other,
            };
        };
        let ua = &bytes[..bytes.len().min(CLASSIFIED_BYTES)];
        Device {
            browser: browser(ua),
            os: os(ua),
        }
    }
}

fn has(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn browser(ua: &[u8]) -> Browser {
    const TOOLS: [&[u8]; 8] = [
        b"curl/",
        b"Wget/",
        b"python-requests/",
        b"Python-urllib/",
        b"Go-http-client/",
        b"okhttp/",
        b"Java/",
        b"libwww-perl/",
    ];
    if TOOLS.iter().any(|tool| ua.starts_with(tool)) {
        Browser::Tool
    } else if has(ua, b"Edg/") || has(ua, b"EdgA/") || has(ua, b"EdgiOS/") || has(ua, b"Edge/") {
        Browser::Edge
    } else if has(ua, b"OPR/") || has(ua, b"Opera") {
        Browser::Opera
    } else if has(ua, b"SamsungBrowser/") {
        Browser::Samsung
    } else if has(ua, b"Firefox/") || has(ua, b"FxiOS/") {
        Browser::Firefox
    } else if has(ua, b"Chrome/") || has(ua, b"Chromium/") || has(ua, b"CriOS/") {
        Browser::Chrome
    } else if has(ua, b"Safari/") && has(ua, b"Version/") {
        Browser::Safari
    } else {
        Browser::Other
    }
}

fn os(ua: &[u8]) -> Os {
    if has(ua, b"Windows") {
        Os::Windows
    } else if has(ua, b"iPhone") || has(ua, b"iPad") || has(ua, b"iPod") {
        Os::IOs
    } else if has(ua, b"Mac OS X") || has(ua, b"Macintosh") {
        Os::MacOs
    } else if has(ua, b"Android") {
        Os::Android
    } else if has(ua, b"CrOS") {
        Os::ChromeOs
    } else if has(ua, b"Linux") || has(ua, b"X11") {
        Os::Linux
    } else {
        Os::Other
    }
}

impl Browser {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edge => "Edge",
            Self::Opera => "Opera",
            Self::Samsung => "Samsung Internet",
            Self::Chrome => "Chrome",
            Self::Firefox => "Firefox",
            Self::Safari => "Safari",
            Self::Tool => "HTTP tool",
            Self::Other => "other browser",
            Self::None => "no user agent",
        }
    }
}

impl Os {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Windows => "Windows",
            Self::MacOs => "macOS",
            Self::IOs => "iOS",
            Self::Android => "Android",
            Self::ChromeOs => "ChromeOS",
            Self::Linux => "Linux",
            Self::Other => "other OS",
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.browser.as_str(), self.os.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(ua: &str) -> (Browser, Os) {
        let d = Device::from_user_agent(Some(ua.as_bytes()));
        (d.browser, d.os)
    }

    #[test]
    fn real_user_agents_are_classified() {
        let cases = [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", Browser::Chrome, Os::Windows),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", Browser::Edge, Os::Windows),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", Browser::Safari, Os::MacOs),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", Browser::Safari, Os::IOs),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", Browser::Chrome, Os::IOs),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", Browser::Firefox, Os::Linux),
            ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", Browser::Samsung, Os::Android),
            ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", Browser::Chrome, Os::ChromeOs),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0", Browser::Opera, Os::Windows),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", Browser::Chrome, Os::Linux),
            ("curl/8.11.0", Browser::Tool, Os::Other),
            ("python-requests/2.32.3", Browser::Tool, Os::Other),
            ("", Browser::Other, Os::Other),
            ("\u{7f}\u{0}garbage", Browser::Other, Os::Other),
        ];
        for (ua, browser, os) in cases {
            assert_eq!(device(ua), (browser, os), "{ua}");
        }
        assert_eq!(
            Device::from_user_agent(None).to_string(),
            "no user agent on other OS"
        );
    }

    #[test]
    fn a_huge_header_is_classified_from_its_start() {
        let mut ua =
            b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 ".to_vec();
        ua.extend(std::iter::repeat_n(b'A', 1 << 20));
        ua.extend_from_slice(b" Windows Edg/1");
        let d = Device::from_user_agent(Some(&ua));
        assert_eq!((d.browser, d.os), (Browser::Firefox, Os::Linux));
    }
}
