//! What C libraries write to stderr, as `tracing` events. xmlsec prints a
//! line for every failed signature check and libxml2 one per parse error:
//! an attacker sends as many as they like, and raw they bypass the log's
//! format, level and any rate. [`capture_stderr`] points descriptor 2 at
//! a pipe; a reader thread turns each line into an event (xmlsec's
//! `func=…:file=…:line=…:obj=…:subj=…:error=…:…` lines with their fields,
//! anything else as text), counts it in
//! `portcullis_library_log_events_total{source="xmlsec"|"stderr"}` and
//! writes at most one per source and interval. The request that failed
//! has its own log line with the outcome; these are the library's view.

use std::io::{self, BufRead, BufReader, Read};

use portcullis_proxy::log_rate::LogRate;
use portcullis_proxy::{library_log_events, LogSourceLabels};

/// Longest line kept; the rest of a longer one is dropped.
const MAX_LINE: usize = 2048;

/// From here on, whatever is written to stderr becomes log events. Called
/// once the gateway serves: problems found while starting are still
/// printed to stderr as they are, in full.
pub fn capture_stderr() -> io::Result<()> {
    let (reader, writer) = rustix::pipe::pipe()?;
    rustix::stdio::dup2_stderr(&writer)?;
    // Descriptor 2 now holds its own copy of the write end.
    drop(writer);
    let reader = std::fs::File::from(reader);
    std::thread::Builder::new()
        .name("stderr-capture".into())
        .spawn(move || relay(BufReader::new(reader)))?;
    Ok(())
}

/// Turns lines into events until the pipe closes (it does not while the
/// process lives: descriptor 2 keeps it open).
fn relay(mut input: impl BufRead) {
    let xmlsec = LogRate::default();
    let other = LogRate::default();
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match read_bounded_line(&mut input, &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "reading the captured stderr failed; library output is lost from here on");
                return;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        if let Some(message) = XmlsecLine::parse(text) {
            count("xmlsec");
            if let Some(left_out) = xmlsec.note() {
                tracing::info!(
                    target: "portcullis::xmlsec",
                    func = message.func,
                    object = message.object,
                    subject = message.subject,
                    code = message.code,
                    left_out,
                    "xmlsec: {}",
                    message.text
                );
            }
        } else {
            count("stderr");
            if let Some(left_out) = other.note() {
                tracing::warn!(target: "portcullis::stderr", left_out, line = text, "library output on stderr");
            }
        }
    }
}

fn count(source: &'static str) {
    library_log_events()
        .get_or_create(&LogSourceLabels { source })
        .inc();
}

/// Reads one line of at most [`MAX_LINE`] bytes into `line`, discarding
/// the rest of a longer one. `Ok(0)` at the end of input.
fn read_bounded_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<usize> {
    let read = input
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', line)?;
    if read == MAX_LINE && line.last() != Some(&b'\n') {
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let n = input
                .by_ref()
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut rest)?;
            if n == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
    }
    Ok(read)
}

/// One line of xmlsec's default error callback:
/// `func=F:file=X:line=N:obj=O:subj=S:error=E:text…`.
#[derive(Debug, PartialEq, Eq)]
struct XmlsecLine<'a> {
    func: &'a str,
    object: &'a str,
    subject: &'a str,
    code: &'a str,
    text: &'a str,
}

impl<'a> XmlsecLine<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut rest = line.strip_prefix("func=")?;
        let mut field = |name: &str| -> Option<&'a str> {
            let (value, after) = rest.split_once(':')?;
            rest = after.strip_prefix(name)?;
            Some(value)
        };
        let func = field("file=")?;
        let _file = field("line=")?;
        let _line = field("obj=")?;
        let object = field("subj=")?;
        let subject = field("error=")?;
        let (code, text) = rest.split_once(':').unwrap_or((rest, ""));
        Some(XmlsecLine {
            func,
            object,
            subject,
            code,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xmlsec_lines_are_read_into_fields() {
        let line = "func=xmlSecOpenSSLEvpSignatureVerify:file=signatures.c:line=424:obj=rsa-sha256:subj=EVP_VerifyFinal:error=18:data do not match:signature do not match";
        assert_eq!(
            XmlsecLine::parse(line),
            Some(XmlsecLine {
                func: "xmlSecOpenSSLEvpSignatureVerify",
                object: "rsa-sha256",
                subject: "EVP_VerifyFinal",
                code: "18",
                text: "data do not match:signature do not match",
            })
        );
        assert_eq!(XmlsecLine::parse("Entity: line 1: parser error"), None);
        assert_eq!(XmlsecLine::parse("func=only:the start"), None);
    }

    #[test]
    fn an_endless_line_is_cut_and_the_next_one_read_whole() {
        let mut input = vec![b'x'; MAX_LINE * 3 + 7];
        input.extend_from_slice(b"\nnext\n");
        let mut input = io::Cursor::new(input);
        let mut line = Vec::new();
        assert_eq!(
            read_bounded_line(&mut input, &mut line).ok(),
            Some(MAX_LINE)
        );
        line.clear();
        read_bounded_line(&mut input, &mut line).expect("read");
        assert_eq!(line, b"next\n");
        line.clear();
        assert_eq!(read_bounded_line(&mut input, &mut line).ok(), Some(0));
    }
}
